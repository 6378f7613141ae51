//! Photo evidence as the API shows it: a checked photo, a case's declared photos, and the names
//! of the integrity flags. Plain data; the photo service (`photos`) fills it in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The integrity flags: what a supervisor should look at twice before trusting a photo as
/// evidence for a case (computed by `photos::flags`).
pub mod flags {
    /// The same photo (hash) is declared by another case too.
    pub const PHOTO_REUSED: &str = "photo_reused";
    /// The EXIF capture time is far from the time the phone claimed.
    pub const EXIF_TIME_MISMATCH: &str = "exif_time_mismatch";
    /// The EXIF position is far from the position the phone claimed.
    pub const EXIF_GPS_MISMATCH: &str = "exif_gps_mismatch";
    /// The EXIF position lies outside the case's zone.
    pub const EXIF_GPS_OUTSIDE_ZONE: &str = "exif_gps_outside_zone";
    /// The photo's bytes are the declared ones, but its image data cannot be decoded (found by the
    /// derivative worker): the original is kept as it arrived; no thumbnail or preview exists.
    pub const PHOTO_UNDECODABLE: &str = "photo_undecodable";
    /// Not every declared photo has arrived and been verified.
    pub const EVIDENCE_INCOMPLETE: &str = "evidence_incomplete";
}

/// A photo the server has checked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Photo {
    /// Lowercase hex SHA-256 of the original: its identity.
    pub sha256: String,
    /// `verified` (stored, usable as evidence) or `rejected` (see `error_code`; nothing stored).
    pub status: String,
    pub error_code: Option<String>,
    pub size: i64,
    pub mime: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// EXIF `DateTimeOriginal`, read in the camera's offset (or the configured default).
    #[serde(with = "time::serde::rfc3339::option")]
    pub exif_taken_at: Option<time::OffsetDateTime>,
    pub exif_lat: Option<f64>,
    pub exif_lon: Option<f64>,
    /// EXIF orientation, 1 to 8 (derivatives have it applied).
    pub orientation: Option<i64>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub uploaded_by: Uuid,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<time::OffsetDateTime>,
    /// `pending`, `ready`, `failed` (attempts used up), `undecodable` (the pixel data cannot be
    /// decoded: the original is kept as it arrived, and its cases carry `photo_undecodable`)
    /// or `none` (HEIC: stored but not decoded).
    pub derivatives: String,
    pub derivative_attempts: i64,
    pub derivative_error: Option<String>,
}

/// One declared photo of a case, as evidence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidencePhoto {
    pub sha256: String,
    /// `before` or `after`.
    pub role: String,
    /// The bytes arrived and the server verified their hash and contents.
    pub verified: bool,
    /// The bytes arrived but are not a usable photo.
    pub rejected: bool,
    pub thumb_ready: bool,
    pub flags: Vec<String>,
}

/// The evidence of a case: its photos, whether all arrived, and the flags of the whole.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidenceSummary {
    pub photos: Vec<EvidencePhoto>,
    /// Every declared photo is verified.
    pub complete: bool,
    /// The union of the photos' flags, plus `evidence_incomplete` when not `complete`.
    pub flags: Vec<String>,
}

impl EvidenceSummary {
    pub fn from_photos(photos: Vec<EvidencePhoto>) -> Self {
        let complete = photos.iter().all(|p| p.verified);
        let mut flags: Vec<String> = Vec::new();
        for f in photos.iter().flat_map(|p| &p.flags) {
            if !flags.contains(f) {
                flags.push(f.clone());
            }
        }
        if !complete {
            flags.push(flags::EVIDENCE_INCOMPLETE.to_owned());
        }
        Self {
            photos,
            complete,
            flags,
        }
    }
}
