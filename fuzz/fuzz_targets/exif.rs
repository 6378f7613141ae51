//! EXIF parsing: any bytes give an `Exif` (possibly empty), never a panic.

#![no_main]

use gridline_server::photos::inspect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let exif = inspect::read_exif(data, 480);
    if let (Some(lat), Some(lon)) = (exif.lat, exif.lon) {
        assert!(lat.is_finite() && lon.is_finite());
    }
});
