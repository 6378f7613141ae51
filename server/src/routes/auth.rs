//! Login, token refresh and logout.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::{ErrorCode, LoginRequest, RefreshRequest, TokenResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts;
use crate::auth::throttle::{self, ClientAddr};
use crate::error::ApiResult;
use crate::routes::extract::Json;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// Log in with user name and password, optionally binding the tokens to an enrolled device.
///
/// Failed logins are throttled (429 with `Retry-After`): a user name from one address after
/// `auth.login_max_failures` failures, an address after `auth.login_max_failures_per_address`,
/// a user name from everywhere after `auth.login_max_failures_per_user`; each lock lasts
/// `auth.login_lockout_secs`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, body = gridline_sync::ErrorBody),
    (status = 422, body = gridline_sync::ErrorBody),
    (status = 429, body = gridline_sync::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let throttle = throttle::keys(&state.config.auth, &req.username, client);
    let tokens = accounts::log_in(
        &state.token_service(),
        &req.username,
        &req.password,
        &throttle,
        req.device_id,
    )
    .await
    .inspect_err(|e| {
        if e.code == ErrorCode::InvalidCredentials {
            tracing::info!(client = ?client.0, "failed login from this address");
        }
    })?;
    Ok(Json(tokens))
}

/// Exchange a refresh token for new tokens. Each refresh token works once: presenting a spent
/// one again revokes every token of its login (its family).
#[utoipa::path(post, path = "/v1/auth/refresh", operation_id = "refresh_tokens", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, body = gridline_sync::ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let tokens = state.token_service().refresh(&req.refresh_token).await?;
    Ok(Json(tokens))
}

/// Revoke the login a refresh token belongs to (its whole family).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest, responses(
    (status = 204, description = "Revoked (also when the token was unknown)")))]
async fn logout(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    state.token_service().logout(&req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
