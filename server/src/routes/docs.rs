//! The API reference page at `/docs`: Scalar, rendering `/openapi.json`. Its script ships
//! inside the binary (the `scalar_api_reference` crate embeds Scalar's standalone bundle), so
//! the page works where foreign CDNs cannot be reached, and the page loads nothing from
//! another host: its Content-Security-Policy allows only this server.
//!
//! The script's URL carries a hash of its bytes, so it can be cached for a year: a server
//! with a newer bundle serves it under a new URL.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Where the page is.
pub const PATH: &str = "/docs";

/// The policy of the page: scripts only from this server (no inline script: the
/// configuration travels in `data-` attributes), data only from this server, no framing.
/// Styles may be inline: Scalar injects its stylesheet and theme at run time.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Scalar's configuration: no web fonts (they would come from Scalar's font host), and none
/// of its features that talk to Scalar's services (the developer toolbar, the AI agent).
const SCALAR_CONFIG: &str =
    r#"{"withDefaultFonts":false,"showDeveloperTools":"never","agent":{"disabled":true}}"#;

struct Bundle {
    /// `scalar.{hash}.js`.
    name: String,
    bytes: axum::body::Bytes,
}

fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let bytes = scalar_api_reference::get_asset("scalar.js").unwrap_or_default();
        let hash = hex::encode(Sha256::digest(&bytes));
        Bundle {
            name: format!("scalar.{}.js", &hash[..16]),
            bytes: bytes.into(),
        }
    })
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PATH, get(page))
        .route(&format!("{PATH}/assets/{{name}}"), get(asset))
}

async fn page() -> Response {
    let config = SCALAR_CONFIG.replace('"', "&quot;");
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Gridline API</title>\n</head>\n<body>\n\
         <script id=\"api-reference\" data-url=\"/openapi.json\" data-configuration=\"{config}\"></script>\n\
         <script src=\"{PATH}/assets/{}\"></script>\n</body>\n</html>\n",
        bundle().name
    );
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Html(html),
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    let bundle = bundle();
    if name != bundle.name {
        return ApiError::not_found("asset").into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        bundle.bytes.clone(),
    )
        .into_response()
}
