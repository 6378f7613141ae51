//! Field-path validation errors and the small checks shared by every operation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ErrorBody, ErrorCode};

/// One invalid field. `path` is a dotted path with `[i]` indices, relative to the operation
/// body, e.g. `payload.photos[2].sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Every invalid field of one value. Empty means valid.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("{}", self.summary())]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(())` when nothing was pushed.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Whether some error is at exactly `path`.
    pub fn has(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }

    fn summary(&self) -> String {
        self.errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The standard 422 body: `details.path` is the first invalid field, `details.errors` all.
    pub fn to_error_body(&self) -> ErrorBody {
        ErrorBody {
            code: ErrorCode::InvalidRequest,
            message: self.summary(),
            details: serde_json::json!({
                "path": self.errors.first().map(|e| e.path.as_str()),
                "errors": self.errors,
            }),
        }
    }
}

/// Maximum length, in Unicode scalar values, of a description.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Maximum length, in Unicode scalar values, of a comment.
pub const MAX_COMMENT_CHARS: usize = 4000;
/// Maximum photos declared by one operation.
pub const MAX_PHOTOS: usize = 20;
/// Maximum size of one photo in bytes (50 MiB): the one limit of the protocol and the server
/// alike (a declaration's `size`, the largest upload, tus `Tus-Max-Size`).
pub const MAX_PHOTO_BYTES: u64 = 50 * 1024 * 1024;
/// Maximum GPS accuracy radius accepted, in metres.
pub const MAX_ACCURACY_M: f64 = 10_000.0;
/// Maximum length of a device name.
pub const MAX_NAME_CHARS: usize = 100;

/// 64 lowercase hex digits (a SHA-256 in hex).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A taxonomy key: kind and 4-digit code (2-digit major + 2-digit minor), e.g. `event:0102`.
/// Components and events have separate code spaces (`0102` is both a sewage manhole cover and
/// exposed garbage), so the kind is part of the key.
pub fn is_category_code(s: &str) -> bool {
    let code = s
        .strip_prefix("event:")
        .or_else(|| s.strip_prefix("component:"));
    code.is_some_and(|c| c.len() == 4 && c.bytes().all(|b| b.is_ascii_digit()))
}

/// An asset code: `{6-digit district}{2 major}{2 minor}{6 serial}`, 16 digits.
pub fn is_asset_code(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `id` is a UUIDv7, as every id a phone makes must be (`device_id`, `op_id`,
/// `case_id`, `comment_id`, `round_id`).
pub fn is_uuid_v7(id: Uuid) -> bool {
    id.get_version_num() == 7
}

pub(crate) fn check_v7(errors: &mut ValidationErrors, path: &str, id: Uuid) {
    if !is_uuid_v7(id) {
        errors.push(path, "must be a UUIDv7");
    }
}

pub(crate) fn check_lat_lon(errors: &mut ValidationErrors, path: &str, lat: f64, lon: f64) {
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        errors.push(format!("{path}.lat"), "must be between -90 and 90");
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        errors.push(format!("{path}.lon"), "must be between -180 and 180");
    }
}

pub(crate) fn check_text(
    errors: &mut ValidationErrors,
    path: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) {
    if required && text.trim().is_empty() {
        errors.push(path, "must not be empty");
    }
    if text.chars().count() > max_chars {
        errors.push(path, format!("must be at most {max_chars} characters"));
    }
}

/// Most items a plan's checklist may hold (and responses a completed one).
pub const MAX_CHECKLIST_ITEMS: usize = 100;

/// Whether `s` is a well-formed checklist item id.
pub fn is_item_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(is_sha256_hex(&"a".repeat(64)));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex(&"a".repeat(63)));
        assert!(is_category_code("event:0102"));
        assert!(is_category_code("component:0101"));
        assert!(!is_category_code("0102"));
        assert!(!is_category_code("event:01"));
        assert!(!is_category_code("event:01a2"));
        assert!(!is_category_code("other:0102"));
        assert!(is_asset_code("3201020101000123"));
        assert!(!is_asset_code("320102010100012"));
    }

    #[test]
    fn error_body_names_first_path() {
        let mut e = ValidationErrors::new();
        e.push("payload.description", "too long");
        e.push("payload.photos", "too many");
        let body = e.to_error_body();
        assert_eq!(body.code, ErrorCode::InvalidRequest);
        assert_eq!(body.details["path"], "payload.description");
        assert_eq!(body.details["errors"][1]["path"], "payload.photos");
    }
}
