//! The console's scripts and styles, embedded in the binary and served under names that carry
//! a hash of their bytes, so browsers may keep them for a year and a new build is never served
//! from an old cache. Nothing is loaded from anywhere else (offices in China often cannot reach
//! foreign CDNs).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// (name, content type, bytes). htmx is vendored as published (BSD Zero Clause licence, in
/// `assets/vendor/`).
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console/console.js"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
    ),
];

/// Each file's served name: `console.3f2a9c1d0b7e.css`.
fn hashed() -> &'static [(String, usize)] {
    static NAMES: OnceLock<Vec<(String, usize)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        FILES
            .iter()
            .enumerate()
            .map(|(i, (name, _, bytes))| {
                let hash = hex::encode(&Sha256::digest(bytes)[..6]);
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
                (format!("{stem}.{hash}.{ext}"), i)
            })
            .collect()
    })
}

/// The URL of embedded file `name` (as listed in `FILES`).
pub fn url(name: &str) -> String {
    let served = FILES
        .iter()
        .position(|(n, ..)| *n == name)
        .and_then(|i| hashed().iter().find(|(_, j)| *j == i))
        .map(|(s, _)| s.as_str())
        .unwrap_or(name);
    format!("/console/assets/{served}")
}

/// `GET /console/assets/{name}`: a file by its hashed name, cached for a year.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, i)) = hashed().iter().find(|(n, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (_, mime, bytes) = FILES[*i];
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_hashed_name_and_the_scripts_stay_small() {
        for (name, _, bytes) in FILES {
            let u = url(name);
            assert!(u.starts_with("/console/assets/") && u != format!("/console/assets/{name}"));
            assert!(bytes.len() < 200 * 1024, "{name}: {} bytes", bytes.len());
        }
    }
}
