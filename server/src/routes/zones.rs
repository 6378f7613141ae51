//! Zones with their GeoJSON boundaries (the work is in [`crate::zones`]).

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::Datum;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::model::{Zone, ZoneInput};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::zones;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update))
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

/// Zones in the caller's scope, with boundaries.
#[utoipa::path(get, path = "/v1/zones", operation_id = "list_zones", tag = "reference", security(("bearer" = [])),
    params(MapQuery), responses((status = 200, body = Vec<Zone>)))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<MapQuery>,
) -> ApiResult<Json<Vec<Zone>>> {
    Ok(Json(zones::list(&state.db, &user, q.datum).await?))
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
    Ok(Json(zones::get(&state.db, &user, id, q.datum).await?))
}

/// Create a zone (admin).
#[utoipa::path(post, path = "/v1/zones", operation_id = "create_zone", tag = "reference", security(("bearer" = [])), request_body = ZoneInput,
    responses((status = 201, body = Zone), (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<ZoneInput>,
) -> ApiResult<(StatusCode, Json<Zone>)> {
    let zone = zones::create(&state.db, &user, &input).await?;
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
    let after = zones::update(&state.db, &user, id, &input).await?;
    Ok(Json(after))
}
