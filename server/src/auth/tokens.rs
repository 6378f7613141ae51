//! Issuing and spending tokens: the access token (a short-lived EdDSA JWT with a `kid`) and
//! the opaque refresh token, single use and stored hashed, in a family that one login opens.
//! Login and device enrolment (in `accounts`), refresh and logout all go through
//! [`TokenService`].

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gridline_sync::{ErrorCode, Role, ServerKey, TokenResponse, TokenType, UserInfo};
use jsonwebtoken::{Algorithm, Header};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::keys::Keyring;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, devices, now_ms, tokens, users, Db, WriteTx};

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

/// SHA-256 of a bearer secret (a refresh token, a console session): only the hash is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 32 random bytes, base64url: a refresh token or a console session's token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What issuing tokens needs: the database, the keys that sign access tokens and the auth
/// settings (issuer, audience, lifetimes). Cheap to clone.
#[derive(Clone)]
pub struct TokenService {
    pub db: Db,
    pub keys: Arc<Keyring>,
    pub config: Arc<Config>,
}

impl TokenService {
    /// A signed access token for `user_id` with `roles`, bound to `device_id` if given.
    pub fn access_token(
        &self,
        user_id: Uuid,
        roles: &[Role],
        device_id: Option<Uuid>,
    ) -> ApiResult<String> {
        let auth = &self.config.auth;
        let now = now_ms() / 1000;
        let claims = Claims {
            sub: user_id,
            iss: auth.issuer.clone(),
            aud: auth.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + auth.access_ttl_secs as i64,
            jti: store::new_id(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            roles: roles.to_vec(),
            did: device_id,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.keys.current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.keys.current.encoding)
            .map_err(ApiError::internal)
    }

    /// The key that signs push receipts, as an enrolled phone keeps it.
    pub fn receipt_key(&self) -> ServerKey {
        ServerKey {
            key_id: self.keys.current.kid.clone(),
            public_key: self.keys.current_public_b64(),
        }
    }

    /// Issues an access token and a new refresh token in `family` (a fresh family at login),
    /// inside the caller's transaction.
    pub async fn issue(
        &self,
        tx: &mut WriteTx,
        user: &users::UserRow,
        device_id: Option<Uuid>,
        family: Uuid,
    ) -> ApiResult<TokenResponse> {
        let refresh_token = random_token();
        let now = now_ms();
        let expires = now + self.config.auth.refresh_ttl_secs as i64 * 1000;
        tokens::insert(
            tx.conn(),
            &token_hash(&refresh_token),
            family,
            user.id,
            device_id,
            now,
            expires,
        )
        .await?;
        let access_token = self.access_token(user.id, &user.roles, device_id)?;
        Ok(TokenResponse {
            access_token,
            refresh_token,
            token_type: TokenType::Bearer,
            expires_in: self.config.auth.access_ttl_secs,
            user: UserInfo {
                id: user.id,
                username: user.username.clone(),
                display_name: user.display_name.clone(),
                roles: user.roles.clone(),
            },
        })
    }

    /// Spends a refresh token for new tokens in its family. A spent token presented again
    /// revokes the whole family: someone holds a copy.
    pub async fn refresh(&self, refresh_token: &str) -> ApiResult<TokenResponse> {
        let invalid = || ApiError::new(ErrorCode::InvalidRefreshToken, "invalid refresh token");
        if refresh_token.len() > 512 {
            return Err(invalid());
        }
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let row = tokens::by_hash(tx.conn(), &token_hash(refresh_token))
            .await?
            .ok_or_else(invalid)?;
        if row.revoked_at.is_some() || row.expires_at <= now {
            return Err(invalid());
        }
        if row.used_at.is_some() || !tokens::spend(tx.conn(), row.id, now).await? {
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
        let tokens = self
            .issue(&mut tx, &user, row.device_id, row.family_id)
            .await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Revokes the login (the family) a refresh token belongs to; an unknown token changes
    /// nothing.
    pub async fn logout(&self, refresh_token: &str) -> ApiResult<()> {
        let mut tx = self.db.begin_write().await?;
        if let Some(row) = tokens::by_hash(tx.conn(), &token_hash(refresh_token)).await? {
            tokens::revoke_family(tx.conn(), row.family_id, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
