//! The roster: who answers for which zone in which role, time-versioned. A change closes the
//! old row and opens a new one; rows are never edited otherwise.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::Role;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::model::{RosterEntry, RosterInput};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::{audit, ms_from_time, now_ms, reference, users};

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
    let scope = user.scope(&state.db).await?;
    let at = if q.all {
        None
    } else {
        Some(q.at.map(ms_from_time).unwrap_or_else(now_ms))
    };
    let rows = reference::roster(&state.db.pool, q.zone_id, q.user_id, at).await?;
    Ok(Json(
        rows.into_iter().filter(|r| visible(&scope, r)).collect(),
    ))
}

fn visible(scope: &Scope, row: &RosterEntry) -> bool {
    match (scope, row.zone_id) {
        (Scope::All, _) => true,
        (Scope::Zones(_), None) => true,
        (Scope::Zones(z), Some(zone)) => z.contains(&zone),
    }
}

async fn check_input(state: &AppState, input: &RosterInput) -> ApiResult<()> {
    let user = users::by_id(&state.db.pool, input.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid("user_id", "no such user"))?;
    if !user.roles.contains(&input.role) {
        return Err(ApiError::invalid(
            "role",
            format!(
                "user {} does not have the role {}",
                user.username,
                input.role.as_str()
            ),
        ));
    }
    if let Some(zone) = input.zone_id {
        reference::zone(&state.db.pool, zone)
            .await?
            .ok_or_else(|| ApiError::invalid("zone_id", "no such zone"))?;
    }
    if input.role == Role::Admin {
        return Err(ApiError::invalid(
            "role",
            "admins are not rostered; they see everything",
        ));
    }
    Ok(())
}

/// Open an assignment (admin).
#[utoipa::path(post, path = "/v1/roster", operation_id = "create_roster_assignment", tag = "reference", security(("bearer" = [])), request_body = RosterInput,
    responses((status = 201, body = RosterEntry), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<RosterInput>,
) -> ApiResult<(StatusCode, Json<RosterEntry>)> {
    user.require_admin()?;
    check_input(&state, &input).await?;
    let mut tx = state.db.begin_write().await?;
    let id = reference::open_assignment(
        tx.conn(),
        input.user_id,
        input.zone_id,
        input.role,
        Some(user.user_id),
        now_ms(),
    )
    .await?;
    let row = reference::roster_entry(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "roster.open",
        "roster",
        &id.to_string(),
        None::<&()>,
        Some(&row),
    )
    .await?;
    tx.commit().await?;
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
    user.require_admin()?;
    let mut tx = state.db.begin_write().await?;
    let before = reference::roster_entry(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    if !reference::close_assignment(tx.conn(), id, now_ms()).await? {
        return Err(ApiError::conflict("this assignment has already ended"));
    }
    let after = reference::roster_entry(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "roster.close",
        "roster",
        &id.to_string(),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reassign {
    /// The new zone (`null`: every zone).
    pub zone_id: Option<Uuid>,
    pub role: Role,
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
    user.require_admin()?;
    let before = reference::roster_entry(&state.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    check_input(
        &state,
        &RosterInput {
            user_id: before.user_id,
            zone_id: input.zone_id,
            role: input.role,
        },
    )
    .await?;
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    if !reference::close_assignment(tx.conn(), id, now).await? {
        return Err(ApiError::conflict("this assignment has already ended"));
    }
    let new_id = reference::open_assignment(
        tx.conn(),
        before.user_id,
        input.zone_id,
        input.role,
        Some(user.user_id),
        now,
    )
    .await?;
    let after = reference::roster_entry(tx.conn(), new_id)
        .await?
        .ok_or_else(|| ApiError::not_found("roster entry"))?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "roster.reassign",
        "roster",
        &id.to_string(),
        Some(&before),
        Some(&after),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(after)))
}
