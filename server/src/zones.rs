//! Zones with their GeoJSON boundaries: read in the caller's scope, written by admins with an
//! audit entry in the same transaction.

use gridline_sync::Datum;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Zone, ZoneInput};
use crate::store::{audit, reference, Db};

/// The zones in `user`'s scope, boundaries drawn on `datum` (as stored when `None`).
pub async fn list(db: &Db, user: &AuthUser, datum: Option<Datum>) -> ApiResult<Vec<Zone>> {
    let scope = user.scope(db).await?;
    let zones = reference::zones(&db.pool, scope.zones()).await?;
    Ok(zones.into_iter().map(|z| in_datum(z, datum)).collect())
}

/// One zone, `not_found` outside `user`'s scope.
pub async fn get(
    db: &Db,
    user: &AuthUser,
    id: uuid::Uuid,
    datum: Option<Datum>,
) -> ApiResult<Zone> {
    user.scope(db).await?.check_visible(id, "zone")?;
    reference::zone(&db.pool, id)
        .await?
        .map(|z| in_datum(z, datum))
        .ok_or_else(|| ApiError::not_found("zone"))
}

/// A new zone (admins).
pub async fn create(db: &Db, user: &AuthUser, input: &ZoneInput) -> ApiResult<Zone> {
    user.require_admin()?;
    validate(input)?;
    let mut tx = db.begin_write().await?;
    let zone = reference::insert_zone(tx.conn(), input).await?;
    let id = zone.id.to_string();
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "zone.create",
        "zone",
        &id,
        None::<&()>,
        Some(&zone),
    )
    .await?;
    tx.commit().await?;
    Ok(zone)
}

/// Replaces a zone's code, name and boundary (admins); `not_found` when there is no such zone.
pub async fn update(
    db: &Db,
    user: &AuthUser,
    id: uuid::Uuid,
    input: &ZoneInput,
) -> ApiResult<Zone> {
    user.require_admin()?;
    validate(input)?;
    let mut tx = db.begin_write().await?;
    let before = reference::zone(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("zone"))?;
    let after = reference::update_zone(tx.conn(), id, input)
        .await?
        .ok_or_else(|| ApiError::not_found("zone"))?;
    let key = id.to_string();
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "zone.update",
        "zone",
        &key,
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

fn validate(input: &ZoneInput) -> ApiResult<()> {
    let code = input.code.trim();
    if code.is_empty() || code.len() > 32 {
        return Err(ApiError::invalid("code", "must be 1 to 32 bytes"));
    }
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    input
        .translations
        .check(200)
        .map_err(|e| ApiError::invalid("translations", e))?;
    crate::geo::validate_boundary(&input.boundary).map_err(|e| ApiError::invalid("boundary", e))
}

fn in_datum(mut zone: Zone, datum: Option<Datum>) -> Zone {
    if let Some(d) = datum {
        zone.boundary = crate::geo::in_datum(&zone.boundary, d);
    }
    zone
}
