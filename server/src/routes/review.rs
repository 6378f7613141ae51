//! Supervisor review over HTTP: case transitions, the workflow side of a case and the review
//! queue. The work is `crate::review`'s; these handlers parse, call it and answer.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::model::{CaseView, Page};
use crate::review::queue::{QueueItem, QueueQuery};
use crate::review::{transition_case, CaseWorkflow, TransitionRequest};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transition))
        .routes(routes!(workflow_of))
        .routes(routes!(queue))
}

/// Move a case through the workflow. Supervisors file, reject, mark duplicates, dispatch,
/// close, return and reopen; the people a case is dispatched to start and report it rectified
/// (phones do the same with `case.transition@1`). Every transition is an event on the case and
/// reaches phones through the pull.
#[utoipa::path(post, path = "/v1/cases/{id}/transitions", operation_id = "transition_case", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TransitionRequest,
    responses((status = 200, body = CaseView), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn transition(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(req): Json<TransitionRequest>,
) -> ApiResult<Json<CaseView>> {
    transition_case(&state.db, &state.config.work_week(), &user, id, req)
        .await
        .map(Json)
}

/// The workflow side of a case: dispatch, assignees, deadline, rework, overdue.
#[utoipa::path(get, path = "/v1/cases/{id}/workflow", operation_id = "get_case_workflow", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CaseWorkflow), (status = 404, body = gridline_sync::ErrorBody)))]
async fn workflow_of(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<CaseWorkflow>> {
    Ok(Json(
        crate::review::workflow_of(&state.db, &user, id).await?,
    ))
}

/// The review queue (supervisors): cases in scope, filtered, oldest received first, paged by
/// an opaque cursor. Each item carries the case, its evidence with verification status and
/// flags, and its workflow.
#[utoipa::path(get, path = "/v1/review/queue", operation_id = "get_review_queue", tag = "review", security(("bearer" = [])), params(QueueQuery),
    responses((status = 200, body = Page<QueueItem>), (status = 403, body = gridline_sync::ErrorBody)))]
async fn queue(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<Page<QueueItem>>> {
    Ok(Json(
        crate::review::queue::queue(&state.db, &user, &q).await?,
    ))
}
