//! Closing a period (deciding its last proposals in the same step, opening the next one) and
//! the ranking computed from the ledger, whole or as a user may see it.

use gridline_sync::{EntityKind, ErrorCode, Role};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::ledger::posting::approve_in;
use crate::ledger::proposals::{
    period_closed, proposal_view, reject_in, require_supervisor, required_reason,
};
use crate::ledger::rankings::{compute_ranking, Rankings};
use crate::ledger::scoring::{self, Ranking};
use crate::ledger::views::{CloseInput, ClosedPeriod, Decision, NextPeriod, Proposal};
use crate::ledger::LedgerService;
use crate::model::{Period, PeriodStatus};
use crate::store::changes::{self, PendingChange};
use crate::store::ledger as store;
use crate::store::{audit, ms_from_time, now_ms, reference, rfc3339, time_from_ms, Db};

/// Close a period (admins and supervisors): it takes no new ledger entries from now on. The
/// ranking is computed and stored with its formula version and hash.
///
/// A period closes once its end has passed (`period_not_ended` before; an admin may close it
/// early with `early`, and it then ends now) and when none of its proposals is pending
/// (`period_proposals_pending`, listing them in `details.proposals`; `decisions` decides them
/// in the same step, under the usual rules: four eyes, complete evidence). `next` opens the
/// following period where this one ends, with this one's coefficients. Nothing is done unless
/// all of it is.
pub async fn close_period(
    svc: &LedgerService,
    user: &AuthUser,
    id: Uuid,
    input: &CloseInput,
) -> ApiResult<ClosedPeriod> {
    require_supervisor(user)?;
    let scope = user.scope(&svc.db).await?;
    let now = now_ms();
    let before = reference::period(&svc.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    if before.status == PeriodStatus::Closed {
        return Err(period_closed());
    }
    let early = now < ms_from_time(before.ends_at);
    if early && !input.early {
        return Err(ApiError::new(
            ErrorCode::PeriodNotEnded,
            "the period has not ended yet: an admin may close it early (`early`)",
        )
        .with_details(json!({ "ends_at": rfc3339(ms_from_time(before.ends_at)) })));
    }
    if early {
        user.require_admin()?;
    }
    let reasons = input
        .decisions
        .iter()
        .map(|d| match d.decision {
            Decision::Approve => Ok(None),
            Decision::Reject => required_reason(d.reason.as_deref().unwrap_or_default()).map(Some),
        })
        .collect::<ApiResult<Vec<_>>>()?;

    let mut tx = svc.db.begin_write().await?;
    let (mut approved, mut rejected, mut pending) = (Vec::new(), Vec::new(), Vec::new());
    // Decisions first. Every decided proposal's case is locked before any period is (in id
    // order, all at once), so that the close takes its locks in the order every other writer
    // does, case then period, and never waits crosswise on one.
    let mut decided_cases = Vec::new();
    for d in &input.decisions {
        if let Some(case_id) = store::proposal(tx.conn(), d.proposal_id)
            .await?
            .and_then(|p| p.case_id)
        {
            decided_cases.push(case_id);
        }
    }
    crate::store::review::lock_cases(&mut tx, &decided_cases).await?;
    for (d, reason) in input.decisions.iter().zip(reasons) {
        match reason {
            None => {
                let (entry, changes) =
                    approve_in(svc, &mut tx, user, &scope, d.proposal_id, Some(id)).await?;
                approved.push(entry);
                pending.extend(changes);
            }
            Some(reason) => {
                let (proposal, changes) =
                    reject_in(&mut tx, user, &scope, d.proposal_id, reason, Some(id)).await?;
                rejected.push(proposal);
                pending.extend(changes);
            }
        }
    }
    // Under the period's lock: a proposal being made waits for the close, and then finds the
    // period closed.
    if store::lock_period(&mut tx, id).await? != Some(PeriodStatus::Open) {
        return Err(period_closed());
    }
    let waiting = store::pending_proposals(tx.conn(), id).await?;
    if !waiting.is_empty() {
        let proposals: Vec<Proposal> = waiting.iter().map(proposal_view).collect();
        return Err(ApiError::new(
            ErrorCode::PeriodProposalsPending,
            format!(
                "{} proposal(s) of the period are pending: decide them first, or in the close (`decisions`)",
                proposals.len()
            ),
        )
        .with_details(json!({ "proposals": proposals })));
    }
    if early {
        store::end_period_at(tx.conn(), id, now).await?;
    }
    if !store::close_period(tx.conn(), id, user.user_id, now).await? {
        return Err(period_closed());
    }
    let period = Period {
        status: PeriodStatus::Closed,
        closed_at: Some(time_from_ms(now)),
        ends_at: if early {
            time_from_ms(now)
        } else {
            before.ends_at
        },
        ..before.clone()
    };
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "period.close",
        "period",
        &id.to_string(),
        Some(&before),
        Some(&period),
    )
    .await?;
    let next = match &input.next {
        Some(next) => {
            let ends_at = next_period_end(next, &svc.config.site.tz())?;
            let opened = crate::periods::create_period_in(
                &mut tx,
                Some(user.user_id),
                &crate::model::PeriodSpan {
                    code: next.code.clone(),
                    starts_at: period.ends_at,
                    ends_at,
                },
            )
            .await?;
            crate::periods::copy_coefficients(&mut tx, user.user_id, id, opened.id).await?;
            Some(opened)
        }
        None => None,
    };
    pending.push(PendingChange::upsert(EntityKind::Period, id, None));
    // The unannounced inspections made before the period's end are revealed with its
    // standings: their findings count in it, so the inspected zones see them now.
    pending.extend(
        crate::plans::reveal_before(tx.conn(), id, ms_from_time(period.ends_at), now).await?,
    );
    // The supervisors and every chief on the roster now: the standings are out.
    let mut told = crate::store::users::with_role(tx.conn(), Role::Supervisor).await?;
    told.extend(
        reference::roster(tx.conn(), None, None, Some(now))
            .await?
            .into_iter()
            .filter(|r| {
                matches!(
                    r.role,
                    Role::ZoneChief | Role::RoadChief | Role::SectionChief
                )
            })
            .map(|r| r.user_id),
    );
    pending.extend(
        crate::notify::record(
            tx.conn(),
            crate::notify::Notice {
                kind: crate::notify::NoticeKind::PeriodClosed,
                case_id: None,
                zone_id: None,
                data: json!({
                    "period_id": id,
                    "period_code": period.code,
                    "closed_by": user.user_id,
                    "next_period_id": next.as_ref().map(|n| n.id),
                }),
                recipients: told,
            },
            now,
        )
        .await?
        .changes,
    );
    crate::store::ledger_log::issue_checkpoint(tx.conn(), svc.keys.as_ref()).await?;
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    // Computed after the close has committed: no entry can join the period any more, so this
    // is the period's final ranking.
    let ranking = compute_ranking(&svc.db, &period).await?;
    let body = serde_json::to_string(&ranking).map_err(ApiError::internal)?;
    let sha = hex::encode(Sha256::digest(body.as_bytes()));
    let mut tx = svc.db.begin_write().await?;
    store::insert_result(tx.conn(), id, scoring::FORMULA_VERSION, &body, &sha).await?;
    tx.commit().await?;
    Ok(ClosedPeriod {
        period,
        formula_version: scoring::FORMULA_VERSION.to_owned(),
        ranking_sha256: sha,
        approved,
        rejected,
        next,
    })
}

/// A period with what closing it waits for (the checks `close_period` makes): whether its end
/// has passed and how many of its proposals are still pending. A closed period waits for
/// nothing.
pub struct CloseChecks {
    pub period: Period,
    pub ended: bool,
    pub pending: usize,
}

impl CloseChecks {
    /// Whether `user` may close the period now: it is open and nothing is pending, and either
    /// it has ended (supervisors) or the user is an admin, who may close it early.
    pub fn closable_by(&self, user: &AuthUser) -> bool {
        self.period.status == PeriodStatus::Open
            && user.is_supervisor_level()
            && self.pending == 0
            && (self.ended || user.is_admin())
    }
}

/// Every period, the newest first, with its close checks as of now.
pub async fn close_checks(db: &Db) -> ApiResult<Vec<CloseChecks>> {
    let now = now_ms();
    let mut out = Vec::new();
    for period in reference::periods(&db.pool).await?.into_iter().rev() {
        let pending = if period.status == PeriodStatus::Open {
            let mut conn = db.pool.acquire().await?;
            store::pending_proposals(&mut conn, period.id).await?.len()
        } else {
            0
        };
        out.push(CloseChecks {
            ended: period.ends_at.unix_timestamp() * 1000 <= now,
            period,
            pending,
        });
    }
    Ok(out)
}

/// The caller's zones, narrowed to `zone` if given.
pub async fn scoped_zones(
    db: &Db,
    user: &AuthUser,
    zone: Option<Uuid>,
) -> ApiResult<Option<Vec<Uuid>>> {
    let scope = user.scope(db).await?;
    Ok(match (scope.zones(), zone) {
        (None, None) => None,
        (None, Some(z)) => Some(vec![z]),
        (Some(zs), None) => Some(zs.to_vec()),
        (Some(zs), Some(z)) => Some(zs.iter().copied().filter(|x| *x == z).collect()),
    })
}

/// The ranking of a period as `user` may see it: admins and supervisors see every zone; zone,
/// road and section chiefs see the rows of the zones their roster gives them (each with its
/// rank among all zones); inspectors and squad members, who are not assessed and must not be
/// swayed by the standings, see none (403).
pub async fn visible_ranking(
    db: &Db,
    rankings: &Rankings,
    user: &AuthUser,
    period: &Period,
) -> ApiResult<Ranking> {
    let chief = [Role::ZoneChief, Role::RoadChief, Role::SectionChief]
        .iter()
        .any(|r| user.has(*r));
    if !user.is_supervisor_level() && !chief {
        return Err(ApiError::forbidden(
            "the ranking is for supervisors and the zones' chiefs",
        ));
    }
    let scope = user.scope(db).await?;
    let mut ranking = Ranking::clone(&*rankings.get(db, period).await?);
    ranking
        .zones
        .retain(|z| Uuid::parse_str(&z.zone_id).is_ok_and(|z| scope.contains(z)));
    Ok(ranking)
}

/// The period open at `now`, if any, with its ranking so far as `user` may see it: `None` for
/// a reader the ranking is not for (see [`visible_ranking`]), or when it cannot be read now.
pub async fn current_ranking(
    db: &Db,
    rankings: &Rankings,
    user: &AuthUser,
    now: time::OffsetDateTime,
) -> ApiResult<Option<(Period, Option<Ranking>)>> {
    let period = reference::periods(&db.pool)
        .await?
        .into_iter()
        .find(|p| p.starts_at <= now && now < p.ends_at);
    Ok(match period {
        Some(p) => {
            let ranking = visible_ranking(db, rankings, user, &p).await.ok();
            Some((p, ranking))
        }
        None => None,
    })
}

/// Where the period opened by a close ends: at the end of its local `month`, or at `ends_at`.
fn next_period_end(next: &NextPeriod, tz: &jiff::tz::TimeZone) -> ApiResult<time::OffsetDateTime> {
    match (&next.month, next.ends_at) {
        (Some(month), None) => crate::localtime::month_span(tz, month)
            .map(|(_, end)| end)
            .ok_or_else(|| {
                ApiError::invalid(
                    "next.month",
                    "must be a month written YYYY-MM, e.g. 2026-12",
                )
            }),
        (None, Some(ends_at)) => Ok(ends_at),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "next.month",
            "give either month or ends_at, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "next.ends_at",
            "is required without month",
        )),
    }
}
