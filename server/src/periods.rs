//! Assessment periods: opening one (it may not overlap another) and carrying the zone
//! coefficients of one period into the next.

use jiff::tz::TimeZone;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::localtime;
use crate::model::{Coefficient, Milli, Period, PeriodInput, PeriodSpan, PeriodStatus};
use crate::store::{audit, ms_from_time, reference, Db, WriteTx};

/// Opens a period (audited as `actor`); a `month` is cut in the site's time zone `tz`.
pub async fn create_period(
    db: &Db,
    actor: Option<Uuid>,
    input: &PeriodInput,
    tz: &TimeZone,
) -> ApiResult<Period> {
    let span = span_of(input, tz)?;
    let mut tx = db.begin_write().await?;
    let period = create_period_in(&mut tx, actor, &span).await?;
    tx.commit().await?;
    Ok(period)
}

/// The instants a new period runs between: those of its local `month`, or the explicit ones.
pub fn span_of(input: &PeriodInput, tz: &TimeZone) -> ApiResult<PeriodSpan> {
    let (starts_at, ends_at) = match (&input.month, input.starts_at, input.ends_at) {
        (Some(month), None, None) => localtime::month_span(tz, month).ok_or_else(|| {
            ApiError::invalid("month", "must be a month written YYYY-MM, e.g. 2026-12")
        })?,
        (None, Some(starts_at), Some(ends_at)) => (starts_at, ends_at),
        (Some(_), _, _) => {
            return Err(ApiError::invalid(
                "month",
                "give either month or starts_at and ends_at, not both",
            ))
        }
        (None, None, _) => return Err(ApiError::invalid("starts_at", "is required without month")),
        (None, _, None) => return Err(ApiError::invalid("ends_at", "is required without month")),
    };
    Ok(PeriodSpan {
        code: input.code.clone(),
        starts_at,
        ends_at,
    })
}

/// Opens a period inside `tx` (see [`create_period`]).
pub async fn create_period_in(
    tx: &mut WriteTx,
    actor: Option<Uuid>,
    input: &PeriodSpan,
) -> ApiResult<Period> {
    check_code(&input.code)?;
    if input.ends_at <= input.starts_at {
        return Err(ApiError::invalid("ends_at", "must be after starts_at"));
    }
    let overlapping = reference::overlapping_periods(
        tx.conn(),
        ms_from_time(input.starts_at),
        ms_from_time(input.ends_at),
    )
    .await?;
    if let Some(p) = overlapping.first() {
        return Err(ApiError::conflict(format!("overlaps period {}", p.code)));
    }
    let period = reference::insert_period(tx.conn(), input).await?;
    audit::record(
        tx.conn(),
        actor,
        "period.create",
        "period",
        &period.id.to_string(),
        None::<&()>,
        Some(&period),
    )
    .await?;
    Ok(period)
}

/// Sets every coefficient of period `from` for period `to` too (the next period starts with
/// the coefficients of the one before; an admin may change them while it is open).
pub async fn copy_coefficients(
    tx: &mut WriteTx,
    actor: Uuid,
    from: Uuid,
    to: Uuid,
) -> ApiResult<Vec<Coefficient>> {
    let mut copied = Vec::new();
    for c in reference::coefficients(tx.conn(), from).await? {
        let Some(milli) = Milli::from_f64(c.coefficient, 10.0) else {
            continue;
        };
        reference::set_coefficient(tx.conn(), c.zone_id, to, milli, Some(actor)).await?;
        copied.push(Coefficient { period_id: to, ..c });
    }
    audit::record(
        tx.conn(),
        Some(actor),
        "coefficient.copy",
        "period",
        &to.to_string(),
        None::<&()>,
        Some(&copied),
    )
    .await?;
    Ok(copied)
}

/// A period code names files (`ranking-{code}.csv`) and appears in reports: letters (any
/// script), digits, `-`, `_` and `.`, at most 32 bytes. No spaces, quotes or control characters.
fn check_code(code: &str) -> ApiResult<()> {
    if code.is_empty() || code.len() > 32 {
        return Err(ApiError::invalid("code", "must be 1 to 32 bytes"));
    }
    if !code
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::invalid(
            "code",
            "may hold only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// Sets a zone's difficulty coefficient for a period that is still open (admins only; above 0,
/// at most 10, three decimals). Ledger entries keep the coefficient they were weighted with, so a
/// later change never rewrites history.
pub async fn set_coefficient(
    db: &Db,
    admin: &AuthUser,
    period_id: Uuid,
    zone_id: Uuid,
    coefficient: f64,
) -> ApiResult<Coefficient> {
    admin.require_admin()?;
    let milli = Milli::from_f64(coefficient, 10.0)
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "coefficient",
                "must be above 0 and at most 10, with at most 3 decimals",
            )
        })?;
    let period = reference::period(&db.pool, period_id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    if period.status == PeriodStatus::Closed {
        return Err(ApiError::conflict("the period is closed"));
    }
    reference::zone(&db.pool, zone_id)
        .await?
        .ok_or_else(|| ApiError::not_found("zone"))?;
    let mut tx = db.begin_write().await?;
    let before =
        reference::set_coefficient(tx.conn(), zone_id, period_id, milli, Some(admin.user_id))
            .await?;
    let after = Coefficient {
        zone_id,
        period_id,
        coefficient: Milli::to_f64(milli),
    };
    let before = before.map(|b| Coefficient {
        zone_id,
        period_id,
        coefficient: Milli::to_f64(b),
    });
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "coefficient.set",
        "zone_coefficient",
        &format!("{period_id}/{zone_id}"),
        before.as_ref(),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// The periods not yet closed, in order, each with the zones' coefficients set for it: what an
/// admin may still change.
pub async fn open_coefficients(db: &Db) -> ApiResult<Vec<(Period, Vec<Coefficient>)>> {
    let mut out = Vec::new();
    for period in reference::periods(&db.pool).await? {
        if period.status != PeriodStatus::Closed {
            let coefficients = reference::coefficients(&db.pool, period.id).await?;
            out.push((period, coefficients));
        }
    }
    Ok(out)
}
