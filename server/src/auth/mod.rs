//! Authentication and scope.
//!
//! Access tokens are short-lived EdDSA JWTs with a `kid`; refresh tokens are opaque, single use
//! and stored hashed (see `store::tokens`). A token bound to a device is refused as soon as the
//! device is revoked. [`AuthUser`] (defined in `access`) is the extractor every protected
//! handler takes; [`Scope`] is what the roster lets that user see.

pub mod keys;
pub mod password;
pub mod throttle;
pub mod tokens;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gridline_sync::ErrorCode;
use jsonwebtoken::{Algorithm, Validation};

pub use crate::access::{AuthUser, Scope};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store;
pub use tokens::{Claims, ACCESS_TOKEN_TYPE};

/// Verifies signature, algorithm, key id, issuer, audience, expiry and not-before.
pub fn verify_access_token(state: &AppState, token: &str) -> Result<Claims, ApiError> {
    let bad = || ApiError::unauthenticated("invalid or expired access token");
    // `decode_header` refuses `alg: none` (not an algorithm jsonwebtoken knows).
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad())?;
    if header.alg != Algorithm::EdDSA {
        return Err(bad());
    }
    let kid = header.kid.ok_or_else(bad)?;
    let key = state.keys.decoding_key(&kid).ok_or_else(bad)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&state.config.auth.issuer]);
    validation.set_audience(&[&state.config.auth.audience]);
    validation.validate_nbf = true;
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|_| bad())?;
    if data.claims.typ != ACCESS_TOKEN_TYPE {
        return Err(bad());
    }
    Ok(data.claims)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthenticated("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthenticated("expected `Authorization: Bearer <token>`"))?;
        let claims = verify_access_token(state, token.trim())?;
        if let Some(device) = claims.did {
            if !store::devices::is_active(&state.db.pool, device, claims.sub).await? {
                return Err(ApiError::new(
                    ErrorCode::DeviceRevoked,
                    "this device has been revoked",
                ));
            }
        }
        for key in [
            Some(format!("u:{}", claims.sub)),
            claims.did.map(|d| format!("d:{d}")),
        ]
        .into_iter()
        .flatten()
        {
            if let Err(wait) = state.rate_limiter.check(&key) {
                return Err(
                    ApiError::new(ErrorCode::RateLimited, "too many requests; slow down")
                        .retry_after(wait.as_secs().max(1)),
                );
            }
        }
        tracing::Span::current().record("user", tracing::field::display(claims.sub));
        Ok(AuthUser {
            user_id: claims.sub,
            roles: claims.roles,
            device_id: claims.did,
        })
    }
}
