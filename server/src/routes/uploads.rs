//! Resumable photo uploads: tus 1.0.0 (core, creation, creation-with-upload, termination,
//! checksum with sha256, expiration), so stock tus clients for Android, iOS and the web work.
//!
//! `Upload-Metadata` must carry `sha256` (hex): the photo the bytes are declared to be, which a
//! case in the caller's scope must declare. The server hashes the whole file itself when the
//! last byte arrives; the request that completes an upload answers only once the photo is
//! verified (or says why it is not). Every response carries `Tus-Resumable: 1.0.0`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gridline_sync::ErrorCode;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::photos::upload;
use crate::routes::extract::PathParam;
use crate::state::AppState;
use crate::store::photos::Upload;

pub const TUS_VERSION: &str = "1.0.0";
const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum,expiration";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

static TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
static UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
static UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
static UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
static UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(options, create))
        .routes(routes!(head, patch, terminate))
        .layer(axum::middleware::from_fn(tus_headers))
}

/// Every tus response says which version it speaks; a version refusal also lists ours.
async fn tus_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(TUS_RESUMABLE.clone(), HeaderValue::from_static(TUS_VERSION));
    if response.status() == StatusCode::PRECONDITION_FAILED {
        response
            .headers_mut()
            .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    }
    response
}

fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn require_tus(headers: &HeaderMap) -> ApiResult<()> {
    match header_str(headers, &TUS_RESUMABLE) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(ApiError::new(
            ErrorCode::UnsupportedTusVersion,
            "send `Tus-Resumable: 1.0.0`",
        )),
    }
}

/// Public for the fuzz targets (fuzz/fuzz_targets/tus_headers.rs), like the parsers below.
pub fn header_i64(headers: &HeaderMap, name: &HeaderName) -> ApiResult<Option<i64>> {
    header_str(headers, name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::invalid(name.as_str(), "must be a non-negative integer"))
        })
        .transpose()
}

fn is_offset_stream(headers: &HeaderMap) -> bool {
    header_str(headers, &header::CONTENT_TYPE)
        .is_some_and(|ct| ct.eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

/// `Upload-Metadata: key base64,key2 base64` → the value of `key`.
pub fn metadata_value(metadata: &str, key: &str) -> Option<String> {
    metadata.split(',').find_map(|pair| {
        let mut it = pair.trim().splitn(2, ' ');
        (it.next()? == key)
            .then(|| STANDARD.decode(it.next().unwrap_or("").trim()).ok())
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
    })
}

/// `Upload-Checksum: sha256 <base64>` → the digest.
pub fn checksum(headers: &HeaderMap) -> ApiResult<Option<Vec<u8>>> {
    let Some(value) = header_str(headers, &UPLOAD_CHECKSUM) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("Upload-Checksum", "must be `sha256 <base64 digest>`");
    let (algorithm, digest) = value.split_once(' ').ok_or_else(bad)?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        // tus checksum extension: an algorithm the server does not support is 400.
        return Err(ApiError::new(
            ErrorCode::UnsupportedChecksumAlgorithm,
            format!("Upload-Checksum: `{algorithm}` is not supported; use sha256"),
        )
        .with_details(json!({ "supported": ["sha256"] })));
    }
    let digest = STANDARD.decode(digest.trim()).map_err(|_| bad())?;
    if digest.len() != 32 {
        return Err(bad());
    }
    Ok(Some(digest))
}

/// `Upload-Expires` is an RFC 9110 HTTP date.
pub fn http_date(ms: i64) -> String {
    let t = crate::store::time_from_ms(ms).to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name.clone(), v);
    }
}

fn upload_headers(upload: &Upload, offset: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    set(&mut headers, &UPLOAD_OFFSET, offset);
    set(&mut headers, &UPLOAD_EXPIRES, http_date(upload.expires_at));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
}

/// Appends the body (if any) after checking `Upload-Checksum`; when that completes the upload,
/// the photo is verified before the answer.
async fn append_body(
    state: &AppState,
    upload: &Upload,
    offset: i64,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<i64> {
    let digest = checksum(headers)?;
    upload::append_and_finish(&state.photo_service(), upload, offset, body, digest).await
}

/// A creation's `Upload-Length`, `Upload-Metadata` and the `sha256` it carries (lowercased).
fn creation_headers(headers: &HeaderMap) -> ApiResult<(i64, String, String)> {
    require_tus(headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(ApiError::invalid(
            "Upload-Defer-Length",
            "is not supported: send Upload-Length",
        ));
    }
    let length = header_i64(headers, &UPLOAD_LENGTH)?
        .ok_or_else(|| ApiError::invalid("Upload-Length", "is required"))?;
    let metadata = header_str(headers, &UPLOAD_METADATA)
        .unwrap_or("")
        .to_owned();
    let sha256 = metadata_value(&metadata, "sha256")
        .ok_or_else(|| ApiError::invalid("Upload-Metadata", "must carry `sha256`"))?;
    Ok((length, metadata, sha256.to_ascii_lowercase()))
}

/// An error answer; a conflict over the offset also says where the upload stands in
/// `Upload-Offset`, the header tus clients read, besides `details.offset`.
fn tus_error(e: ApiError) -> Response {
    let offset = (e.code == ErrorCode::UploadOffsetMismatch)
        .then(|| e.details.get("offset").and_then(serde_json::Value::as_i64))
        .flatten();
    let mut response = e.into_response();
    if let Some(offset) = offset {
        set(response.headers_mut(), &UPLOAD_OFFSET, offset);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What this server supports (tus discovery; no authentication needed). `Tus-Max-Size` is the
/// largest photo a phone may declare (the protocol's one limit).
#[utoipa::path(options, path = "/v1/uploads", operation_id = "upload_options", tag = "photos",
    responses((status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm")))]
async fn options() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    headers.insert("tus-checksum-algorithm", HeaderValue::from_static("sha256"));
    set(
        &mut headers,
        &HeaderName::from_static("tus-max-size"),
        gridline_sync::validation::MAX_PHOTO_BYTES,
    );
    (StatusCode::NO_CONTENT, headers).into_response()
}

/// Start an upload (tus creation; with a body, creation-with-upload). `Upload-Length` and
/// `Upload-Metadata` with `sha256` are required. If the photo is already verified the upload is
/// complete at once (`Upload-Offset` = `Upload-Length`).
#[utoipa::path(post, path = "/v1/uploads", operation_id = "create_upload", tag = "photos", security(("bearer" = [])),
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = i64, Header, description = "Size of the whole photo, bytes"),
        ("Upload-Metadata" = String, Header, description = "`sha256 <base64 of the hex hash>`, other keys ignored"),
    ),
    responses(
        (status = 201, description = "Created: `Location`, `Upload-Offset`, `Upload-Expires`"),
        (status = 400, body = gridline_sync::ErrorBody, description = "`unsupported_checksum_algorithm`"),
        (status = 403, body = gridline_sync::ErrorBody, description = "`photo_not_declared`"),
        (status = 413, body = gridline_sync::ErrorBody, description = "`photo_too_large`"),
        (status = 422, body = gridline_sync::ErrorBody, description = "`hash_mismatch`, `image_too_large`, `truncated_image`, `corrupt_image`"),
        (status = 415, body = gridline_sync::ErrorBody, description = "`unsupported_media`"),
    ))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let (length, metadata, sha256) = creation_headers(&headers)?;
    let upload = upload::create(&state.photo_service(), &user, &sha256, length, metadata).await?;
    let mut offset = upload.received;
    // A body sent with the creation of an upload born complete is read and dropped (`append`).
    if is_offset_stream(&headers) {
        match append_body(&state, &upload, 0, &headers, body).await {
            Ok(at) => offset = at,
            Err(e) => return Ok(tus_error(e)),
        }
    }
    let mut out = upload_headers(&upload, offset);
    let location = format!("/v1/uploads/{}", upload.id);
    set(&mut out, &header::LOCATION, location);
    Ok((StatusCode::CREATED, out).into_response())
}

/// Where an upload stands: `Upload-Offset`, `Upload-Length`, `Upload-Metadata`.
#[utoipa::path(head, path = "/v1/uploads/{id}", operation_id = "get_upload_offset", tag = "photos", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 200, description = "`Upload-Offset`, `Upload-Length`"), (status = 404), (status = 410)))]
async fn head(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Response> {
    require_tus(&headers)?;
    let upload = upload::load(&state.photo_service(), &user, id).await?;
    let mut out = upload_headers(&upload, upload.received);
    set(&mut out, &UPLOAD_LENGTH, upload.length);
    if !upload.metadata.is_empty() {
        set(&mut out, &UPLOAD_METADATA, &upload.metadata);
    }
    Ok((StatusCode::OK, out).into_response())
}

/// Append bytes at `Upload-Offset` (`Content-Type: application/offset+octet-stream`, optional
/// `Upload-Checksum: sha256 <base64>`). A dropped connection keeps what arrived; `HEAD` and
/// resume. The request that completes the upload answers after the photo is verified. An
/// upload already complete takes a body at any offset, drops it and answers its full length.
#[utoipa::path(patch, path = "/v1/uploads/{id}", operation_id = "append_upload", tag = "photos", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = i64, Header, description = "Where this body starts"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha256 <base64>` of this body"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Appended: `Upload-Offset`"),
        (status = 400, body = gridline_sync::ErrorBody, description = "`unsupported_checksum_algorithm`"),
        (status = 409, body = gridline_sync::ErrorBody, description = "`upload_offset_mismatch`"),
        (status = 415, body = gridline_sync::ErrorBody, description = "`unsupported_content_type` (the request), or `unsupported_media` (the photo, when this completes it)"),
        (status = 410, body = gridline_sync::ErrorBody, description = "`upload_expired`"),
        (status = 460, body = gridline_sync::ErrorBody, description = "`checksum_mismatch`"),
        (status = 422, body = gridline_sync::ErrorBody, description = "`hash_mismatch`, `image_too_large`, `truncated_image`, `corrupt_image`"),
    ))]
async fn patch(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    require_tus(&headers)?;
    if !is_offset_stream(&headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedContentType,
            "a PATCH body must be `Content-Type: application/offset+octet-stream`",
        ));
    }
    let offset = header_i64(&headers, &UPLOAD_OFFSET)?
        .ok_or_else(|| ApiError::invalid("Upload-Offset", "is required"))?;
    let upload = upload::load(&state.photo_service(), &user, id).await?;
    match append_body(&state, &upload, offset, &headers, body).await {
        Ok(at) => Ok((StatusCode::NO_CONTENT, upload_headers(&upload, at)).into_response()),
        Err(e) => Ok(tus_error(e)),
    }
}

/// Abandon an upload (tus termination): its bytes are deleted.
#[utoipa::path(delete, path = "/v1/uploads/{id}", operation_id = "terminate_upload", tag = "photos", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses((status = 204), (status = 404, body = gridline_sync::ErrorBody)))]
async fn terminate(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<StatusCode> {
    require_tus(&headers)?;
    let upload = upload::load(&state.photo_service(), &user, id).await?;
    upload::discard(&state.photo_service(), &upload).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_are_decoded() {
        let m = "filename cGhvdG8uanBn,sha256 YWJj,empty";
        assert_eq!(metadata_value(m, "sha256").as_deref(), Some("abc"));
        assert_eq!(metadata_value(m, "filename").as_deref(), Some("photo.jpg"));
        assert_eq!(metadata_value(m, "empty").as_deref(), Some(""));
        assert_eq!(metadata_value(m, "missing"), None);
    }

    #[test]
    fn expiry_is_an_http_date() {
        assert_eq!(
            http_date(1_403_712_000_000),
            "Wed, 25 Jun 2014 16:00:00 GMT"
        );
    }
}
