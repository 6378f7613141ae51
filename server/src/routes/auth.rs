//! Login, token refresh and logout.

use axum::extract::State;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gridline_sync::{ErrorCode, LoginRequest, RefreshRequest, TokenResponse, TokenType, UserInfo};
use rand::RngCore;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::issue_access_token;
use crate::auth::throttle::{self, ClientAddr};
use crate::error::{ApiError, ApiResult};
use crate::routes::extract::Json;
use crate::state::AppState;
use crate::store::{self, devices, now_ms, tokens, users, WriteTx};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

fn hash_refresh(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Issues an access token and a new refresh token in `family` (a fresh family at login).
pub async fn issue_tokens(
    state: &AppState,
    tx: &mut WriteTx,
    user: &users::UserRow,
    device_id: Option<Uuid>,
    family: Uuid,
) -> ApiResult<TokenResponse> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let refresh_token = URL_SAFE_NO_PAD.encode(raw);
    let now = now_ms();
    let expires = now + state.config.auth.refresh_ttl_secs as i64 * 1000;
    tokens::insert(
        tx.conn(),
        &hash_refresh(&refresh_token),
        family,
        user.id,
        device_id,
        now,
        expires,
    )
    .await?;
    let access_token = issue_access_token(state, user.id, &user.roles, device_id)?;
    Ok(TokenResponse {
        access_token,
        refresh_token,
        token_type: TokenType::Bearer,
        expires_in: state.config.auth.access_ttl_secs,
        user: UserInfo {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            roles: user.roles.clone(),
        },
    })
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
    let user = crate::accounts::authenticate(
        &state.db,
        &state.config.auth,
        &req.username,
        &req.password,
        &throttle,
    )
    .await
    .inspect_err(|e| {
        if e.code == ErrorCode::InvalidCredentials {
            tracing::info!(client = ?client.0, "failed login from this address");
        }
    })?;
    if let Some(device) = req.device_id {
        if !devices::is_active(&state.db.pool, device, user.id).await? {
            return Err(ApiError::new(
                ErrorCode::DeviceRevoked,
                "that device is revoked or not enrolled for this user",
            ));
        }
    }
    let mut tx = state.db.begin_write().await?;
    let tokens = issue_tokens(&state, &mut tx, &user, req.device_id, store::new_id()).await?;
    tx.commit().await?;
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
    let invalid = || ApiError::new(ErrorCode::InvalidRefreshToken, "invalid refresh token");
    if req.refresh_token.len() > 512 {
        return Err(invalid());
    }
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    let row = tokens::by_hash(tx.conn(), &hash_refresh(&req.refresh_token))
        .await?
        .ok_or_else(invalid)?;
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Err(invalid());
    }
    if row.used_at.is_some() || !tokens::spend(tx.conn(), row.id, now).await? {
        // A spent token presented again: someone holds a copy. Cut off the whole family.
        let revoked = tokens::revoke_family(tx.conn(), row.family_id, now).await?;
        tx.commit().await?;
        tracing::warn!(family = %row.family_id, revoked, "refresh token reuse: family revoked");
        return Err(ApiError::new(
            ErrorCode::InvalidRefreshToken,
            "refresh token already used; this login has been revoked",
        ));
    }
    if let Some(device) = row.device_id {
        if !devices::is_active(tx.conn(), device, row.user_id).await? {
            return Err(ApiError::new(
                ErrorCode::DeviceRevoked,
                "this device has been revoked",
            ));
        }
    }
    let user = users::by_id(tx.conn(), row.user_id)
        .await?
        .ok_or_else(invalid)?;
    if user.disabled_at.is_some() {
        return Err(invalid());
    }
    let tokens = issue_tokens(&state, &mut tx, &user, row.device_id, row.family_id).await?;
    tx.commit().await?;
    Ok(Json(tokens))
}

/// Revoke the login a refresh token belongs to (its whole family).
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest, responses(
    (status = 204, description = "Revoked (also when the token was unknown)")))]
async fn logout(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin_write().await?;
    if let Some(row) = tokens::by_hash(tx.conn(), &hash_refresh(&req.refresh_token)).await? {
        tokens::revoke_family(tx.conn(), row.family_id, now_ms()).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
