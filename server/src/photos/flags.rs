//! Integrity flags: what a supervisor should look at twice before trusting a photo as evidence
//! for a case. Plain functions over plain data.

use crate::config::PhotosConfig;
use crate::evidence::flags::*;
use crate::store::photos::Declaration;

/// The EXIF facts of a verified photo that the flags are computed from.
#[derive(Debug, Clone, Default)]
pub struct ExifFacts {
    pub taken_at: Option<i64>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// Flags of one photo as evidence for one case (`photo_reused` aside: it can change later and
/// is decided when read). A fact the photo lacks raises no flag: absence is not a mismatch.
pub fn for_case(
    exif: &ExifFacts,
    declared: &Declaration,
    zone_boundary: Option<&serde_json::Value>,
    config: &PhotosConfig,
) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(taken) = exif.taken_at {
        let apart_ms = (taken - declared.captured_at).unsigned_abs();
        if apart_ms > config.exif_time_tolerance_secs * 1000 {
            flags.push(EXIF_TIME_MISMATCH.to_owned());
        }
    }
    if let (Some(lat), Some(lon)) = (exif.lat, exif.lon) {
        if crate::geo::distance_m(lat, lon, declared.lat, declared.lon)
            > config.exif_gps_tolerance_m
        {
            flags.push(EXIF_GPS_MISMATCH.to_owned());
        }
        if zone_boundary.is_some_and(|b| !crate::geo::contains(b, lon, lat)) {
            flags.push(EXIF_GPS_OUTSIDE_ZONE.to_owned());
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn declared() -> Declaration {
        Declaration {
            case_id: Uuid::nil(),
            zone_id: Uuid::nil(),
            role: "before".into(),
            size: 1,
            captured_at: 1_700_000_000_000,
            lat: 39.905,
            lon: 116.305,
        }
    }

    #[test]
    fn agreeing_exif_raises_nothing_and_missing_exif_raises_nothing() {
        let config = PhotosConfig::default();
        let zone = crate::geo::rectangle(116.30, 39.90, 116.31, 39.91);
        let exif = ExifFacts {
            taken_at: Some(1_700_000_060_000),
            lat: Some(39.9051),
            lon: Some(116.3051),
        };
        assert!(for_case(&exif, &declared(), Some(&zone), &config).is_empty());
        assert!(for_case(&ExifFacts::default(), &declared(), Some(&zone), &config).is_empty());
    }

    #[test]
    fn far_time_and_place_are_flagged() {
        let config = PhotosConfig::default();
        let zone = crate::geo::rectangle(116.30, 39.90, 116.31, 39.91);
        let exif = ExifFacts {
            taken_at: Some(1_700_000_000_000 + 3_600_000),
            lat: Some(39.95),
            lon: Some(116.40),
        };
        assert_eq!(
            for_case(&exif, &declared(), Some(&zone), &config),
            [EXIF_TIME_MISMATCH, EXIF_GPS_MISMATCH, EXIF_GPS_OUTSIDE_ZONE]
        );
    }
}
