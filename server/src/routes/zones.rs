//! Zones with their GeoJSON boundaries.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::Datum;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Zone, ZoneInput};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::{audit, reference};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update))
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

/// The datum to draw a map in.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MapQuery {
    /// `wgs84` (default, as stored), `gcj02` or `bd09`: boundaries converted for a map drawn
    /// on that datum's tiles (most domestic tile services in China use GCJ-02).
    #[param(value_type = Option<String>)]
    pub datum: Option<Datum>,
}

fn in_datum(mut zone: Zone, datum: Option<Datum>) -> Zone {
    if let Some(d) = datum {
        zone.boundary = crate::geo::in_datum(&zone.boundary, d);
    }
    zone
}

/// Zones in the caller's scope, with boundaries.
#[utoipa::path(get, path = "/v1/zones", operation_id = "list_zones", tag = "reference", security(("bearer" = [])),
    params(MapQuery), responses((status = 200, body = Vec<Zone>)))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<MapQuery>,
) -> ApiResult<Json<Vec<Zone>>> {
    let scope = user.scope(&state.db).await?;
    let zones = reference::zones(&state.db.pool, scope.zones()).await?;
    Ok(Json(
        zones.into_iter().map(|z| in_datum(z, q.datum)).collect(),
    ))
}

/// One zone (404 outside the caller's scope).
#[utoipa::path(get, path = "/v1/zones/{id}", operation_id = "get_zone", tag = "reference", security(("bearer" = [])),
    params(("id" = Uuid, Path), MapQuery), responses((status = 200, body = Zone), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Query(q): Query<MapQuery>,
) -> ApiResult<Json<Zone>> {
    user.scope(&state.db).await?.check_visible(id, "zone")?;
    reference::zone(&state.db.pool, id)
        .await?
        .map(|z| Json(in_datum(z, q.datum)))
        .ok_or_else(|| ApiError::not_found("zone"))
}

/// Create a zone (admin).
#[utoipa::path(post, path = "/v1/zones", operation_id = "create_zone", tag = "reference", security(("bearer" = [])), request_body = ZoneInput,
    responses((status = 201, body = Zone), (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<ZoneInput>,
) -> ApiResult<(StatusCode, Json<Zone>)> {
    user.require_admin()?;
    validate(&input)?;
    let mut tx = state.db.begin_write().await?;
    let zone = reference::insert_zone(tx.conn(), &input).await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "zone.create",
        "zone",
        &zone.id.to_string(),
        None::<&()>,
        Some(&zone),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(zone)))
}

/// Replace a zone's code, name and boundary (admin).
#[utoipa::path(put, path = "/v1/zones/{id}", operation_id = "update_zone", tag = "reference", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ZoneInput,
    responses((status = 200, body = Zone), (status = 404, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(input): Json<ZoneInput>,
) -> ApiResult<Json<Zone>> {
    user.require_admin()?;
    validate(&input)?;
    let mut tx = state.db.begin_write().await?;
    let before = reference::zone(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("zone"))?;
    let after = reference::update_zone(tx.conn(), id, &input)
        .await?
        .ok_or_else(|| ApiError::not_found("zone"))?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "zone.update",
        "zone",
        &id.to_string(),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}
