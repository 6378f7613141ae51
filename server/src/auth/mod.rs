//! Authentication and scope.
//!
//! Access tokens are short-lived EdDSA JWTs with a `kid`; refresh tokens are opaque, single use
//! and stored hashed (see `store::tokens`). A token bound to a device is refused as soon as the
//! device is revoked. [`AuthUser`] is the extractor every protected handler takes; [`Scope`] is
//! what the roster lets that user see.

pub mod keys;
pub mod password;
pub mod throttle;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gridline_sync::{ErrorCode, Role};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{self, now_ms};

pub const ACCESS_TOKEN_TYPE: &str = "access";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// Always `access`: refresh tokens are not JWTs, so one cannot pass for the other.
    pub typ: String,
    pub roles: Vec<Role>,
    /// The enrolled device the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did: Option<Uuid>,
}

pub fn issue_access_token(
    state: &AppState,
    user_id: Uuid,
    roles: &[Role],
    device_id: Option<Uuid>,
) -> ApiResult<String> {
    let now = now_ms() / 1000;
    let claims = Claims {
        sub: user_id,
        iss: state.config.auth.issuer.clone(),
        aud: state.config.auth.audience.clone(),
        iat: now,
        nbf: now,
        exp: now + state.config.auth.access_ttl_secs as i64,
        jti: store::new_id(),
        typ: ACCESS_TOKEN_TYPE.to_owned(),
        roles: roles.to_vec(),
        did: device_id,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(state.keys.current.kid.clone());
    jsonwebtoken::encode(&header, &claims, &state.keys.current.encoding).map_err(ApiError::internal)
}

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

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub roles: Vec<Role>,
    pub device_id: Option<Uuid>,
}

impl AuthUser {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }
    /// Admin or supervisor: the people who decide.
    pub fn is_supervisor_level(&self) -> bool {
        self.roles.iter().any(|r| r.is_supervisor_level())
    }
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs the admin role"))
        }
    }
    pub fn require_any(&self, roles: &[Role]) -> ApiResult<()> {
        if self.is_admin() || roles.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this needs one of the roles: {}",
                names.join(", ")
            )))
        }
    }
    /// Whom unannounced inspections are hidden from (see `store::cases::hidden_case_sql`):
    /// `None` for admins and supervisors, who see them all; anyone else sees only their own.
    pub fn confidential_reader(&self) -> Option<Uuid> {
        (!self.is_supervisor_level()).then_some(self.user_id)
    }
    /// Sync endpoints need a token bound to an enrolled device.
    pub fn require_device(&self) -> ApiResult<Uuid> {
        self.device_id.ok_or_else(|| {
            ApiError::new(
                ErrorCode::Forbidden,
                "this needs a token bound to an enrolled device",
            )
        })
    }

    /// The zones the roster gives this user now.
    pub async fn scope(&self, state: &AppState) -> ApiResult<Scope> {
        if self.is_admin() {
            return Ok(Scope::All);
        }
        match store::reference::current_zones(&state.db.pool, self.user_id, now_ms()).await? {
            None => Ok(Scope::All),
            Some(zones) => Ok(Scope::Zones(zones)),
        }
    }
}

/// What a user may see and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Zones(Vec<Uuid>),
}

impl Scope {
    pub fn contains(&self, zone: Uuid) -> bool {
        match self {
            Scope::All => true,
            Scope::Zones(zones) => zones.contains(&zone),
        }
    }
    pub fn zones(&self) -> Option<&[Uuid]> {
        match self {
            Scope::All => None,
            Scope::Zones(z) => Some(z),
        }
    }
    /// A case `user` may read: in the scope, and not an unannounced inspection of someone
    /// else's (404 otherwise, like anything outside the scope).
    pub async fn check_case_visible(
        &self,
        conn: &mut sqlx::AnyConnection,
        user: &AuthUser,
        case: Uuid,
        zone: Uuid,
    ) -> ApiResult<()> {
        self.check_visible(zone, "case")?;
        if store::cases::is_hidden(conn, case, user.confidential_reader()).await? {
            return Err(ApiError::not_found("case"));
        }
        Ok(())
    }
    /// 404 rather than 403 for things outside the scope: their existence must not leak.
    pub fn check_visible(&self, zone: Uuid, what: &str) -> ApiResult<()> {
        if self.contains(zone) {
            Ok(())
        } else {
            Err(ApiError::not_found(what))
        }
    }
    pub fn check_writable(&self, zone: Uuid) -> ApiResult<()> {
        if self.contains(zone) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::OutOfScope,
                "that zone is outside your roster",
            ))
        }
    }
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
