//! Cases from outside the patrol over HTTP: taking a report in, its intake record (callers,
//! callbacks), the cases it may duplicate and the callback. The work is `crate::intake`'s.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::documents::DocumentView;
use crate::error::ApiResult;
use crate::intake::{
    CallbackInput, CallbackView, DuplicateSuggestion, IntakeInput, IntakeOutcome, IntakeRecord,
};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(take_in))
        .routes(routes!(record))
        .routes(routes!(duplicates))
        .routes(routes!(call_back))
        .routes(routes!(add_document))
        .layer(DefaultBodyLimit::max(
            crate::documents::MAX_DOCUMENT_BYTES + 4096,
        ))
        .routes(routes!(documents))
        .routes(routes!(document))
}

/// Take a report in from a channel outside the patrol (hotline operators, supervisors): a
/// hotline call, a public report, a department's transfer, the press, a leader's instruction.
/// It becomes a case in `reported`, in the zone its place falls in (or the asset's, or the one
/// named), and runs the same workflow as an inspector's finding. The caller's name and phone
/// are kept apart from the case. A ticket number already filed in its channel answers `409`
/// with `details.case_id`. The answer names the open cases it may duplicate.
#[utoipa::path(post, path = "/v1/intake", operation_id = "take_in_report", tag = "intake", security(("bearer" = [])),
    request_body = IntakeInput,
    responses((status = 201, body = IntakeOutcome), (status = 403, body = gridline_sync::ErrorBody),
        (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn take_in(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<IntakeInput>,
) -> ApiResult<(StatusCode, Json<IntakeOutcome>)> {
    let outcome = crate::intake::take_in(&state.db, &state.config.intake, &user, input).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

/// How a case from a channel came in: channel, ticket, address, its callers (in full for
/// hotline operators and admins, masked for supervisors; erased after the retention period)
/// and the callbacks made.
#[utoipa::path(get, path = "/v1/cases/{id}/intake", operation_id = "get_case_intake", tag = "intake", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = IntakeRecord), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody)))]
async fn record(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<IntakeRecord>> {
    Ok(Json(crate::intake::record_of(&state.db, &user, id).await?))
}

/// Open cases a case may duplicate: on the same asset, or of the same category within
/// `intake.duplicate_radius_m` received in the last `intake.duplicate_days`, same asset first
/// then nearest. Mark the duplicate with the `mark_duplicate` transition: its callers follow
/// to the case that goes on.
#[utoipa::path(get, path = "/v1/cases/{id}/duplicates", operation_id = "get_case_duplicates", tag = "intake", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<DuplicateSuggestion>), (status = 404, body = gridline_sync::ErrorBody)))]
async fn duplicates(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<Vec<DuplicateSuggestion>>> {
    Ok(Json(
        crate::intake::suggestions_for(&state.db, &state.config.intake, &user, id).await?,
    ))
}

/// Record a callback (回访) on a closed case from a channel: what the caller said
/// (`satisfied`, `basically_satisfied`, `dissatisfied`, `unreachable`).
#[utoipa::path(post, path = "/v1/cases/{id}/callbacks", operation_id = "call_back", tag = "intake", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CallbackInput,
    responses((status = 201, body = CallbackView), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn call_back(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(input): Json<CallbackInput>,
) -> ApiResult<(StatusCode, Json<CallbackView>)> {
    let view = crate::intake::call_back(&state.db, &user, id, input).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DocumentQuery {
    /// The file's name as it should be shown (its last path part is kept).
    #[serde(default)]
    pub filename: Option<String>,
}

/// Add a PDF document to a case (hotline operators, supervisors): a leader's scanned
/// instruction, a press clipping, a transfer letter. The body is the file (at most 20 MiB);
/// stored by its SHA-256 and bound into the ledger entry of a deduction on the case, like its
/// photos. The same file again answers the one already there. 409 `evidence_locked` once a
/// deduction was approved.
#[utoipa::path(post, path = "/v1/cases/{id}/documents", operation_id = "add_case_document", tag = "intake", security(("bearer" = [])),
    params(("id" = Uuid, Path), DocumentQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The PDF file's bytes (any content type is read as the file)"),
    responses((status = 201, body = DocumentView), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody),
        (status = 413, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody),
        (status = 503, body = gridline_sync::ErrorBody)))]
async fn add_document(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Query(q): Query<DocumentQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<DocumentView>)> {
    let filename = q.filename.unwrap_or_default();
    let doc = crate::documents::add(&state.db, &state.blobs, &user, id, &filename, body).await?;
    Ok((StatusCode::CREATED, Json(doc)))
}

/// The documents of a case (hotline operators, supervisors).
#[utoipa::path(get, path = "/v1/cases/{id}/documents", operation_id = "list_case_documents", tag = "intake", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<DocumentView>), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody)))]
async fn documents(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<Vec<DocumentView>>> {
    Ok(Json(crate::documents::list(&state.db, &user, id).await?))
}

/// One document of a case, as the PDF file.
#[utoipa::path(get, path = "/v1/cases/{id}/documents/{sha256}", operation_id = "get_case_document", tag = "intake", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("sha256" = String, Path)),
    responses((status = 200, content_type = "application/pdf", description = "The document"),
        (status = 403, body = gridline_sync::ErrorBody), (status = 404, body = gridline_sync::ErrorBody),
        (status = 503, body = gridline_sync::ErrorBody)))]
async fn document(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam((id, sha256)): PathParam<(Uuid, String)>,
) -> ApiResult<Response> {
    let (doc, bytes) = crate::documents::fetch(&state.db, &state.blobs, &user, id, &sha256).await?;
    Ok(crate::download::pdf(&doc.filename, bytes))
}
