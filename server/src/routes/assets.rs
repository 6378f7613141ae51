//! The coded asset registry, with all-or-nothing CSV import.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::assets;
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::model::{Asset, ImportReport, Page};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(import))
}

/// Largest CSV import.
pub const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AssetQuery {
    pub zone_id: Option<Uuid>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 200).
    pub limit: Option<i64>,
}

/// Assets in the caller's scope, by code, paged.
#[utoipa::path(get, path = "/v1/assets", operation_id = "list_assets", tag = "reference", security(("bearer" = [])), params(AssetQuery),
    responses((status = 200, body = Page<Asset>)))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<AssetQuery>,
) -> ApiResult<Json<Page<Asset>>> {
    let limit = q.limit.unwrap_or(200);
    let page = assets::list(&state.db, &user, q.zone_id, q.after, limit).await?;
    Ok(Json(page))
}

/// One asset by code (404 outside the caller's scope).
#[utoipa::path(get, path = "/v1/assets/{code}", operation_id = "get_asset", tag = "reference", security(("bearer" = [])), params(("code" = String, Path)),
    responses((status = 200, body = Asset), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(code): PathParam<String>,
) -> ApiResult<Json<Asset>> {
    Ok(Json(assets::get(&state.db, &user, &code).await?))
}

/// Import assets from CSV (admin): header `code,zone_code,category_code,name,lat,lon`, where
/// `category_code` is the 4-digit component code (its digits must match the asset code's). Every
/// row is checked first; if any row is bad, nothing is imported and every bad row is reported
/// in `details.errors` with its line number.
#[utoipa::path(post, path = "/v1/assets/import", operation_id = "import_assets", tag = "reference", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = ImportReport), (status = 422, body = gridline_sync::ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ImportReport>)> {
    let report = assets::import(&state.db, &user, &body).await?;
    Ok((StatusCode::CREATED, Json(report)))
}
