//! Photos: a one-request upload for small photos, metadata, and short-lived links to the
//! original and its derivatives. Everything is scoped like the cases that declare the photo;
//! every link handed out is logged as a view.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use gridline_sync::ErrorCode;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::evidence::Photo;
use crate::photos::link::{self, LinkClaims};
use crate::photos::{self, upload};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::{self, now_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get, put))
        .routes(routes!(link))
        .routes(routes!(content))
}

/// The photo, if the caller uploaded it or may see a case that rightly holds it (404
/// otherwise): declaring someone else's photo in one's own case does not open it.
async fn visible_photo(state: &AppState, user: &AuthUser, sha256: &str) -> ApiResult<Photo> {
    crate::photos::visible_photo(&state.db, user, sha256).await
}

/// A photo's metadata: verification, type, size, EXIF facts, derivative state.
#[utoipa::path(get, path = "/v1/photos/{sha256}", operation_id = "get_photo", tag = "photos", security(("bearer" = [])),
    params(("sha256" = String, Path)),
    responses((status = 200, body = Photo), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(sha256): PathParam<String>,
) -> ApiResult<Json<Photo>> {
    Ok(Json(visible_photo(&state, &user, &sha256).await?))
}

/// Upload a small photo in one request (at most `photos.max_single_put_bytes`; bigger photos
/// use `/v1/uploads`). The body is the file; the path is its SHA-256, which a case in the
/// caller's scope must declare. 201 once verified; 200 if it already was.
#[utoipa::path(put, path = "/v1/photos/{sha256}", operation_id = "put_photo", tag = "photos", security(("bearer" = [])),
    params(("sha256" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = Photo), (status = 200, body = Photo),
        (status = 403, body = gridline_sync::ErrorBody, description = "`photo_not_declared`"),
        (status = 413, body = gridline_sync::ErrorBody, description = "`photo_too_large`"),
        (status = 415, body = gridline_sync::ErrorBody, description = "`unsupported_media`"),
        (status = 422, body = gridline_sync::ErrorBody, description = "`hash_mismatch`, `image_too_large`, `truncated_image`, `corrupt_image`"),
    ))]
async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(sha256): PathParam<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequest,
                "Content-Length is required; for streamed bodies use /v1/uploads",
            )
        })?;
    let max = state.config.photos.max_single_put_bytes;
    if length as u64 > max {
        return Err(upload::too_large(max).with_details(serde_json::json!({
            "max_bytes": max,
            "hint": "use the resumable upload at /v1/uploads"
        })));
    }
    let up = upload::create(
        &state.photo_service(),
        &user,
        &sha256,
        length,
        String::new(),
    )
    .await?;
    if up.state == "complete" {
        let photo = store::photos::photo(&state.db.pool, &sha256)
            .await?
            .ok_or_else(|| ApiError::not_found("photo"))?;
        return Ok((StatusCode::OK, Json(photo)).into_response());
    }
    let budget = std::time::Duration::from_secs(state.config.limits.request_timeout_secs);
    let appended = match upload::append(&state.photo_service(), &up, 0, body, None, budget).await {
        Ok(appended) => appended,
        Err(e) => {
            upload::discard(&state.photo_service(), &up).await?;
            return Err(e);
        }
    };
    if appended.at != length {
        upload::discard(&state.photo_service(), &up).await?;
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the body is shorter than its Content-Length",
        ));
    }
    let photo = match appended.verified {
        Some(photo) => photo,
        None => upload::finish(&state.photo_service(), &up).await?,
    };
    Ok((StatusCode::CREATED, Json(photo)).into_response())
}

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
    fn parse(s: &str) -> Option<Variant> {
        [Variant::Original, Variant::Thumb, Variant::Preview]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
    fn path(self, sha256: &str) -> object_store::path::Path {
        match self {
            Variant::Original => photos::original_path(sha256),
            v => photos::derivative_path(sha256, v.as_str()),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LinkQuery {
    /// `original` (default), `thumb` or `preview`.
    pub variant: Option<Variant>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoLink {
    /// Presigned store URL (S3), or a path on this server to GET without a bearer token.
    pub url: String,
    pub variant: Variant,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

/// A short-lived link to a photo's bytes. Scoped like the case (404 outside it); every link
/// handed out is logged as a view (who, which photo, which variant, when).
#[utoipa::path(get, path = "/v1/photos/{sha256}/link", operation_id = "get_photo_link", tag = "photos", security(("bearer" = [])),
    params(("sha256" = String, Path), LinkQuery),
    responses(
        (status = 200, body = PhotoLink),
        (status = 404, body = gridline_sync::ErrorBody),
        (status = 409, body = gridline_sync::ErrorBody, description = "The derivative is not made yet"),
    ))]
async fn link(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(sha256): PathParam<String>,
    Query(q): Query<LinkQuery>,
) -> ApiResult<Json<PhotoLink>> {
    let variant = q.variant.unwrap_or(Variant::Original);
    let photo = visible_photo(&state, &user, &sha256).await?;
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
    let ttl = std::time::Duration::from_secs(state.config.photos.link_ttl_secs);
    let expires_ms = now_ms() + ttl.as_millis() as i64;
    let url = match &state.photos.signer {
        Some(signer) => signer
            .signed_url(Method::GET, &variant.path(&sha256), ttl)
            .await
            .map_err(upload::store_error)?
            .to_string(),
        None => {
            let token = link::sign(
                &state.photos.link_key,
                &LinkClaims {
                    s: sha256.clone(),
                    v: variant.as_str().to_owned(),
                    u: user.user_id,
                    e: expires_ms,
                },
            );
            format!("/v1/photo-content/{token}")
        }
    };
    store::photos::log_view(&state.db.pool, user.user_id, &sha256, variant.as_str()).await?;
    Ok(Json(PhotoLink {
        url,
        variant,
        expires_at: store::time_from_ms(expires_ms),
    }))
}

/// The bytes a streamed link points at. The token is the credential: no bearer token needed.
#[utoipa::path(get, path = "/v1/photo-content/{token}", operation_id = "get_photo_content", tag = "photos",
    params(("token" = String, Path)),
    responses(
        (status = 200, content_type = "image/jpeg", description = "The photo or derivative"),
        (status = 403, body = gridline_sync::ErrorBody, description = "`link_expired`"),
    ))]
async fn content(
    State(state): State<AppState>,
    PathParam(token): PathParam<String>,
) -> ApiResult<Response> {
    let claims = link::verify(&state.photos.link_key, &token, now_ms()).ok_or_else(|| {
        ApiError::new(ErrorCode::LinkExpired, "this link is expired or not valid")
    })?;
    let variant = Variant::parse(&claims.v)
        .ok_or_else(|| ApiError::new(ErrorCode::LinkExpired, "this link is not valid"))?;
    let mime = match variant {
        Variant::Original => store::photos::photo(&state.db.pool, &claims.s)
            .await?
            .and_then(|p| p.mime)
            .unwrap_or_else(|| "application/octet-stream".into()),
        _ => "image/jpeg".into(),
    };
    let object = state
        .blobs
        .get(&variant.path(&claims.s))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => ApiError::not_found("photo"),
            e => upload::store_error(e),
        })?;
    let size = object.meta.size;
    let stream = object.into_stream().map_err(std::io::Error::other);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=60"),
    );
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}
