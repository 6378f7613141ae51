//! Image checks and decoding: any bytes get a verdict (a photo or a rejection with a code) at
//! upload, and derivatives or a verdict from the derivative worker's decode; never a panic, and
//! never more memory than the decoder limits allow.

#![no_main]

use gridline_server::config::PhotosConfig;
use gridline_server::photos::{derive, inspect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = PhotosConfig::default();
    let _ = inspect::sniff(data);
    let _ = inspect::jpeg_has_end(data);
    if inspect::inspect(data, &config).is_ok() {
        let _ = derive::make(data, &config);
    }
});
