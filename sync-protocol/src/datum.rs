//! Geodetic datums of positions. Phones read GPS in WGS-84, but domestic map SDKs in China and
//! many map pickers give GCJ-02 (Amap, Tencent) or BD-09 (Baidu), several hundred metres away
//! from the same place in WGS-84. A position may say which it is in (`datum`, WGS-84 when
//! absent); the server converts it on entry and stores WGS-84 only, so zone checks and EXIF
//! comparisons are made in one datum.
//!
//! The conversions are those of the `coordtransform` crate: outside the region where GCJ-02
//! applies (mainland China) positions are the same in every datum.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The datum a position is given in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Datum {
    /// GPS, EXIF and the stored positions.
    #[default]
    Wgs84,
    /// China's GCJ-02 (Amap, Tencent Maps, most domestic map SDKs).
    Gcj02,
    /// Baidu's BD-09.
    Bd09,
}

impl Datum {
    pub fn is_wgs84(&self) -> bool {
        *self == Datum::Wgs84
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Datum::Wgs84 => "wgs84",
            Datum::Gcj02 => "gcj02",
            Datum::Bd09 => "bd09",
        }
    }

    /// The WGS-84 `(lat, lon)` of a position given in this datum.
    pub fn to_wgs84(self, lat: f64, lon: f64) -> (f64, f64) {
        let (lon, lat) = match self {
            Datum::Wgs84 => (lon, lat),
            Datum::Gcj02 => coordtransform::gcj02_to_wgs84(lon, lat),
            Datum::Bd09 => coordtransform::bd09_to_wgs84(lon, lat),
        };
        (lat, lon)
    }

    /// The `(lat, lon)` in this datum of a WGS-84 position (for maps drawn on GCJ-02 or
    /// BD-09 tiles).
    pub fn from_wgs84(self, lat: f64, lon: f64) -> (f64, f64) {
        let (lon, lat) = match self {
            Datum::Wgs84 => (lon, lat),
            Datum::Gcj02 => coordtransform::wgs84_to_gcj02(lon, lat),
            Datum::Bd09 => coordtransform::wgs84_to_bd09(lon, lat),
        };
        (lat, lon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of PROTOCOL.md (a position in Kunming), to a tenth of a metre.
    #[test]
    fn protocol_test_vectors() {
        let wgs = (25.0389, 102.7183);
        let gcj = Datum::Gcj02.from_wgs84(wgs.0, wgs.1);
        let bd = Datum::Bd09.from_wgs84(wgs.0, wgs.1);
        let close =
            |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-6 && (a.1 - b.1).abs() < 1e-6;
        assert!(close(gcj, (25.035_935, 102.719_752)), "{gcj:?}");
        assert!(close(bd, (25.042_239, 102.726_163)), "{bd:?}");
        assert!(close(Datum::Gcj02.to_wgs84(gcj.0, gcj.1), wgs));
        assert!(close(Datum::Bd09.to_wgs84(bd.0, bd.1), wgs));
        assert_eq!(Datum::Wgs84.to_wgs84(wgs.0, wgs.1), wgs);
    }

    #[test]
    fn outside_china_every_datum_is_the_same() {
        let paris = (48.8566, 2.3522);
        for d in [Datum::Wgs84, Datum::Gcj02, Datum::Bd09] {
            assert_eq!(d.to_wgs84(paris.0, paris.1), paris);
        }
    }

    #[test]
    fn the_wire_names() {
        assert_eq!(serde_json::to_string(&Datum::Gcj02).unwrap(), "\"gcj02\"");
        assert_eq!(
            serde_json::from_str::<Datum>("\"bd09\"").unwrap(),
            Datum::Bd09
        );
        assert!(serde_json::from_str::<Datum>("\"GCJ02\"").is_err());
    }
}
