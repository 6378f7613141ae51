//! The roster: who answers for which zone in which role, time-versioned. A change closes the
//! old row and opens a new one; rows are never edited otherwise.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::model::{RosterEntry, RosterInput};
use crate::roster::{self, Reassign};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::{ms_from_time, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(end))
        .routes(routes!(reassign))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RosterQuery {
    pub zone_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// Rows valid at this time (RFC 3339); default now. `all=true` lists history.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    pub at: Option<time::OffsetDateTime>,
    #[serde(default)]
    pub all: bool,
}

/// Roster rows in the caller's scope.
#[utoipa::path(get, path = "/v1/roster", operation_id = "list_roster", tag = "reference", security(("bearer" = [])), params(RosterQuery),
    responses((status = 200, body = Vec<RosterEntry>)))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<RosterQuery>,
) -> ApiResult<Json<Vec<RosterEntry>>> {
    let at = if q.all {
        None
    } else {
        Some(q.at.map(ms_from_time).unwrap_or_else(now_ms))
    };
    Ok(Json(
        roster::list(&state.db, &user, q.zone_id, q.user_id, at).await?,
    ))
}

/// Open an assignment (admin).
#[utoipa::path(post, path = "/v1/roster", operation_id = "create_roster_assignment", tag = "reference", security(("bearer" = [])), request_body = RosterInput,
    responses((status = 201, body = RosterEntry), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<RosterInput>,
) -> ApiResult<(StatusCode, Json<RosterEntry>)> {
    let row = roster::open(&state.db, &user, &input).await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Close a current assignment (admin).
#[utoipa::path(post, path = "/v1/roster/{id}/end", operation_id = "end_roster_assignment", tag = "reference", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = RosterEntry), (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody)))]
async fn end(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<RosterEntry>> {
    Ok(Json(roster::end(&state.db, &user, id).await?))
}

/// Change an assignment (admin): closes the old row and opens a new one, atomically.
#[utoipa::path(post, path = "/v1/roster/{id}/reassign", operation_id = "reassign_roster_assignment", tag = "reference", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = Reassign,
    responses((status = 201, body = RosterEntry), (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody)))]
async fn reassign(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(input): Json<Reassign>,
) -> ApiResult<(StatusCode, Json<RosterEntry>)> {
    let row = roster::reassign(&state.db, &user, id, &input).await?;
    Ok((StatusCode::CREATED, Json(row)))
}
