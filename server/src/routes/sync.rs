//! Offline sync endpoints (see `sync-protocol/PROTOCOL.md`).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use gridline_sync::{PullQuery, PullResponse, PushRequest, PushResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{NewestFirst, Page};
use crate::routes::extract::{Json, Query};
use crate::state::AppState;
use crate::store::{self, time_from_ms};

/// A push body: the protocol's batch limit, the whole body as sent (413 beyond it).
pub const PUSH_BODY_LIMIT: usize = gridline_sync::MAX_BATCH_BYTES;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(push))
        .layer(DefaultBodyLimit::max(PUSH_BODY_LIMIT))
        .routes(routes!(pull))
        .routes(routes!(rejections))
}

/// Push queued operations. Each gets a result; the response's `acked_through` and signed
/// receipt say which are stored. 409 `sequence_gap`/`sequence_behind` with
/// `details.resend_from`; 413 `payload_too_large` for more than 500 operations or a body over
/// 4 MiB; 422 for a batch whose seqs are not consecutive; 426 for an unsupported protocol; 503
/// with `Retry-After` for transient trouble (nothing acknowledged).
#[utoipa::path(post, path = "/v1/sync/push", operation_id = "push_operations", tag = "sync", security(("bearer" = [])), request_body = PushRequest,
    responses((status = 200, body = PushResponse), (status = 409, body = gridline_sync::ErrorBody),
              (status = 413, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody),
              (status = 426, body = gridline_sync::ErrorBody), (status = 503, body = gridline_sync::ErrorBody)))]
async fn push(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<PushRequest>,
) -> ApiResult<Json<PushResponse>> {
    Ok(Json(
        crate::sync::push::push(&state.sync_service(), &user, req).await?,
    ))
}

/// Pull changes in the caller's scope since `cursor`, in commit order. 410 `reset_required`
/// when the cursor is unknown or too old.
#[utoipa::path(get, path = "/v1/sync/pull", operation_id = "pull_changes", tag = "sync", security(("bearer" = [])), params(PullQuery),
    responses((status = 200, body = PullResponse), (status = 410, body = gridline_sync::ErrorBody),
              (status = 426, body = gridline_sync::ErrorBody)))]
async fn pull(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<PullQuery>,
) -> ApiResult<Response> {
    // The body is a `PullResponse`, written by `PullPage` without a JSON tree per case.
    let page = crate::sync::pull::pull(&state.db, &user, q).await?;
    let body = page.to_json().map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// An operation the server refused, kept whole.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejection {
    pub id: Uuid,
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub seq: i64,
    pub op_id: Option<Uuid>,
    /// The exact signed operation text.
    pub op: String,
    pub code: String,
    pub message: String,
    /// False for integrity failures (bad signature, broken chain): the device is flagged.
    pub acknowledged: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: time::OffsetDateTime,
}

/// Operations refused by the server, newest first, a page at a time (supervisors and admins).
#[utoipa::path(get, path = "/v1/sync/rejections", operation_id = "list_rejections", tag = "sync", security(("bearer" = [])), params(NewestFirst),
    responses((status = 200, body = Page<Rejection>), (status = 422, body = gridline_sync::ErrorBody)))]
async fn rejections(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<NewestFirst>,
) -> ApiResult<Json<Page<Rejection>>> {
    user.require_any(&[gridline_sync::Role::Supervisor])?;
    let limit = q.limit()?;
    let rows = store::sync::rejections(&state.db.pool, q.before, limit + 1).await?;
    let items = rows
        .into_iter()
        .map(|r| Rejection {
            id: r.id,
            device_id: r.device_id,
            user_id: r.user_id,
            seq: r.seq,
            op_id: r.op_id,
            op: r.op_text,
            code: r.code,
            message: r.message,
            acknowledged: r.acknowledged,
            received_at: time_from_ms(r.received_at),
        })
        .collect();
    Ok(Json(q.page(items, limit, |r: &Rejection| r.id)))
}
