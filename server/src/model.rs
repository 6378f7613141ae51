//! Resource types of the HTTP API (reference data, users, devices, audit records).
//!
//! Points and coefficients travel as decimals with at most three places and are stored as
//! exact thousandths; see [`Milli`].

use gridline_sync::Role;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A GeoJSON geometry (`Polygon` or `MultiPolygon` for zone boundaries).
pub type GeoJson = serde_json::Value;

/// A text in languages other than the one it was published in: language tag (`zh-CN`, `en`)
/// to text. A reader gets the text in their language when there is one, else as published
/// ([`Translations::pick`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Translations(pub std::collections::BTreeMap<String, String>);

impl Translations {
    /// `published` in `lang`: its translation if there is one.
    pub fn pick<'a>(&'a self, lang: crate::i18n::Lang, published: &'a str) -> &'a str {
        self.0
            .get(lang.tag())
            .map(String::as_str)
            .unwrap_or(published)
    }

    /// Checks the keys (a language the server speaks, as its tag) and the lengths.
    pub fn check(&self, max_chars: usize) -> Result<(), String> {
        for (tag, text) in &self.0 {
            if !crate::i18n::Lang::ALL.iter().any(|l| l.tag() == tag) {
                return Err(format!("unknown language {tag:?} (use zh-CN or en)"));
            }
            let n = text.trim().chars().count();
            if n == 0 || text.chars().count() > max_chars {
                return Err(format!(
                    "the {tag} text must be 1 to {max_chars} characters"
                ));
            }
        }
        Ok(())
    }

    /// As stored: a JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Zone {
    pub id: Uuid,
    /// Short stable code, e.g. `Z01`.
    pub code: String,
    /// The name as published.
    pub name: String,
    /// The name in other languages (`{"en": "Taihe Community"}`).
    pub translations: Translations,
    /// GeoJSON `Polygon` or `MultiPolygon`, WGS84 longitude/latitude.
    #[schema(value_type = Object)]
    pub boundary: GeoJson,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneInput {
    pub code: String,
    pub name: String,
    /// The name in other languages: keys `zh-CN` or `en`, 1 to 200 characters each.
    #[serde(default)]
    pub translations: Translations,
    #[schema(value_type = Object)]
    pub boundary: GeoJson,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RosterEntry {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    /// `null`: every zone.
    pub zone_id: Option<Uuid>,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub valid_from: OffsetDateTime,
    /// `null` while the assignment is current.
    #[serde(with = "time::serde::rfc3339::option")]
    pub valid_to: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RosterInput {
    pub user_id: Uuid,
    /// Omit for an assignment covering every zone.
    #[serde(default)]
    pub zone_id: Option<Uuid>,
    pub role: Role,
}

/// Kind of taxonomy entry (GB/T 30428.2): physical assets or situations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaxonomyKind {
    Component,
    Event,
}

impl TaxonomyEntry {
    pub fn key_of(kind: TaxonomyKind, code: &str) -> String {
        format!("{}:{code}", kind.as_str())
    }
}

impl TaxonomyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaxonomyKind::Component => "component",
            TaxonomyKind::Event => "event",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "component" => Some(TaxonomyKind::Component),
            "event" => Some(TaxonomyKind::Event),
            _ => None,
        }
    }
}

/// The five work categories of the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkCategory {
    EnvironmentalSanitation,
    Greening,
    MunicipalFacilities,
    CityOrder,
    EnvironmentalProtection,
}

impl WorkCategory {
    pub const ALL: &'static [WorkCategory] = &[
        WorkCategory::EnvironmentalSanitation,
        WorkCategory::Greening,
        WorkCategory::MunicipalFacilities,
        WorkCategory::CityOrder,
        WorkCategory::EnvironmentalProtection,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            WorkCategory::EnvironmentalSanitation => "environmental_sanitation",
            WorkCategory::Greening => "greening",
            WorkCategory::MunicipalFacilities => "municipal_facilities",
            WorkCategory::CityOrder => "city_order",
            WorkCategory::EnvironmentalProtection => "environmental_protection",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxonomyEntry {
    /// `{kind}:{code}`, e.g. `event:0102`: how cases, assets and rules refer to an entry
    /// (components and events have separate code spaces). Computed; ignored on input.
    #[serde(default)]
    pub key: String,
    /// 2-digit major or 4-digit major+minor code; local additions use major `21`.
    pub code: String,
    pub kind: TaxonomyKind,
    pub name_zh: String,
    pub name_en: String,
    pub work_category: WorkCategory,
    /// Hours by the clock allowed to rectify, for dispatch deadlines. At most one of the three
    /// time limits is set; none uses the default (72 hours).
    #[serde(default)]
    pub time_limit_hours: Option<i64>,
    /// Hours of working time allowed to rectify, counted on the site's working-day calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_working_hours: Option<i64>,
    /// Working days allowed to rectify, counted on the site's working-day calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit_working_days: Option<i64>,
}

impl TaxonomyEntry {
    /// The time limit this category sets, if it sets one.
    pub fn time_limit(&self) -> Option<crate::workdays::TimeLimit> {
        use crate::workdays::TimeLimit;
        self.time_limit_working_days
            .map(TimeLimit::WorkingDays)
            .or(self.time_limit_working_hours.map(TimeLimit::WorkingHours))
            .or(self.time_limit_hours.map(TimeLimit::Hours))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Asset {
    /// 16 digits: `{6 district}{2 major}{2 minor}{6 serial}`.
    pub code: String,
    pub zone_id: Uuid,
    /// Taxonomy key of the component, e.g. `component:0101`.
    pub category_code: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
}

/// Result of a CSV asset import: all rows or none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub imported: usize,
}

/// One bad row of an import, reported in `details.errors` of an `import_failed` error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RowError {
    /// 1-based line number in the file, the header being line 1.
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rulebook {
    pub id: Uuid,
    pub version: i64,
    pub name: String,
    /// The name in other languages.
    pub translations: Translations,
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    pub rules: Vec<Rule>,
}

/// Where a finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Inspection,
    Media,
    LeaderCriticism,
    PublicComplaint,
}

impl Source {
    pub const ALL: &'static [Source] = &[
        Source::Inspection,
        Source::Media,
        Source::LeaderCriticism,
        Source::PublicComplaint,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Inspection => "inspection",
            Source::Media => "media",
            Source::LeaderCriticism => "leader_criticism",
            Source::PublicComplaint => "public_complaint",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The rulebook's source for a finding on a case from `case_source` (`cases.source`): the
    /// hotline, public reports and transfers are public complaints, the press is media, a
    /// leader's instruction is a leader's criticism.
    pub fn of_case(case_source: &str) -> Self {
        use gridline_sync::case::CaseSource as C;
        match C::parse(case_source) {
            Some(C::Hotline | C::PublicReport | C::DepartmentTransfer) => Source::PublicComplaint,
            Some(C::Media) => Source::Media,
            Some(C::LeaderInstruction) => Source::LeaderCriticism,
            Some(C::Inspection) | None => Source::Inspection,
        }
    }
}

/// What a deduction is for: the problem found, or the case's lateness in rectifying it. A
/// case holds at most one deduction of each basis (pending, or approved and not reversed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The problem itself, found by an inspector or reported from outside.
    #[default]
    Finding,
    /// The dispatched case was not rectified by its deadline: an additional deduction under a
    /// rule such as `OVERDUE`, found at the deadline.
    Lateness,
}

impl Basis {
    pub const ALL: &'static [Basis] = &[Basis::Finding, Basis::Lateness];
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Finding => "finding",
            Basis::Lateness => "lateness",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|b| b.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable code within the rulebook, e.g. `R-0102-INSP`.
    pub code: String,
    /// The rule's text as published.
    pub description: String,
    /// The text in other languages: keys `zh-CN` or `en`, 1 to 500 characters each.
    #[serde(default)]
    pub translations: Translations,
    /// Points deducted before the zone coefficient, at most three decimals.
    pub points: f64,
    pub sources: Vec<Source>,
    /// Taxonomy keys (`event:0102`) this rule applies to; empty means any.
    #[serde(default)]
    pub taxonomy_codes: Vec<String>,
}

impl Rule {
    /// Whether a finding from `source` may be deducted under this rule.
    pub fn allows_source(&self, source: Source) -> bool {
        self.sources.contains(&source)
    }

    /// Whether a finding of taxonomy `category` (none for a finding without one) may be
    /// deducted under this rule: a rule naming no category applies to any.
    pub fn allows_category(&self, category: Option<&str>) -> bool {
        self.taxonomy_codes.is_empty()
            || category.is_some_and(|c| self.taxonomy_codes.iter().any(|k| k == c))
    }

    /// Both: the rule may be cited for this finding.
    pub fn applies_to(&self, source: Source, category: Option<&str>) -> bool {
        self.allows_source(source) && self.allows_category(category)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulebookInput {
    pub name: String,
    /// The name in other languages: keys `zh-CN` or `en`, 1 to 200 characters each.
    #[serde(default)]
    pub translations: Translations,
    #[serde(with = "time::serde::rfc3339")]
    pub effective_from: OffsetDateTime,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodStatus {
    Open,
    Closed,
}

impl PeriodStatus {
    pub const ALL: &'static [PeriodStatus] = &[PeriodStatus::Open, PeriodStatus::Closed];
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodStatus::Open => "open",
            PeriodStatus::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

/// Where a deduction proposal stands: `proposed`, then `approved` or `rejected`, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Proposed,
    Approved,
    Rejected,
}

impl ProposalStatus {
    pub const ALL: &'static [ProposalStatus] = &[
        ProposalStatus::Proposed,
        ProposalStatus::Approved,
        ProposalStatus::Rejected,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Proposed => "proposed",
            ProposalStatus::Approved => "approved",
            ProposalStatus::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Period {
    pub id: Uuid,
    /// e.g. `2026-11`.
    pub code: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub status: PeriodStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
}

/// A new period: a calendar `month` of the site's time zone, or explicit `starts_at` and
/// `ends_at` instants (one or the other).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodInput {
    pub code: String,
    /// `YYYY-MM`: the period runs from the first local midnight of that month to the first of
    /// the next, in the site's time zone (`site.time_zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ends_at: Option<OffsetDateTime>,
}

/// A period as it is stored: its code and the instants it runs between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodSpan {
    pub code: String,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Coefficient {
    pub zone_id: Uuid,
    pub period_id: Uuid,
    /// Difficulty coefficient; weighted points = raw points × coefficient, so a harder zone,
    /// which should lose fewer points for the same finding, gets a coefficient below 1.
    pub coefficient: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CoefficientInput {
    pub coefficient: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub disabled: bool,
    /// Where their notices are mailed, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    pub id: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    #[schema(value_type = Object, nullable = true)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Object, nullable = true)]
    pub after: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A page of results with the cursor of the next page (`null` at the end).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Paging of a newest-first listing keyed by time-ordered ids (UUIDv7).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NewestFirst {
    /// The `next` value of the previous page: only items older than this id.
    pub before: Option<Uuid>,
    /// 1 to 500, default 100.
    pub limit: Option<i64>,
}

impl NewestFirst {
    /// The page size, checked.
    pub fn limit(&self) -> Result<i64, crate::error::ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(crate::error::ApiError::invalid(
                "limit",
                "must be between 1 and 500",
            ));
        }
        Ok(limit)
    }

    /// Cuts the `limit + 1` rows fetched to one page and names the next page's cursor.
    pub fn page<T>(&self, mut items: Vec<T>, limit: i64, id: impl Fn(&T) -> Uuid) -> Page<T> {
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|i| id(i).to_string())
        } else {
            None
        };
        Page { items, next }
    }
}

/// Exact thousandths: how points and coefficients are stored and summed.
pub struct Milli;

impl Milli {
    /// Converts a decimal with at most three places; anything finer, negative or non-finite is
    /// refused rather than rounded silently.
    pub fn from_f64(value: f64, max: f64) -> Option<i64> {
        if !value.is_finite() || value < 0.0 || value > max {
            return None;
        }
        let scaled = value * 1000.0;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 {
            return None;
        }
        Some(rounded as i64)
    }
    pub fn to_f64(milli: i64) -> f64 {
        milli as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_is_exact_or_refused() {
        assert_eq!(Milli::from_f64(0.2, 100.0), Some(200));
        assert_eq!(Milli::from_f64(1.234, 100.0), Some(1234));
        assert_eq!(Milli::from_f64(1.2345, 100.0), None);
        assert_eq!(Milli::from_f64(-1.0, 100.0), None);
        assert_eq!(Milli::from_f64(f64::NAN, 100.0), None);
        assert_eq!(Milli::to_f64(1200), 1.2);
    }
}

/// A case as supervisors and phones see it: fields, evidence manifest, history and conflicts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaseView {
    pub id: Uuid,
    pub zone_id: Uuid,
    pub reporter_id: Uuid,
    pub source: String,
    #[schema(value_type = String)]
    pub state: gridline_sync::case::CaseState,
    /// Taxonomy key, e.g. `event:0102`.
    pub category_code: String,
    pub description: String,
    #[schema(value_type = String)]
    pub severity: gridline_sync::ops::Severity,
    pub asset_code: Option<String>,
    pub location: CaseLocation,
    /// Device clock at capture.
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: OffsetDateTime,
    /// Device clock when the phone queued the operation.
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    /// Server clock when the operation arrived.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub round_id: Option<Uuid>,
    /// The `base_version` for later edits and transitions.
    pub version: i64,
    /// An approved deduction froze the evidence and ledger fields.
    pub locked: bool,
    /// Integrity flags, e.g. `location_outside_zone`, `clock_skew`.
    pub flags: Vec<String>,
    pub photos: Vec<CasePhoto>,
    pub events: Vec<CaseEvent>,
    pub conflicts: Vec<CaseConflict>,
    /// Which declared photos arrived and verified, and their integrity flags (API views; pulls
    /// leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::evidence::EvidenceSummary>,
}

/// An inspection round as phones pull it (`entity: round`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoundView {
    pub id: Uuid,
    pub zone_id: Uuid,
    /// The inspector who made the round.
    pub user_id: Uuid,
    pub kind: gridline_sync::ops::RoundKind,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// `null` while the round is under way.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// The inspection plan the round was made for (`round.start@2`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<Uuid>,
    /// The start of the plan's occurrence the round was made for.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub occurrence_at: Option<OffsetDateTime>,
    /// The checklist's score in per mille, once completed (`round.checklist@1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_permille: Option<i64>,
    /// How many checklist items failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_failed: Option<i64>,
    /// How many positions the recorded track holds (`round.track@1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_points: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaseLocation {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CasePhoto {
    pub sha256: String,
    pub size: i64,
    /// `before` or `after` (rectification).
    pub role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: OffsetDateTime,
    pub gps: Option<[f64; 2]>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaseEvent {
    pub id: Uuid,
    pub version: i64,
    /// `created`, `edited`, `comment`, `transition`.
    pub kind: String,
    pub actor_id: Uuid,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A recorded conflict: both values are kept, with the rule that decided.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaseConflict {
    pub id: Uuid,
    pub case_id: Uuid,
    pub op_id: Uuid,
    pub user_id: Uuid,
    pub field: String,
    #[schema(value_type = Object)]
    pub base_value: serde_json::Value,
    #[schema(value_type = Object)]
    pub server_value: serde_json::Value,
    #[schema(value_type = Object)]
    pub incoming_value: serde_json::Value,
    /// `incoming_applied`, `server_kept` or `rejected`.
    pub resolution: String,
    pub rule_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A person on the roster, as frozen into a ledger entry or a dispatch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RosterPerson {
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
}
