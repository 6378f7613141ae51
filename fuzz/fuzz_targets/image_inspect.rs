//! Image validation: any bytes get a verdict (a photo or a rejection with a code), never a
//! panic, and never more memory than the decoder limits allow.

#![no_main]

use gridline_server::config::PhotosConfig;
use gridline_server::photos::inspect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = PhotosConfig::default();
    let _ = inspect::sniff(data);
    let _ = inspect::jpeg_has_end(data);
    let _ = inspect::inspect(data, &config);
});
