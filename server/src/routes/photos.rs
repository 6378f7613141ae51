//! Photos: a one-request upload for small photos, metadata, and short-lived links to the
//! original and its derivatives. Everything is scoped like the cases that declare the photo;
//! every link handed out is logged as a view.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use gridline_sync::ErrorCode;
use object_store::ObjectStore;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::evidence::Photo;
use crate::photos::link::{self, PhotoLink, Variant};
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

/// A photo's metadata: verification, type, size, EXIF facts, derivative state.
#[utoipa::path(get, path = "/v1/photos/{sha256}", operation_id = "get_photo", tag = "photos", security(("bearer" = [])),
    params(("sha256" = String, Path)),
    responses((status = 200, body = Photo), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(sha256): PathParam<String>,
) -> ApiResult<Json<Photo>> {
    // Only if the caller uploaded it or may see a case that rightly holds it (404 otherwise).
    let photo = photos::visible_photo(&state.db, &user, &sha256).await?;
    Ok(Json(photo))
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
    let (created, photo) =
        upload::put_whole(&state.photo_service(), &user, &sha256, length, body).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(photo)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LinkQuery {
    /// `original` (default), `thumb` or `preview`.
    pub variant: Option<Variant>,
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
    let link = link::issue(&state.photo_service(), &user, &sha256, variant).await?;
    Ok(Json(link))
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
