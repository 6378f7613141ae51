//! Users: the caller's own account, and admin management.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::accounts;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{User, UserInput};
use crate::routes::extract::{Json, PathParam};
use crate::state::AppState;
use crate::store::users;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list, create))
        .routes(routes!(reset_password))
        .routes(routes!(update))
}

/// Change a user's display name, roles or disabled state (admin). Changing roles or disabling
/// revokes the user's refresh tokens; an admin cannot disable themselves or drop their own admin
/// role.
#[utoipa::path(patch, path = "/v1/users/{id}", operation_id = "update_user", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = accounts::UserUpdate,
    responses((status = 200, body = User), (status = 404, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(change): Json<accounts::UserUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        accounts::update_user(&state.db, &user, id, change).await?,
    ))
}

/// The caller's account.
#[utoipa::path(get, path = "/v1/me", operation_id = "get_me", tag = "users", security(("bearer" = [])), responses((status = 200, body = User)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<User>> {
    let row = users::by_id(&state.db.pool, user.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(accounts::user_model(&row)))
}

/// Every user (admin).
#[utoipa::path(get, path = "/v1/users", operation_id = "list_users", tag = "users", security(("bearer" = [])), responses((status = 200, body = Vec<User>)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<User>>> {
    user.require_admin()?;
    Ok(Json(
        users::list(&state.db.pool)
            .await?
            .iter()
            .map(accounts::user_model)
            .collect(),
    ))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/v1/users", operation_id = "create_user", tag = "users", security(("bearer" = [])), request_body = UserInput,
    responses((status = 201, body = User), (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<UserInput>,
) -> ApiResult<(StatusCode, Json<User>)> {
    user.require_admin()?;
    let created = accounts::create_user(&state.db, Some(user.user_id), input).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub password: String,
}

/// Set a new password (admin). Every refresh token of the user is revoked.
#[utoipa::path(post, path = "/v1/users/{id}/password", operation_id = "reset_password", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PasswordReset,
    responses((status = 204), (status = 404, body = gridline_sync::ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(input): Json<PasswordReset>,
) -> ApiResult<StatusCode> {
    user.require_admin()?;
    accounts::set_password(&state.db, Some(user.user_id), id, input.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
