//! Users: the caller's own account, and admin management.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::Role;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{password, AuthUser};
use crate::error::{ApiError, ApiResult, Json, PathParam};
use crate::model::{User, UserInput};
use crate::state::AppState;
use crate::store::{self, audit, now_ms, tokens, users};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list, create))
        .routes(routes!(reset_password))
}

pub fn to_model(u: &users::UserRow) -> User {
    User {
        id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        roles: u.roles.clone(),
        disabled: u.disabled_at.is_some(),
    }
}

/// The caller's account.
#[utoipa::path(get, path = "/v1/me", operation_id = "get_me", tag = "users", security(("bearer" = [])), responses((status = 200, body = User)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<User>> {
    let row = users::by_id(&state.db.pool, user.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(to_model(&row)))
}

/// Every user (admin).
#[utoipa::path(get, path = "/v1/users", operation_id = "list_users", tag = "users", security(("bearer" = [])), responses((status = 200, body = Vec<User>)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Vec<User>>> {
    user.require_admin()?;
    Ok(Json(
        users::list(&state.db.pool)
            .await?
            .iter()
            .map(to_model)
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
    let created = create_user(&state, Some(user.user_id), input).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Shared by the route, the `admin create-user` command and the demo loader.
pub async fn create_user(
    state: &AppState,
    actor: Option<Uuid>,
    input: UserInput,
) -> ApiResult<User> {
    validate_username(&input.username)?;
    if input.display_name.trim().is_empty() || input.display_name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "display_name",
            "must be 1 to 200 characters",
        ));
    }
    password::check_strength(&input.password).map_err(|e| ApiError::invalid("password", e))?;
    if input.roles.is_empty() {
        return Err(ApiError::invalid("roles", "needs at least one role"));
    }
    let hash = password::hash(input.password).await?;
    insert_user(
        state,
        actor,
        &input.username,
        &input.display_name,
        &hash,
        &input.roles,
    )
    .await
}

pub async fn insert_user(
    state: &AppState,
    actor: Option<Uuid>,
    username: &str,
    display_name: &str,
    password_hash: &str,
    roles: &[Role],
) -> ApiResult<User> {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    let row = users::UserRow {
        id: store::new_id(),
        username: username.to_owned(),
        display_name: display_name.trim().to_owned(),
        password_hash: password_hash.to_owned(),
        roles,
        disabled_at: None,
        created_at: now_ms(),
    };
    let mut tx = state.db.begin_write().await?;
    if users::by_username(tx.conn(), username).await?.is_some() {
        return Err(ApiError::conflict(format!("user name {username} is taken")));
    }
    users::insert(tx.conn(), &row).await?;
    let model = to_model(&row);
    audit::record(
        tx.conn(),
        actor,
        "user.create",
        "user",
        &row.id.to_string(),
        None::<&()>,
        Some(&model),
    )
    .await?;
    tx.commit().await?;
    Ok(model)
}

fn validate_username(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "username",
            "must be 1 to 64 of a-z, A-Z, 0-9, '.', '_', '-'",
        ))
    }
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
    set_password(&state, Some(user.user_id), id, input.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_password(
    state: &AppState,
    actor: Option<Uuid>,
    id: Uuid,
    password: String,
) -> ApiResult<()> {
    password::check_strength(&password).map_err(|e| ApiError::invalid("password", e))?;
    let hash = password::hash(password).await?;
    let mut tx = state.db.begin_write().await?;
    if !users::set_password(tx.conn(), id, &hash).await? {
        return Err(ApiError::not_found("user"));
    }
    tokens::revoke_user(tx.conn(), id, now_ms()).await?;
    audit::record(
        tx.conn(),
        actor,
        "user.reset_password",
        "user",
        &id.to_string(),
        None::<&()>,
        None::<&()>,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
