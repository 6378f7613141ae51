//! The problem taxonomy (components and events, coded): entries added or refined (names, work
//! category, time limit to rectify) through the API (`PUT /v1/taxonomy`) and the console's
//! administration alike.

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::TaxonomyEntry;
use crate::store::{audit, reference, Db};

/// Checks one entry: a 2- or 4-digit code, both names, at most one time limit, of 1 hour to a
/// year or 1 to 365 working days.
pub fn validate_entry(t: &TaxonomyEntry) -> Result<(), String> {
    let digits = t.code.chars().all(|c| c.is_ascii_digit());
    if !digits || !(t.code.len() == 2 || t.code.len() == 4) {
        return Err("code must be 2 or 4 digits".into());
    }
    if t.name_en.trim().is_empty() || t.name_zh.trim().is_empty() {
        return Err("names must not be empty".into());
    }
    let limits = [
        ("time_limit_hours", t.time_limit_hours, 24 * 365),
        (
            "time_limit_working_hours",
            t.time_limit_working_hours,
            24 * 365,
        ),
        ("time_limit_working_days", t.time_limit_working_days, 365),
    ];
    for (name, value, most) in limits {
        if let Some(v) = value {
            if !(1..=most).contains(&v) {
                return Err(format!("{name} must be between 1 and {most}"));
            }
        }
    }
    if limits.iter().filter(|(_, v, _)| v.is_some()).count() > 1 {
        return Err(
            "set at most one of time_limit_hours, time_limit_working_hours and \
             time_limit_working_days"
                .into(),
        );
    }
    Ok(())
}

/// Adds or refines `entries` (admins only; all or none, audited per entry). An entry the same
/// as the one stored is left alone, so a form that sends the whole taxonomy records only what
/// changed. Answers the taxonomy as it then stands.
pub async fn upsert(
    db: &Db,
    user: &AuthUser,
    entries: Vec<TaxonomyEntry>,
) -> ApiResult<Vec<TaxonomyEntry>> {
    user.require_admin()?;
    if entries.len() > 10_000 {
        return Err(ApiError::invalid("$", "at most 10000 entries at once"));
    }
    for (i, t) in entries.iter().enumerate() {
        validate_entry(t).map_err(|e| ApiError::invalid(&format!("[{i}]"), e))?;
    }
    let mut tx = db.begin_write().await?;
    let before = reference::taxonomy(tx.conn()).await?;
    let changed: Vec<TaxonomyEntry> = entries
        .into_iter()
        .filter(|t| {
            let key = TaxonomyEntry::key_of(t.kind, &t.code);
            !before.iter().any(|b| {
                b.key == key
                    && b.name_zh == t.name_zh
                    && b.name_en == t.name_en
                    && b.work_category == t.work_category
                    && b.time_limit() == t.time_limit()
            })
        })
        .collect();
    reference::upsert_taxonomy(tx.conn(), &changed).await?;
    for t in &changed {
        let key = TaxonomyEntry::key_of(t.kind, &t.code);
        let old = before.iter().find(|b| b.key == key);
        audit::record(
            tx.conn(),
            Some(user.user_id),
            "taxonomy.upsert",
            "taxonomy",
            &key,
            old,
            Some(t),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(reference::taxonomy(&db.pool).await?)
}
