//! Email settings for notices: each person's own (kinds, quiet hours) and the roles' defaults
//! (admin). They decide only what is mailed; the inbox receives every notice regardless.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::notify_settings::{self, MySettings, MySettingsInput, RoleSettings, RoleSettingsInput};
use crate::routes::extract::{Json, PathParam};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_settings, set_my_settings))
        .routes(routes!(role_settings, set_role_settings))
}

/// The caller's email settings: for each kind of notice whether it is mailed `immediately`,
/// in the daily `digest` or `off` (their own choice or their roles' default), and their quiet
/// hours. The inbox receives every notice whatever these say.
#[utoipa::path(get, path = "/v1/me/notification-settings", operation_id = "get_my_notification_settings", tag = "notices",
    security(("bearer" = [])),
    responses((status = 200, body = MySettings)))]
async fn my_settings(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<MySettings>> {
    let c = &state.config;
    Ok(Json(
        notify_settings::mine(&state.db, &user, &c.notifications, &c.site).await?,
    ))
}

/// Replace the caller's email settings: kinds left out follow their roles again, and no
/// `quiet_hours` means none. Escalations (`case.due_soon`, `case.overdue`) cannot be `off`.
#[utoipa::path(put, path = "/v1/me/notification-settings", operation_id = "set_my_notification_settings", tag = "notices",
    security(("bearer" = [])),
    request_body = MySettingsInput,
    responses((status = 200, body = MySettings), (status = 422, body = gridline_sync::ErrorBody)))]
async fn set_my_settings(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<MySettingsInput>,
) -> ApiResult<Json<MySettings>> {
    notify_settings::set_mine(&state.db, &user, input).await?;
    let c = &state.config;
    Ok(Json(
        notify_settings::mine(&state.db, &user, &c.notifications, &c.site).await?,
    ))
}

/// A role's email defaults (admin): what its holders get for the kinds they have not chosen
/// themselves (a person with several roles gets the most generous).
#[utoipa::path(get, path = "/v1/notification-settings/roles/{role}", operation_id = "get_role_notification_settings", tag = "notices",
    security(("bearer" = [])),
    params(("role" = Role, Path)),
    responses((status = 200, body = RoleSettings), (status = 403, body = gridline_sync::ErrorBody)))]
async fn role_settings(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(role): PathParam<Role>,
) -> ApiResult<Json<RoleSettings>> {
    Ok(Json(notify_settings::role(&state.db, &user, role).await?))
}

/// Replace a role's email defaults (admin, audited); kinds left out are mailed immediately.
/// Escalations (`case.due_soon`, `case.overdue`) cannot be `off`.
#[utoipa::path(put, path = "/v1/notification-settings/roles/{role}", operation_id = "set_role_notification_settings", tag = "notices",
    security(("bearer" = [])),
    params(("role" = Role, Path)),
    request_body = RoleSettingsInput,
    responses((status = 200, body = RoleSettings), (status = 403, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn set_role_settings(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(role): PathParam<Role>,
    Json(input): Json<RoleSettingsInput>,
) -> ApiResult<(StatusCode, Json<RoleSettings>)> {
    Ok((
        StatusCode::OK,
        Json(notify_settings::set_role(&state.db, &user, role, input).await?),
    ))
}
