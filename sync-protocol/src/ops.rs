//! Typed operations: the `(type, payload)` pairs a phone queues, and their pure validation.
//!
//! Operation types are versioned (`case.create@1`). A version's meaning never changes in place:
//! a new meaning is a new version, and the server keeps accepting the old one for as long as
//! phones may hold it in their queues.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::datum::Datum;
use crate::error::ErrorCode;
use crate::validation::{
    check_lat_lon, check_text, check_v7, is_asset_code, is_category_code, is_item_id,
    is_sha256_hex, ValidationErrors, MAX_ACCURACY_M, MAX_CHECKLIST_ITEMS, MAX_COMMENT_CHARS,
    MAX_DESCRIPTION_CHARS, MAX_PHOTOS, MAX_PHOTO_BYTES,
};
use crate::wire::OperationBody;

/// Operation type names, as sent in [`OperationBody::op_type`].
pub mod op_types {
    pub const CASE_CREATE_V1: &str = "case.create@1";
    pub const CASE_EDIT_V1: &str = "case.edit@1";
    pub const CASE_COMMENT_V1: &str = "case.comment@1";
    pub const CASE_TRANSITION_V1: &str = "case.transition@1";
    pub const CASE_VERIFY_V1: &str = "case.verify@1";
    pub const ROUND_START_V1: &str = "round.start@1";
    pub const ROUND_START_V2: &str = "round.start@2";
    pub const ROUND_CHECKLIST_V1: &str = "round.checklist@1";
    pub const ROUND_TRACK_V1: &str = "round.track@1";
    pub const ROUND_FINISH_V1: &str = "round.finish@1";
    pub const NOTICE_READ_V1: &str = "notice.read@1";

    /// Every operation type this crate understands.
    pub const ALL: &[&str] = &[
        CASE_CREATE_V1,
        CASE_EDIT_V1,
        CASE_COMMENT_V1,
        CASE_TRANSITION_V1,
        CASE_VERIFY_V1,
        ROUND_START_V1,
        ROUND_START_V2,
        ROUND_FINISH_V1,
        ROUND_CHECKLIST_V1,
        ROUND_TRACK_V1,
        NOTICE_READ_V1,
    ];
}

// ---------------------------------------------------------------------------------------------
// Payload types
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// What a photo shows: the problem as found (`before`), its rectification (`after`), the
/// material a report from outside the patrol came with (`intake`: the caller's photo, a press
/// photo), or an inspector's on-site check of such a report (`verification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhotoRole {
    Before,
    After,
    Intake,
    Verification,
}

impl PhotoRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoRole::Before => "before",
            PhotoRole::After => "after",
            PhotoRole::Intake => "intake",
            PhotoRole::Verification => "verification",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
    /// The datum of `lat` and `lon`; WGS-84 when absent (see [`Datum`]).
    #[serde(default, skip_serializing_if = "Datum::is_wgs84")]
    pub datum: Datum,
}

impl GeoPoint {
    /// A WGS-84 point.
    pub fn wgs84(lat: f64, lon: f64) -> Self {
        Self {
            lat,
            lon,
            datum: Datum::Wgs84,
        }
    }

    /// The point in WGS-84, as the server stores it.
    pub fn to_wgs84(self) -> (f64, f64) {
        self.datum.to_wgs84(self.lat, self.lon)
    }
}

/// Where the phone was when the problem was captured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    /// Radius of the GPS fix's uncertainty, in metres.
    pub accuracy_m: f64,
    /// The datum of `lat` and `lon`: `wgs84` (the default, what GPS gives), `gcj02` or
    /// `bd09` (what a domestic map picker gives). The server stores WGS-84.
    #[serde(default, skip_serializing_if = "Datum::is_wgs84")]
    pub datum: Datum,
}

impl Location {
    /// The WGS-84 `(lat, lon)` of the location, as the server stores it.
    pub fn to_wgs84(&self) -> (f64, f64) {
        self.datum.to_wgs84(self.lat, self.lon)
    }
}

/// A photo the operation declares. The bytes travel separately (content-addressed by `sha256`);
/// the server verifies the whole-file hash before the photo counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhotoManifest {
    /// Lowercase hex SHA-256 of the file bytes, computed on the phone at capture.
    pub sha256: String,
    /// File size in bytes, 1 ..= 50 MiB.
    pub size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: OffsetDateTime,
    #[serde(default)]
    pub gps: Option<GeoPoint>,
    pub role: PhotoRole,
}

/// `case.create@1`: report a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseCreateV1 {
    /// Client-generated UUIDv7.
    pub case_id: Uuid,
    pub zone_id: Uuid,
    /// Taxonomy key, e.g. `event:0102` (see [`crate::validation::is_category_code`]).
    pub category_code: String,
    pub location: Location,
    /// 16-digit asset code, when the problem is on a registered asset.
    #[serde(default)]
    pub asset_code: Option<String>,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: OffsetDateTime,
    /// `before` photos, at most 20.
    #[serde(default)]
    pub photos: Vec<PhotoManifest>,
    /// The inspection round this was found on.
    #[serde(default)]
    pub round_id: Option<Uuid>,
}

/// The mutable fields a `case.edit@1` may change. Absent means "unchanged". For `asset_code`,
/// `null` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub asset_code: Option<Option<String>>,
}

impl CaseChanges {
    pub fn is_empty(&self) -> bool {
        self.category_code.is_none()
            && self.description.is_none()
            && self.severity.is_none()
            && self.asset_code.is_none()
    }
}

/// Distinguishes an absent field (`None`, via `default`) from an explicit `null` (`Some(None)`).
fn present_or_null<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// `case.edit@1`: change mutable fields, based on the case version the phone last saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseEditV1 {
    pub case_id: Uuid,
    /// The case version the phone last saw (from pull, or 1 for a case it created itself).
    pub base_version: i64,
    /// At least one change.
    pub changes: CaseChanges,
}

/// `case.comment@1`: append a comment. Comments never conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseCommentV1 {
    pub case_id: Uuid,
    /// Client-generated UUIDv7.
    pub comment_id: Uuid,
    pub text: String,
}

/// Transitions a phone may request; every other state change is the server's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransitionAction {
    /// The reporter takes back a report that is still `reported`.
    Withdraw,
    /// An assignee reports the problem fixed, with `after` photos.
    ReportRectified,
}

/// `case.transition@1`: request a state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseTransitionV1 {
    pub case_id: Uuid,
    pub base_version: i64,
    pub action: TransitionAction,
    #[serde(default)]
    pub comment: Option<String>,
    /// `after` photos; required (non-empty) for `report_rectified`, empty for `withdraw`.
    #[serde(default)]
    pub photos: Vec<PhotoManifest>,
}

/// `case.verify@1`: an inspector's on-site check (核实) of a case reported outside the patrol
/// (a hotline call, a public report, a department's transfer): whether the problem is there
/// as reported, with `verification` photos. Such a case can be deducted only after a visit
/// that found it. Recorded once per `verification_id`; a case may be visited more than once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseVerifyV1 {
    pub case_id: Uuid,
    /// Client-generated UUIDv7 of the visit.
    pub verification_id: Uuid,
    /// The problem is there as reported.
    pub found: bool,
    /// Where the phone was at the check.
    pub location: Location,
    #[serde(with = "time::serde::rfc3339")]
    pub verified_at: OffsetDateTime,
    #[serde(default)]
    pub comment: Option<String>,
    /// `verification` photos, at most 20; at least one when `found`.
    #[serde(default)]
    pub photos: Vec<PhotoManifest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    Routine,
    Periodic,
    Unannounced,
}

/// `round.start@1`: an inspector starts a patrol round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundStartV1 {
    /// Client-generated UUIDv7.
    pub round_id: Uuid,
    pub zone_id: Uuid,
    pub kind: RoundKind,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
}

/// `round.start@2`: `round.start@1`, optionally for an occurrence of an inspection plan the
/// inspector is assigned to (as pulled: entity `plan`). `plan_id` and `occurrence_at` come
/// together or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundStartV2 {
    /// Client-generated UUIDv7.
    pub round_id: Uuid,
    pub zone_id: Uuid,
    /// With a plan: the plan's kind (`periodic` or `unannounced`).
    pub kind: RoundKind,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<Uuid>,
    /// The occurrence's start, as the pulled plan's `upcoming[].starts_at` gives it.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub occurrence_at: Option<OffsetDateTime>,
}

/// `round.finish@1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundFinishV1 {
    pub round_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
}

/// The answer to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemResult {
    Pass,
    Fail,
    NotApplicable,
}

/// Most characters of a checklist response's note.
pub const MAX_NOTE_CHARS: usize = 1000;

/// The answer to one item of a plan's checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistResponse {
    /// The template item's id.
    pub item_id: String,
    pub result: ItemResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where the item was checked; required for a `fail` that raises a case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// `before` photos, at most 20; at least one for a `fail` that raises a case.
    #[serde(default)]
    pub photos: Vec<PhotoManifest>,
}

/// `round.checklist@1`: the plan's checklist as completed on a round of that plan. Each
/// failed item with a category raises a case (its id: `plan::finding_case_id`) carrying the
/// item's photos. One checklist per round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundChecklistV1 {
    pub round_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub completed_at: OffsetDateTime,
    pub responses: Vec<ChecklistResponse>,
}

/// Largest encoded track, in bytes of text.
pub const MAX_TRACK_BYTES: usize = 64 * 1024;
/// Most positions one track holds.
pub const MAX_TRACK_POINTS: u32 = 10_000;

/// `round.track@1`: the positions sampled during a round, as a Google encoded polyline
/// (precision 1e5, WGS-84, latitude before longitude). One track per round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoundTrackV1 {
    pub round_id: Uuid,
    pub polyline: String,
    /// How many positions `polyline` encodes.
    pub points: u32,
}

impl RoundTrackV1 {
    /// The track of `positions` (`(lat, lon)`, WGS-84).
    pub fn encode(round_id: Uuid, positions: &[(f64, f64)]) -> Result<Self, String> {
        let coords = positions
            .iter()
            .map(|&(lat, lon)| geo_types::Coord { x: lon, y: lat });
        let polyline = polyline::encode_coordinates(coords, 5).map_err(|e| e.to_string())?;
        Ok(Self {
            round_id,
            points: u32::try_from(positions.len()).unwrap_or(u32::MAX),
            polyline,
        })
    }

    /// The positions, `(lat, lon)`, or why the text is not an encoded polyline.
    pub fn decode(&self) -> Result<Vec<(f64, f64)>, String> {
        if self.polyline.is_empty() {
            return Ok(vec![]);
        }
        polyline::decode_polyline(&self.polyline, 5)
            .map(|line| line.0.into_iter().map(|c| (c.y, c.x)).collect())
            .map_err(|e| e.to_string())
    }
}

/// `notice.read@1`: the user read a notice of their inbox on the phone (a read receipt). The
/// first reading counts, on a phone or on the console; a later one changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeReadV1 {
    /// The notice's id, as pulled (`notice` entity).
    pub notice_id: Uuid,
    /// Device clock when the user opened it.
    #[serde(with = "time::serde::rfc3339")]
    pub read_at: OffsetDateTime,
}

// ---------------------------------------------------------------------------------------------
// The typed operation
// ---------------------------------------------------------------------------------------------

/// A parsed operation: one variant per `type@version`.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    CaseCreateV1(CaseCreateV1),
    CaseEditV1(CaseEditV1),
    CaseCommentV1(CaseCommentV1),
    CaseTransitionV1(CaseTransitionV1),
    CaseVerifyV1(CaseVerifyV1),
    RoundStartV1(RoundStartV1),
    RoundStartV2(RoundStartV2),
    RoundFinishV1(RoundFinishV1),
    RoundChecklistV1(RoundChecklistV1),
    RoundTrackV1(RoundTrackV1),
    NoticeReadV1(NoticeReadV1),
}

/// Why a `(type, payload)` is not a valid operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperationError {
    /// Unknown type or version → `unsupported_operation`.
    #[error("unsupported operation type {0:?}")]
    Unsupported(String),
    /// The payload does not have the type's shape → `invalid_request`.
    #[error("invalid {op_type} payload: {message}")]
    Payload { op_type: String, message: String },
    /// The payload has the right shape but invalid values → `invalid_request`.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
}

impl OperationError {
    pub fn code(&self) -> ErrorCode {
        match self {
            OperationError::Unsupported(_) => ErrorCode::UnsupportedOperation,
            OperationError::Payload { .. } | OperationError::Invalid(_) => {
                ErrorCode::InvalidRequest
            }
        }
    }
}

fn from_payload<T: serde::de::DeserializeOwned>(
    op_type: &str,
    payload: &serde_json::Value,
) -> Result<T, OperationError> {
    T::deserialize(payload).map_err(|e| OperationError::Payload {
        op_type: op_type.to_owned(),
        message: e.to_string(),
    })
}

impl Operation {
    /// Parses `(type, payload)` into a typed operation. Does not validate values: call
    /// [`Operation::validate`] (or use [`Operation::from_body`], which does both).
    pub fn parse(op_type: &str, payload: &serde_json::Value) -> Result<Self, OperationError> {
        Ok(match op_type {
            op_types::CASE_CREATE_V1 => Operation::CaseCreateV1(from_payload(op_type, payload)?),
            op_types::CASE_EDIT_V1 => Operation::CaseEditV1(from_payload(op_type, payload)?),
            op_types::CASE_COMMENT_V1 => Operation::CaseCommentV1(from_payload(op_type, payload)?),
            op_types::CASE_TRANSITION_V1 => {
                Operation::CaseTransitionV1(from_payload(op_type, payload)?)
            }
            op_types::CASE_VERIFY_V1 => Operation::CaseVerifyV1(from_payload(op_type, payload)?),
            op_types::ROUND_START_V1 => Operation::RoundStartV1(from_payload(op_type, payload)?),
            op_types::ROUND_START_V2 => Operation::RoundStartV2(from_payload(op_type, payload)?),
            op_types::ROUND_FINISH_V1 => Operation::RoundFinishV1(from_payload(op_type, payload)?),
            op_types::ROUND_CHECKLIST_V1 => {
                Operation::RoundChecklistV1(from_payload(op_type, payload)?)
            }
            op_types::ROUND_TRACK_V1 => Operation::RoundTrackV1(from_payload(op_type, payload)?),
            op_types::NOTICE_READ_V1 => Operation::NoticeReadV1(from_payload(op_type, payload)?),
            other => return Err(OperationError::Unsupported(other.to_owned())),
        })
    }

    /// Parses and validates the operation carried by `body` (body fields included).
    pub fn from_body(body: &OperationBody) -> Result<Self, OperationError> {
        let op = Self::parse(&body.op_type, &body.payload)?;
        let mut errors = ValidationErrors::new();
        validate_body_fields(body, &mut errors);
        op.validate_into(&mut errors, "payload");
        errors.into_result()?;
        Ok(op)
    }

    /// The `type@version` name.
    pub fn op_type(&self) -> &'static str {
        match self {
            Operation::CaseCreateV1(_) => op_types::CASE_CREATE_V1,
            Operation::CaseEditV1(_) => op_types::CASE_EDIT_V1,
            Operation::CaseCommentV1(_) => op_types::CASE_COMMENT_V1,
            Operation::CaseTransitionV1(_) => op_types::CASE_TRANSITION_V1,
            Operation::CaseVerifyV1(_) => op_types::CASE_VERIFY_V1,
            Operation::RoundStartV1(_) => op_types::ROUND_START_V1,
            Operation::RoundStartV2(_) => op_types::ROUND_START_V2,
            Operation::RoundFinishV1(_) => op_types::ROUND_FINISH_V1,
            Operation::RoundChecklistV1(_) => op_types::ROUND_CHECKLIST_V1,
            Operation::RoundTrackV1(_) => op_types::ROUND_TRACK_V1,
            Operation::NoticeReadV1(_) => op_types::NOTICE_READ_V1,
        }
    }

    /// The payload as JSON.
    pub fn payload(&self) -> serde_json::Value {
        let value = match self {
            Operation::CaseCreateV1(p) => serde_json::to_value(p),
            Operation::CaseEditV1(p) => serde_json::to_value(p),
            Operation::CaseCommentV1(p) => serde_json::to_value(p),
            Operation::CaseTransitionV1(p) => serde_json::to_value(p),
            Operation::CaseVerifyV1(p) => serde_json::to_value(p),
            Operation::RoundStartV1(p) => serde_json::to_value(p),
            Operation::RoundStartV2(p) => serde_json::to_value(p),
            Operation::RoundFinishV1(p) => serde_json::to_value(p),
            Operation::RoundChecklistV1(p) => serde_json::to_value(p),
            Operation::RoundTrackV1(p) => serde_json::to_value(p),
            Operation::NoticeReadV1(p) => serde_json::to_value(p),
        };
        // These are plain structs with string keys; serialising them cannot fail.
        value.expect("operation payloads always serialise")
    }

    /// The case, round or notice the operation is about.
    pub fn entity_id(&self) -> Uuid {
        match self {
            Operation::CaseCreateV1(p) => p.case_id,
            Operation::CaseEditV1(p) => p.case_id,
            Operation::CaseCommentV1(p) => p.case_id,
            Operation::CaseTransitionV1(p) => p.case_id,
            Operation::CaseVerifyV1(p) => p.case_id,
            Operation::RoundStartV1(p) => p.round_id,
            Operation::RoundStartV2(p) => p.round_id,
            Operation::RoundFinishV1(p) => p.round_id,
            Operation::RoundChecklistV1(p) => p.round_id,
            Operation::RoundTrackV1(p) => p.round_id,
            Operation::NoticeReadV1(p) => p.notice_id,
        }
    }

    /// Every photo the operation declares (a checklist's: those of all its responses).
    pub fn photos(&self) -> Vec<&PhotoManifest> {
        match self {
            Operation::CaseCreateV1(p) => p.photos.iter().collect(),
            Operation::CaseTransitionV1(p) => p.photos.iter().collect(),
            Operation::CaseVerifyV1(p) => p.photos.iter().collect(),
            Operation::RoundChecklistV1(p) => p.responses.iter().flat_map(|r| &r.photos).collect(),
            _ => vec![],
        }
    }

    /// Validates the payload's values; paths are relative to the payload.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        self.validate_into(&mut errors, "");
        errors.into_result()
    }

    fn validate_into(&self, e: &mut ValidationErrors, prefix: &str) {
        let p = |field: &str| {
            if prefix.is_empty() {
                field.to_owned()
            } else {
                format!("{prefix}.{field}")
            }
        };
        match self {
            Operation::CaseCreateV1(c) => {
                check_v7(e, &p("case_id"), c.case_id);
                check_category(e, &p("category_code"), &c.category_code);
                check_lat_lon(e, &p("location"), c.location.lat, c.location.lon);
                let acc = c.location.accuracy_m;
                if !(acc.is_finite() && (0.0..=MAX_ACCURACY_M).contains(&acc)) {
                    e.push(
                        p("location.accuracy_m"),
                        format!("must be between 0 and {MAX_ACCURACY_M}"),
                    );
                }
                if let Some(asset) = &c.asset_code {
                    check_asset(e, &p("asset_code"), asset);
                }
                check_text(
                    e,
                    &p("description"),
                    &c.description,
                    MAX_DESCRIPTION_CHARS,
                    false,
                );
                check_photos(e, &p("photos"), &c.photos, PhotoRole::Before, false);
            }
            Operation::CaseEditV1(c) => {
                check_base_version(e, &p("base_version"), c.base_version);
                if c.changes.is_empty() {
                    e.push(p("changes"), "must change at least one field");
                }
                if let Some(code) = &c.changes.category_code {
                    check_category(e, &p("changes.category_code"), code);
                }
                if let Some(d) = &c.changes.description {
                    check_text(
                        e,
                        &p("changes.description"),
                        d,
                        MAX_DESCRIPTION_CHARS,
                        false,
                    );
                }
                if let Some(Some(asset)) = &c.changes.asset_code {
                    check_asset(e, &p("changes.asset_code"), asset);
                }
            }
            Operation::CaseCommentV1(c) => {
                check_v7(e, &p("comment_id"), c.comment_id);
                check_text(e, &p("text"), &c.text, MAX_COMMENT_CHARS, true);
            }
            Operation::CaseTransitionV1(c) => {
                check_base_version(e, &p("base_version"), c.base_version);
                if let Some(comment) = &c.comment {
                    check_text(e, &p("comment"), comment, MAX_COMMENT_CHARS, false);
                }
                match c.action {
                    TransitionAction::Withdraw => {
                        if !c.photos.is_empty() {
                            e.push(p("photos"), "must be empty for withdraw");
                        }
                    }
                    TransitionAction::ReportRectified => {
                        check_photos(e, &p("photos"), &c.photos, PhotoRole::After, true);
                    }
                }
            }
            Operation::CaseVerifyV1(v) => {
                check_v7(e, &p("verification_id"), v.verification_id);
                check_lat_lon(e, &p("location"), v.location.lat, v.location.lon);
                let acc = v.location.accuracy_m;
                if !(acc.is_finite() && (0.0..=MAX_ACCURACY_M).contains(&acc)) {
                    e.push(
                        p("location.accuracy_m"),
                        format!("must be between 0 and {MAX_ACCURACY_M}"),
                    );
                }
                if let Some(comment) = &v.comment {
                    check_text(e, &p("comment"), comment, MAX_COMMENT_CHARS, false);
                }
                check_photos(e, &p("photos"), &v.photos, PhotoRole::Verification, v.found);
            }
            Operation::RoundStartV1(r) => check_v7(e, &p("round_id"), r.round_id),
            Operation::RoundStartV2(r) => {
                check_v7(e, &p("round_id"), r.round_id);
                match (r.plan_id, r.occurrence_at) {
                    (Some(_), None) => e.push(p("occurrence_at"), "required with plan_id"),
                    (None, Some(_)) => e.push(p("plan_id"), "required with occurrence_at"),
                    (Some(_), Some(_)) if r.kind == RoundKind::Routine => {
                        e.push(p("kind"), "a plan's round is periodic or unannounced")
                    }
                    _ => {}
                }
            }
            Operation::RoundChecklistV1(c) => check_responses(e, &p("responses"), &c.responses),
            Operation::RoundTrackV1(t) => check_track(e, &p(""), t),
            Operation::RoundFinishV1(_) | Operation::NoticeReadV1(_) => {}
        }
    }
}

/// Checks the envelope fields that do not depend on the device's history (the chain itself is
/// [`check_chain`](crate::signing::check_chain)).
pub fn validate_body(body: &OperationBody) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    validate_body_fields(body, &mut errors);
    errors.into_result()
}

fn validate_body_fields(body: &OperationBody, e: &mut ValidationErrors) {
    check_v7(e, "op_id", body.op_id);
    if body.seq == 0 {
        e.push("seq", "must be at least 1");
    }
    if !is_sha256_hex(&body.prev) {
        e.push("prev", "must be 64 lowercase hex digits");
    }
}

/// A checklist's responses on their own: item ids well formed and each answered once, notes,
/// locations and photos valid. What depends on the template is
/// `plan::check_against_template`.
fn check_responses(e: &mut ValidationErrors, path: &str, responses: &[ChecklistResponse]) {
    if responses.len() > MAX_CHECKLIST_ITEMS {
        e.push(path, format!("at most {} responses", MAX_CHECKLIST_ITEMS));
    }
    for (i, r) in responses.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !is_item_id(&r.item_id) {
            e.push(format!("{at}.item_id"), "1 to 32 of a-z, 0-9, '-' and '_'");
        } else if responses[..i].iter().any(|o| o.item_id == r.item_id) {
            e.push(format!("{at}.item_id"), "the same item answered twice");
        }
        if let Some(note) = &r.note {
            check_text(e, &format!("{at}.note"), note, MAX_NOTE_CHARS, false);
        }
        if let Some(loc) = &r.location {
            check_location(e, &format!("{at}.location"), loc);
        }
        check_photos(
            e,
            &format!("{at}.photos"),
            &r.photos,
            PhotoRole::Before,
            false,
        );
    }
}

fn check_location(e: &mut ValidationErrors, path: &str, loc: &Location) {
    check_lat_lon(e, path, loc.lat, loc.lon);
    let acc = loc.accuracy_m;
    if !(acc.is_finite() && (0.0..=MAX_ACCURACY_M).contains(&acc)) {
        e.push(
            format!("{path}.accuracy_m"),
            format!("must be between 0 and {MAX_ACCURACY_M}"),
        );
    }
}

/// `prefix` is `""` or `"payload."`.
fn check_track(e: &mut ValidationErrors, prefix: &str, t: &RoundTrackV1) {
    let (poly, points) = (format!("{prefix}polyline"), format!("{prefix}points"));
    if t.points == 0 || t.points > MAX_TRACK_POINTS {
        e.push(&points, format!("between 1 and {MAX_TRACK_POINTS}"));
    }
    if t.polyline.len() > MAX_TRACK_BYTES {
        e.push(poly, format!("at most {MAX_TRACK_BYTES} bytes"));
        return;
    }
    match t.decode() {
        Err(message) => e.push(poly, format!("not an encoded polyline: {message}")),
        Ok(positions) => {
            if let Some(i) = positions.iter().position(|&(lat, lon)| {
                !(lat.is_finite()
                    && lon.is_finite()
                    && (-90.0..=90.0).contains(&lat)
                    && (-180.0..=180.0).contains(&lon))
            }) {
                e.push(
                    poly,
                    format!("position {i} is not a latitude and longitude"),
                );
            } else if positions.len() != t.points as usize {
                e.push(
                    points,
                    format!("the polyline encodes {} positions", positions.len()),
                );
            }
        }
    }
}

fn check_category(e: &mut ValidationErrors, path: &str, code: &str) {
    if !is_category_code(code) {
        e.push(path, "must be a 4-digit taxonomy code");
    }
}

fn check_asset(e: &mut ValidationErrors, path: &str, code: &str) {
    if !is_asset_code(code) {
        e.push(path, "must be a 16-digit asset code");
    }
}

fn check_base_version(e: &mut ValidationErrors, path: &str, v: i64) {
    if v < 1 {
        e.push(path, "must be at least 1");
    }
}

/// Checks photos declared outside an operation (a report taken in through the API) as an
/// operation's are: hashes, sizes, positions, and that each has `role`. Paths start `photos`.
pub fn validate_photos(photos: &[PhotoManifest], role: PhotoRole) -> Result<(), ValidationErrors> {
    let mut e = ValidationErrors::new();
    check_photos(&mut e, "photos", photos, role, false);
    e.into_result()
}

fn check_photos(
    e: &mut ValidationErrors,
    path: &str,
    photos: &[PhotoManifest],
    role: PhotoRole,
    required: bool,
) {
    if required && photos.is_empty() {
        e.push(path, "at least one photo is required");
    }
    if photos.len() > MAX_PHOTOS {
        e.push(path, format!("at most {MAX_PHOTOS} photos"));
    }
    for (i, photo) in photos.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !is_sha256_hex(&photo.sha256) {
            e.push(format!("{at}.sha256"), "must be 64 lowercase hex digits");
        } else if photos[..i].iter().any(|p| p.sha256 == photo.sha256) {
            e.push(format!("{at}.sha256"), "the same photo is declared twice");
        }
        if photo.size == 0 || photo.size > MAX_PHOTO_BYTES {
            e.push(
                format!("{at}.size"),
                format!("must be between 1 and {MAX_PHOTO_BYTES} bytes"),
            );
        }
        if let Some(gps) = photo.gps {
            check_lat_lon(e, &format!("{at}.gps"), gps.lat, gps.lon);
        }
        if photo.role != role {
            e.push(format!("{at}.role"), format!("must be {}", role.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn photo(role: PhotoRole) -> PhotoManifest {
        PhotoManifest {
            sha256: "ab".repeat(32),
            size: 2_000_000,
            captured_at: datetime!(2025-03-01 08:00 UTC),
            gps: Some(GeoPoint::wgs84(31.2, 121.4)),
            role,
        }
    }

    fn create() -> CaseCreateV1 {
        CaseCreateV1 {
            case_id: Uuid::now_v7(),
            zone_id: Uuid::now_v7(),
            category_code: "event:0102".into(),
            location: Location {
                lat: 31.2,
                lon: 121.4,
                accuracy_m: 8.0,
                datum: Default::default(),
            },
            asset_code: None,
            description: "bin overflowing".into(),
            severity: Severity::Medium,
            captured_at: datetime!(2025-03-01 08:00 UTC),
            photos: vec![photo(PhotoRole::Before)],
            round_id: None,
        }
    }

    #[test]
    fn a_verification_that_found_the_problem_needs_a_verification_photo() {
        let visit = |found: bool, photos: Vec<PhotoManifest>| {
            Operation::CaseVerifyV1(CaseVerifyV1 {
                case_id: Uuid::now_v7(),
                verification_id: Uuid::now_v7(),
                found,
                location: create().location,
                verified_at: datetime!(2025-03-02 09:40 UTC),
                comment: None,
                photos,
            })
        };
        let paths = |op: Operation| -> Vec<String> {
            op.validate()
                .err()
                .map(|e| e.errors.into_iter().map(|e| e.path).collect())
                .unwrap_or_default()
        };
        assert_eq!(paths(visit(true, vec![])), vec!["photos"]);
        assert!(
            paths(visit(false, vec![])).is_empty(),
            "nothing to photograph"
        );
        assert_eq!(
            paths(visit(true, vec![photo(PhotoRole::Before)])),
            vec!["photos[0].role"]
        );
        assert!(paths(visit(true, vec![photo(PhotoRole::Verification)])).is_empty());
    }

    #[test]
    fn parse_round_trips_every_type() {
        let id = Uuid::now_v7();
        let ops = [
            Operation::CaseCreateV1(create()),
            Operation::CaseEditV1(CaseEditV1 {
                case_id: id,
                base_version: 2,
                changes: CaseChanges {
                    severity: Some(Severity::High),
                    asset_code: Some(None),
                    ..Default::default()
                },
            }),
            Operation::CaseCommentV1(CaseCommentV1 {
                case_id: id,
                comment_id: Uuid::now_v7(),
                text: "still there".into(),
            }),
            Operation::CaseTransitionV1(CaseTransitionV1 {
                case_id: id,
                base_version: 4,
                action: TransitionAction::ReportRectified,
                comment: None,
                photos: vec![photo(PhotoRole::After)],
            }),
            Operation::CaseVerifyV1(CaseVerifyV1 {
                case_id: id,
                verification_id: Uuid::now_v7(),
                found: true,
                location: create().location,
                verified_at: datetime!(2025-03-02 09:40 UTC),
                comment: Some("there as reported".into()),
                photos: vec![photo(PhotoRole::Verification)],
            }),
            Operation::RoundStartV1(RoundStartV1 {
                round_id: Uuid::now_v7(),
                zone_id: id,
                kind: RoundKind::Unannounced,
                started_at: datetime!(2025-03-01 07:00 UTC),
            }),
            Operation::RoundStartV2(RoundStartV2 {
                round_id: Uuid::now_v7(),
                zone_id: id,
                kind: RoundKind::Periodic,
                started_at: datetime!(2025-03-01 07:02 UTC),
                plan_id: Some(id),
                occurrence_at: Some(datetime!(2025-03-01 07:00 UTC)),
            }),
            Operation::RoundFinishV1(RoundFinishV1 {
                round_id: id,
                finished_at: datetime!(2025-03-01 09:00 UTC),
            }),
            Operation::RoundChecklistV1(checklist()),
            Operation::RoundTrackV1(
                RoundTrackV1::encode(id, &[(31.2, 121.4), (31.2005, 121.401)]).unwrap(),
            ),
            Operation::NoticeReadV1(NoticeReadV1 {
                notice_id: id,
                read_at: datetime!(2025-03-03 08:15 UTC),
            }),
        ];
        assert_eq!(ops.len(), op_types::ALL.len());
        for op in ops {
            let back = Operation::parse(op.op_type(), &op.payload()).unwrap();
            assert_eq!(back, op);
            op.validate().unwrap();
        }
    }

    fn checklist() -> RoundChecklistV1 {
        RoundChecklistV1 {
            round_id: Uuid::now_v7(),
            completed_at: datetime!(2025-03-01 08:30 UTC),
            responses: vec![
                ChecklistResponse {
                    item_id: "cover".into(),
                    result: ItemResult::Fail,
                    note: Some("cracked".into()),
                    location: Some(create().location),
                    photos: vec![photo(PhotoRole::Before)],
                },
                ChecklistResponse {
                    item_id: "lights".into(),
                    result: ItemResult::NotApplicable,
                    note: None,
                    location: None,
                    photos: vec![],
                },
            ],
        }
    }

    #[test]
    fn a_plan_round_names_both_plan_and_occurrence() {
        let start = |plan_id: Option<Uuid>, occurrence_at: Option<OffsetDateTime>| {
            Operation::RoundStartV2(RoundStartV2 {
                round_id: Uuid::now_v7(),
                zone_id: Uuid::now_v7(),
                kind: RoundKind::Periodic,
                started_at: datetime!(2025-03-01 07:02 UTC),
                plan_id,
                occurrence_at,
            })
        };
        let at = Some(datetime!(2025-03-01 07:00 UTC));
        assert!(start(Some(Uuid::now_v7()), None)
            .validate()
            .unwrap_err()
            .has("occurrence_at"));
        assert!(start(None, at).validate().unwrap_err().has("plan_id"));
        start(None, None).validate().unwrap();
        // Without a plan, round.start@2 is round.start@1: the plan fields are not sent.
        let payload = start(None, None).payload();
        assert!(payload.get("plan_id").is_none() && payload.get("occurrence_at").is_none());
    }

    #[test]
    fn checklist_responses_answer_each_item_once_with_valid_evidence() {
        let mut c = checklist();
        c.responses[1].item_id = "cover".into();
        c.responses[0].photos[0].role = PhotoRole::After;
        c.responses[0].location.as_mut().unwrap().lat = 95.0;
        c.responses[0].note = Some("x".repeat(MAX_NOTE_CHARS + 1));
        let errs = Operation::RoundChecklistV1(c).validate().unwrap_err();
        for path in [
            "responses[1].item_id",
            "responses[0].photos[0].role",
            "responses[0].location.lat",
            "responses[0].note",
        ] {
            assert!(errs.has(path), "missing {path}: {errs}");
        }
    }

    #[test]
    fn a_track_decodes_to_as_many_valid_positions_as_it_says() {
        let round = Uuid::now_v7();
        let positions = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)];
        let track = RoundTrackV1::encode(round, &positions).unwrap();
        // The example of Google's documentation of the format.
        assert_eq!(track.polyline, "_p~iF~ps|U_ulLnnqC_mqNvxq`@");
        assert_eq!(track.decode().unwrap(), positions);
        Operation::RoundTrackV1(track.clone()).validate().unwrap();

        let paths = |t: RoundTrackV1| -> Vec<String> {
            Operation::RoundTrackV1(t)
                .validate()
                .err()
                .map(|e| e.errors.into_iter().map(|e| e.path).collect())
                .unwrap_or_default()
        };
        let miscounted = RoundTrackV1 {
            points: 4,
            ..track.clone()
        };
        assert_eq!(paths(miscounted), vec!["points"]);
        let garbled = RoundTrackV1 {
            // A space is below the alphabet.
            polyline: "_p~iF~ps|U_ulL nnqC_mqNvxq`@".into(),
            ..track.clone()
        };
        assert_eq!(paths(garbled), vec!["polyline"]);
        let too_long = RoundTrackV1 {
            polyline: "?".repeat(MAX_TRACK_BYTES + 1),
            ..track.clone()
        };
        assert_eq!(paths(too_long), vec!["polyline"]);
        let too_many = RoundTrackV1 {
            points: MAX_TRACK_POINTS + 1,
            ..track
        };
        assert!(paths(too_many).contains(&"points".to_owned()));
    }

    #[test]
    fn edit_distinguishes_absent_from_null_asset_code() {
        let absent: CaseChanges = serde_json::from_value(json!({"severity": "low"})).unwrap();
        assert_eq!(absent.asset_code, None);
        let null: CaseChanges = serde_json::from_value(json!({"asset_code": null})).unwrap();
        assert_eq!(null.asset_code, Some(None));
        assert_eq!(
            serde_json::to_value(&null).unwrap(),
            json!({"asset_code": null})
        );
    }

    #[test]
    fn unknown_type_or_version_is_unsupported() {
        for t in ["case.create@2", "case.delete@1", "case.create", ""] {
            let err = Operation::parse(t, &json!({})).unwrap_err();
            assert_eq!(err.code(), ErrorCode::UnsupportedOperation, "{t}");
        }
        let err = Operation::parse(op_types::CASE_COMMENT_V1, &json!({"text": 1})).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
    }

    #[test]
    fn unknown_payload_fields_are_rejected() {
        let mut payload = Operation::CaseCreateV1(create()).payload();
        payload["photos_base64"] = json!("....");
        assert!(matches!(
            Operation::parse(op_types::CASE_CREATE_V1, &payload),
            Err(OperationError::Payload { .. })
        ));
    }

    #[test]
    fn create_validation_reports_field_paths() {
        let mut c = create();
        c.case_id = Uuid::nil();
        c.location.lat = 91.0;
        c.location.lon = f64::NAN;
        c.location.accuracy_m = -1.0;
        c.category_code = "12".into();
        c.asset_code = Some("abc".into());
        c.description = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        c.photos = vec![photo(PhotoRole::Before); MAX_PHOTOS + 1];
        c.photos[0].sha256 = "XYZ".into();
        c.photos[0].size = 0;
        c.photos[2].role = PhotoRole::After;
        c.photos[3].size = MAX_PHOTO_BYTES + 1;
        c.photos[4].gps = Some(GeoPoint::wgs84(0.0, 181.0));
        let errs = Operation::CaseCreateV1(c).validate().unwrap_err();
        for path in [
            "case_id",
            "location.lat",
            "location.lon",
            "location.accuracy_m",
            "category_code",
            "asset_code",
            "description",
            "photos",
            "photos[0].sha256",
            "photos[0].size",
            "photos[2].sha256",
            "photos[2].role",
            "photos[3].size",
            "photos[4].gps.lon",
        ] {
            assert!(errs.has(path), "missing {path}: {errs}");
        }
    }

    #[test]
    fn description_limit_counts_characters_not_bytes() {
        let mut c = create();
        c.description = "垃".repeat(MAX_DESCRIPTION_CHARS);
        Operation::CaseCreateV1(c).validate().unwrap();
    }

    #[test]
    fn edit_comment_transition_rules() {
        let id = Uuid::now_v7();
        let empty = Operation::CaseEditV1(CaseEditV1 {
            case_id: id,
            base_version: 0,
            changes: CaseChanges::default(),
        });
        let errs = empty.validate().unwrap_err();
        assert!(errs.has("changes") && errs.has("base_version"));

        let blank = Operation::CaseCommentV1(CaseCommentV1 {
            case_id: id,
            comment_id: Uuid::now_v7(),
            text: "  ".into(),
        });
        assert!(blank.validate().unwrap_err().has("text"));

        let no_after = Operation::CaseTransitionV1(CaseTransitionV1 {
            case_id: id,
            base_version: 3,
            action: TransitionAction::ReportRectified,
            comment: None,
            photos: vec![],
        });
        assert!(no_after.validate().unwrap_err().has("photos"));

        let withdraw_with_photo = Operation::CaseTransitionV1(CaseTransitionV1 {
            case_id: id,
            base_version: 1,
            action: TransitionAction::Withdraw,
            comment: Some("mistake".into()),
            photos: vec![photo(PhotoRole::After)],
        });
        assert!(withdraw_with_photo.validate().unwrap_err().has("photos"));
    }

    #[test]
    fn from_body_prefixes_payload_paths_and_checks_envelope() {
        let mut c = create();
        c.description = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        let body = OperationBody {
            op_id: Uuid::new_v4(),
            device_id: Uuid::now_v7(),
            seq: 0,
            prev: "nope".into(),
            op_type: op_types::CASE_CREATE_V1.into(),
            queued_at: datetime!(2025-03-01 08:01 UTC),
            payload: Operation::CaseCreateV1(c).payload(),
        };
        let Err(OperationError::Invalid(errs)) = Operation::from_body(&body) else {
            panic!("expected validation errors");
        };
        for path in ["op_id", "seq", "prev", "payload.description"] {
            assert!(errs.has(path), "missing {path}: {errs}");
        }
    }
}
