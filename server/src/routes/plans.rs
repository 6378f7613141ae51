//! Inspection plans over HTTP: making, listing, cancelling and revealing them, their
//! occurrences and the planners' calendar, and a sealed plan's proof. The work is
//! `crate::plans`'.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::plan::PlanView;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::plans::{self, OccurrenceView, PlanInput, Revealed};
use crate::routes::extract::{Json, PathParam, Query};
use crate::seal::SealProof;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(cancel))
        .routes(routes!(reveal))
        .routes(routes!(occurrences))
        .routes(routes!(calendar))
        .routes(routes!(seal))
        .routes(routes!(reveal_round))
}

/// A range of occurrence starts, at most 366 days.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// First start included, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[param(value_type = String, format = DateTime)]
    pub from: OffsetDateTime,
    /// First start excluded, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[param(value_type = String, format = DateTime)]
    pub to: OffsetDateTime,
}

/// Make an inspection plan (admins, supervisors): a recurrence in the site's time zone, a
/// window, zones, categories, assignees (inspectors) and a checklist. An `unannounced` plan is
/// confidential until revealed, and sealed: its commitment is appended to the signed plan log.
#[utoipa::path(post, path = "/v1/plans", operation_id = "create_plan", tag = "plans", security(("bearer" = [])),
    request_body = PlanInput,
    responses((status = 201, body = PlanView), (status = 403, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<PlanInput>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    let view = plans::create(
        &state.db,
        state.keys.as_ref(),
        &state.config.site.time_zone,
        &user,
        &input,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The plans the caller may see: planners every plan, inspectors those assigned to them, others
/// the announced (and revealed) plans of their zones.
#[utoipa::path(get, path = "/v1/plans", operation_id = "list_plans", tag = "plans", security(("bearer" = [])),
    responses((status = 200, body = Vec<PlanView>)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<PlanView>>> {
    Ok(Json(plans::list(&state.db, &user).await?))
}

/// One plan, with its next occurrences. An unannounced plan not yet revealed is `404` to anyone
/// but planners and its assignees.
#[utoipa::path(get, path = "/v1/plans/{id}", operation_id = "get_plan", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PlanView), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<PlanView>> {
    Ok(Json(plans::get(&state.db, &user, id).await?))
}

/// Cancel a plan (admins, supervisors): it has no occurrence after now; its rounds stay.
#[utoipa::path(post, path = "/v1/plans/{id}/cancel", operation_id = "cancel_plan", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PlanView), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<PlanView>> {
    Ok(Json(plans::cancel(&state.db, &user, id).await?))
}

/// Reveal an unannounced plan (admins, supervisors): it, its rounds and the cases they raised
/// become visible to the inspected zones' roster (their phones pull them next), and its seal can
/// be checked. A period's close reveals the unannounced inspections made before its end.
#[utoipa::path(post, path = "/v1/plans/{id}/reveal", operation_id = "reveal_plan", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Revealed), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody)))]
async fn reveal(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<Revealed>> {
    Ok(Json(plans::reveal(&state.db, &user, id).await?))
}

/// A plan's occurrences starting in a range (at most 366 days), each `upcoming`, `open`,
/// `done` (a round was started for it in its window) or `missed`.
#[utoipa::path(get, path = "/v1/plans/{id}/occurrences", operation_id = "list_plan_occurrences", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path), Range),
    responses((status = 200, body = Vec<OccurrenceView>), (status = 404, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn occurrences(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Query(range): Query<Range>,
) -> ApiResult<Json<Vec<OccurrenceView>>> {
    Ok(Json(
        plans::occurrences(&state.db, &user, id, range.from, range.to).await?,
    ))
}

/// The occurrences of every plan the caller may see, starting in a range (at most 366 days),
/// by start: the inspection calendar.
#[utoipa::path(get, path = "/v1/occurrences", operation_id = "list_occurrences", tag = "plans", security(("bearer" = [])),
    params(Range),
    responses((status = 200, body = Vec<OccurrenceView>), (status = 422, body = gridline_sync::ErrorBody)))]
async fn calendar(
    State(state): State<AppState>,
    user: AuthUser,
    Query(range): Query<Range>,
) -> ApiResult<Json<Vec<OccurrenceView>>> {
    Ok(Json(
        plans::calendar(&state.db, &user, range.from, range.to).await?,
    ))
}

/// A sealed (unannounced) plan's proof: its commitment, the plan log's signed receipt and the
/// commitment's audit path in it; after the reveal also the plan's sealed content and nonce,
/// so that anyone can recompute the commitment and check that the receipt, signed before the
/// first finding, includes it (see SECURITY.md).
#[utoipa::path(get, path = "/v1/plans/{id}/seal", operation_id = "get_plan_seal", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = SealProof), (status = 404, body = gridline_sync::ErrorBody)))]
async fn seal(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<SealProof>> {
    Ok(Json(plans::seal_proof(&state.db, &user, id).await?))
}

/// Reveal one unannounced round and the cases raised in it (admins, supervisors whose scope
/// covers its zone), so that its findings can be deducted before its plan is revealed or its
/// period closes; the plan stays confidential.
#[utoipa::path(post, path = "/v1/rounds/{id}/reveal", operation_id = "reveal_round", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Revealed), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody)))]
async fn reveal_round(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<Revealed>> {
    Ok(Json(plans::reveal_round(&state.db, &user, id).await?))
}
