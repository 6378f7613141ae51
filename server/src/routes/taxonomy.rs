//! The problem taxonomy (components and events, coded).

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::model::TaxonomyEntry;
use crate::routes::extract::Json;
use crate::state::AppState;
use crate::store::reference;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, upsert))
}

/// The whole taxonomy.
#[utoipa::path(get, path = "/v1/taxonomy", operation_id = "list_taxonomy", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Vec<TaxonomyEntry>)))]
async fn list(
    State(state): State<AppState>,
    _user: AuthUser,
) -> ApiResult<Json<Vec<TaxonomyEntry>>> {
    Ok(Json(reference::taxonomy(&state.db.pool).await?))
}

/// Add or refine taxonomy entries (admin); all or none.
#[utoipa::path(put, path = "/v1/taxonomy", operation_id = "upsert_taxonomy", tag = "reference", security(("bearer" = [])),
    request_body = Vec<TaxonomyEntry>,
    responses((status = 200, body = Vec<TaxonomyEntry>), (status = 422, body = gridline_sync::ErrorBody)))]
async fn upsert(
    State(state): State<AppState>,
    user: AuthUser,
    Json(entries): Json<Vec<TaxonomyEntry>>,
) -> ApiResult<Json<Vec<TaxonomyEntry>>> {
    Ok(Json(
        crate::taxonomy::upsert(&state.db, &user, entries).await?,
    ))
}
