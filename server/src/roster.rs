//! The roster: who answers for which zone in which role, time-versioned. A change closes the
//! old row and opens a new one in one transaction; rows are never edited otherwise, so "who was
//! accountable on a given date" is a query, not a reconstruction. Called by the API and by the
//! console's administration pages.

use gridline_sync::Role;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::model::{RosterEntry, RosterInput};
use crate::store::{audit, now_ms, reference, users, Db};

/// A change of an assignment: its new zone and role (the person stays).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reassign {
    /// The new zone (`null`: every zone).
    pub zone_id: Option<Uuid>,
    pub role: Role,
}

/// The rows valid at `at` (Unix ms; `None`: the whole history) that `user` may see.
pub async fn list(
    db: &Db,
    user: &AuthUser,
    zone_id: Option<Uuid>,
    user_id: Option<Uuid>,
    at: Option<i64>,
) -> ApiResult<Vec<RosterEntry>> {
    let scope = user.scope(db).await?;
    let rows = reference::roster(&db.pool, zone_id, user_id, at).await?;
    Ok(rows.into_iter().filter(|r| visible(&scope, r)).collect())
}

fn visible(scope: &Scope, row: &RosterEntry) -> bool {
    match (scope, row.zone_id) {
        (Scope::All, _) => true,
        (Scope::Zones(_), None) => true,
        (Scope::Zones(z), Some(zone)) => z.contains(&zone),
    }
}

async fn check_input(db: &Db, input: &RosterInput) -> ApiResult<()> {
    let user = users::by_id(&db.pool, input.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid("user_id", "no such user"))?;
    if input.role == Role::Admin {
        return Err(ApiError::invalid(
            "role",
            "admins are not rostered; they see everything",
        ));
    }
    if !user.roles.contains(&input.role) {
        return Err(ApiError::invalid(
            "role",
            format!(
                "user {} does not have the role {}",
                user.username,
                input.role.as_str()
            ),
        ));
    }
    if let Some(zone) = input.zone_id {
        reference::zone(&db.pool, zone)
            .await?
            .ok_or_else(|| ApiError::invalid("zone_id", "no such zone"))?;
    }
    Ok(())
}

/// Opens an assignment (admins only), from now on.
pub async fn open(db: &Db, admin: &AuthUser, input: &RosterInput) -> ApiResult<RosterEntry> {
    admin.require_admin()?;
    check_input(db, input).await?;
    let mut tx = db.begin_write().await?;
    let id = reference::open_assignment(
        tx.conn(),
        input.user_id,
        input.zone_id,
        input.role,
        Some(admin.user_id),
        now_ms(),
    )
    .await?;
    let row = reference::roster_entry(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "roster.open",
        "roster",
        &id.to_string(),
        None::<&()>,
        Some(&row),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Ends a current assignment now (admins only); an ended one is a conflict.
pub async fn end(db: &Db, admin: &AuthUser, id: Uuid) -> ApiResult<RosterEntry> {
    admin.require_admin()?;
    let mut tx = db.begin_write().await?;
    let before = reference::roster_entry(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    if !reference::close_assignment(tx.conn(), id, now_ms()).await? {
        return Err(ApiError::conflict("this assignment has already ended"));
    }
    let after = reference::roster_entry(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "roster.close",
        "roster",
        &id.to_string(),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Moves an assignment to another zone or role (admins only): the old row ends and the new one
/// opens at the same instant, atomically. Returns the new row.
pub async fn reassign(
    db: &Db,
    admin: &AuthUser,
    id: Uuid,
    input: &Reassign,
) -> ApiResult<RosterEntry> {
    admin.require_admin()?;
    let before = reference::roster_entry(&db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    let next = RosterInput {
        user_id: before.user_id,
        zone_id: input.zone_id,
        role: input.role,
    };
    check_input(db, &next).await?;
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    if !reference::close_assignment(tx.conn(), id, now).await? {
        return Err(ApiError::conflict("this assignment has already ended"));
    }
    let new_id = reference::open_assignment(
        tx.conn(),
        next.user_id,
        next.zone_id,
        next.role,
        Some(admin.user_id),
        now,
    )
    .await?;
    let after = reference::roster_entry(tx.conn(), new_id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    audit::record(
        tx.conn(),
        Some(admin.user_id),
        "roster.reassign",
        "roster",
        &id.to_string(),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}
