//! Links to photo bytes that a browser can open without a bearer token.
//!
//! With an S3 store the link is presigned by the store itself. Otherwise it points back at this
//! server, carrying a token `{payload}.{mac}`: the payload names the photo, the variant, the
//! user and the expiry, and the HMAC-SHA256 covers all of it, so a token cannot be stretched to
//! another photo, another variant or a later time. The HMAC key is derived from the server's
//! signing key, which every instance shares.

use axum::http::Method;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::PhotoService;
use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::store::{self, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    Original,
    Thumb,
    Preview,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Thumb => "thumb",
            Variant::Preview => "preview",
        }
    }
    pub fn parse(s: &str) -> Option<Variant> {
        [Variant::Original, Variant::Thumb, Variant::Preview]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
    pub fn path(self, sha256: &str) -> object_store::path::Path {
        match self {
            Variant::Original => super::original_path(sha256),
            v => super::derivative_path(sha256, v.as_str()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoLink {
    /// Presigned store URL (S3), or a path on this server to GET without a bearer token.
    pub url: String,
    pub variant: Variant,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

pub fn derive_key(keys: &crate::auth::keys::Keyring) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"gridline photo links v1\0");
    h.update(keys.current.signing.to_bytes());
    h.finalize().into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// Photo hash.
    pub s: String,
    /// Variant: `original`, `thumb` or `preview`.
    pub v: String,
    /// The user the link was issued to (for the record).
    pub u: Uuid,
    /// Expiry, Unix ms.
    pub e: i64,
}

pub fn sign(key: &[u8; 32], claims: &LinkClaims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let mac = mac(key, payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The claims of a genuine, unexpired token.
pub fn verify(key: &[u8; 32], token: &str, now_ms: i64) -> Option<LinkClaims> {
    let (payload, sig) = token.split_once('.')?;
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let mut m = Hmac::<Sha256>::new_from_slice(key).ok()?;
    m.update(payload.as_bytes());
    m.verify_slice(&sig).ok()?;
    let claims: LinkClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    (claims.e > now_ms).then_some(claims)
}

/// A short-lived link to `variant` of a photo the caller may see (404 otherwise): presigned by
/// the store when it is S3, else a token for this server. Every link handed out is logged as
/// a view (who, which photo, which variant, when). A derivative not made yet is a conflict.
pub async fn issue(
    svc: &PhotoService,
    user: &AuthUser,
    sha256: &str,
    variant: Variant,
) -> ApiResult<PhotoLink> {
    let photo = super::visible_photo(&svc.db, user, sha256).await?;
    if photo.status != "verified" {
        return Err(ApiError::not_found("photo"));
    }
    if variant != Variant::Original && photo.derivatives != "ready" {
        return Err(ApiError::conflict(format!(
            "the {} is not available (derivatives: {})",
            variant.as_str(),
            photo.derivatives
        ))
        .with_details(serde_json::json!({ "derivatives": photo.derivatives })));
    }
    let ttl = std::time::Duration::from_secs(svc.config.photos.link_ttl_secs);
    let expires_ms = now_ms() + ttl.as_millis() as i64;
    let url = match &svc.runtime.signer {
        Some(signer) => signer
            .signed_url(Method::GET, &variant.path(sha256), ttl)
            .await
            .map_err(super::upload::store_error)?
            .to_string(),
        None => {
            let claims = LinkClaims {
                s: sha256.to_owned(),
                v: variant.as_str().to_owned(),
                u: user.user_id,
                e: expires_ms,
            };
            format!("/v1/photo-content/{}", sign(&svc.runtime.link_key, &claims))
        }
    };
    store::photos::log_view(&svc.db.pool, user.user_id, sha256, variant.as_str()).await?;
    Ok(PhotoLink {
        url,
        variant,
        expires_at: store::time_from_ms(expires_ms),
    })
}

fn mac(key: &[u8; 32], data: &[u8]) -> Vec<u8> {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> LinkClaims {
        LinkClaims {
            s: "a".repeat(64),
            v: "thumb".into(),
            u: Uuid::nil(),
            e: 2_000,
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let key = [7; 32];
        let token = sign(&key, &claims());
        assert_eq!(verify(&key, &token, 1_999), Some(claims()));
        assert_eq!(verify(&key, &token, 2_000), None);
        assert_eq!(verify(&[8; 32], &token, 1_000), None);
    }

    #[test]
    fn a_token_cannot_be_widened() {
        let key = [7; 32];
        let token = sign(&key, &claims());
        let (_, mac) = token.split_once('.').unwrap();
        for other in [
            LinkClaims {
                v: "original".into(),
                ..claims()
            },
            LinkClaims {
                s: "b".repeat(64),
                ..claims()
            },
            LinkClaims {
                e: 9_999_999,
                ..claims()
            },
        ] {
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
            assert_eq!(verify(&key, &format!("{payload}.{mac}"), 1_000), None);
        }
    }
}
