//! tus header parsing (`Upload-Offset`/`Upload-Length`, `Upload-Checksum`, `Upload-Metadata`):
//! any header value is either parsed or refused with our error, never a panic.

#![no_main]

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use gridline_server::routes::uploads;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    for name in ["upload-offset", "upload-length", "upload-checksum"] {
        let name = HeaderName::from_static(name);
        let mut headers = HeaderMap::new();
        headers.insert(name.clone(), value.clone());
        if let Ok(Some(n)) = uploads::header_i64(&headers, &name) {
            assert!(n >= 0, "a negative offset or length was accepted");
        }
        let _ = uploads::checksum(&headers);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = uploads::metadata_value(text, "sha256");
    }
});
