//! Pull cursor decoding: any text is either refused or a cursor whose encoding is stable.

#![no_main]

use gridline_server::sync::pull::reencode_cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(encoded) = reencode_cursor(text) {
        assert_eq!(reencode_cursor(&encoded).as_deref(), Some(encoded.as_str()));
    }
});
