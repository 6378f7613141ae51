//! Rulebooks: versioned sets of deduction rules. A new version is a new rulebook; old versions
//! stay as they were, because ledger entries cite them.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Rulebook, RulebookInput};
use crate::routes::extract::Json;
use crate::state::AppState;
use crate::store::{now_ms, reference};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(active))
}

/// Every rulebook version, oldest first.
#[utoipa::path(get, path = "/v1/rulebooks", operation_id = "list_rulebooks", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Vec<Rulebook>)))]
async fn list(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Vec<Rulebook>>> {
    Ok(Json(reference::rulebooks(&state.db.pool).await?))
}

/// The rulebook in force now.
#[utoipa::path(get, path = "/v1/rulebooks/active", operation_id = "get_active_rulebook", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Rulebook), (status = 404, body = gridline_sync::ErrorBody)))]
async fn active(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Rulebook>> {
    reference::active_rulebook(&state.db.pool, now_ms())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("active rulebook"))
}

/// Publish a new rulebook version (admin).
#[utoipa::path(post, path = "/v1/rulebooks", operation_id = "create_rulebook", tag = "reference", security(("bearer" = [])), request_body = RulebookInput,
    responses((status = 201, body = Rulebook), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<RulebookInput>,
) -> ApiResult<(StatusCode, Json<Rulebook>)> {
    let rulebook = crate::rulebooks::publish(&state.db, &user, &input).await?;
    Ok((StatusCode::CREATED, Json(rulebook)))
}
