//! Photos through the console: an original, thumbnail or preview streamed to a reader who may
//! see it (`photos::open_for_view`), with a placeholder for a thumbnail not made yet.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use super::{failure, Console};
use crate::state::AppState;

/// A photo or its thumbnail or preview, through the console: the user must be able to see it,
/// and every view is recorded as the API's links are.
pub async fn photo(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path((sha, variant)): Path<(String, String)>,
) -> Response {
    let user = &c.session.user;
    let opened =
        crate::photos::open_for_view(&state.db, state.blobs.as_ref(), user, &sha, &variant).await;
    match opened {
        Ok((mime, object)) => {
            let stream = object.into_stream().map_err(std::io::Error::other);
            let mut r = axum::body::Body::from_stream(stream).into_response();
            if let Ok(v) = HeaderValue::from_str(&mime) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            r
        }
        Err(e) if e.code == gridline_sync::ErrorCode::NotFound => placeholder(),
        Err(e) => failure(&c, &headers, e),
    }
}

/// A thumbnail not made yet: a plain placeholder rather than a broken image, not kept by the
/// browser so that the real one shows once it is made.
fn placeholder() -> Response {
    let mut r = PLACEHOLDER.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

const PLACEHOLDER: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="72" height="54" viewBox="0 0 72 54"><rect width="72" height="54" fill="#e9edf2"/><path d="M24 36l8-10 6 7 4-5 6 8z" fill="#aab3c0"/></svg>"##;
