//! Notices: each person's inbox with read receipts, and the webhook subscriptions that receive
//! them (admin).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::notify::{self, InboxPage, Webhook, WebhookInput};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(inbox))
        .routes(routes!(read))
        .routes(routes!(acknowledge))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(disable_webhook))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Only notices not yet read.
    #[serde(default)]
    pub unread: bool,
    /// The `next` value of the previous page.
    pub before: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

/// The caller's notices, newest first, with the number unread.
#[utoipa::path(get, path = "/v1/inbox", operation_id = "list_inbox", tag = "notices", security(("bearer" = [])), params(InboxQuery),
    responses((status = 200, body = InboxPage)))]
async fn inbox(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<InboxQuery>,
) -> ApiResult<Json<InboxPage>> {
    Ok(Json(
        notify::inbox(&state.db, &user, q.unread, q.before.as_deref(), q.limit).await?,
    ))
}

/// The read receipt of one of the caller's notices (reading again changes nothing).
#[utoipa::path(post, path = "/v1/inbox/{id}/read", operation_id = "read_notice", tag = "notices", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = gridline_sync::ErrorBody)))]
async fn read(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<StatusCode> {
    notify::mark_read(&state.db, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The acknowledgement of one of the caller's escalation notices (`case.due_soon`,
/// `case.overdue`): they know the case is due. It also reads the notice; acknowledging again
/// changes nothing. A deduction for lateness cites it.
#[utoipa::path(post, path = "/v1/notices/{id}/acknowledge", operation_id = "acknowledge_notice", tag = "notices", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn acknowledge(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<StatusCode> {
    notify::acknowledge(&state.db, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Webhook subscriptions (admin); secrets are not shown again.
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "notices", security(("bearer" = [])),
    responses((status = 200, body = Vec<Webhook>)))]
async fn list_webhooks(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<Vec<Webhook>>> {
    Ok(Json(notify::webhooks(&state.db, &user).await?))
}

/// Subscribe a URL to notices (admin). Deliveries are POSTs signed per the Standard Webhooks
/// specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the secret in
/// this answer, shown only here.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "notices", security(("bearer" = [])),
    request_body = WebhookInput,
    responses((status = 201, body = Webhook), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<WebhookInput>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    let created = notify::create_webhook(&state.db, &user, input).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Stop a subscription (admin); what it has not yet received is not sent.
#[utoipa::path(post, path = "/v1/webhooks/{id}/disable", operation_id = "disable_webhook", tag = "notices", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = gridline_sync::ErrorBody)))]
async fn disable_webhook(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<StatusCode> {
    notify::disable_webhook(&state.db, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
