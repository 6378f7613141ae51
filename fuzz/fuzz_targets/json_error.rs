//! The server's JSON error path (`gridline_server::routes::extract::parse_json`): any bytes give
//! either a value or a 422 with a stable code and a `$`-rooted field path, never a panic.

#![no_main]

use gridline_server::error::ApiError;
use gridline_server::routes::extract::parse_json;
use gridline_sync::{ErrorCode, LoginRequest, PushRequest};
use libfuzzer_sys::fuzz_target;

fn check(err: Option<ApiError>) {
    let Some(e) = err else { return };
    assert!(
        matches!(e.code, ErrorCode::MalformedBody | ErrorCode::InvalidRequest),
        "{e}"
    );
    assert_eq!(e.status().as_u16(), 422, "{e}");
    let path = e.details["path"].as_str().unwrap_or_default();
    assert!(path.starts_with('$'), "path {path:?} in {e}");
}

fuzz_target!(|data: &[u8]| {
    check(parse_json::<serde_json::Value>(data).err());
    check(parse_json::<PushRequest>(data).err());
    check(parse_json::<LoginRequest>(data).err());
});
