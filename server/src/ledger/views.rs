//! The ledger's requests and answers as the API shows them: proposals, entries, reversals,
//! closing a period. Plain data; the ledger service (`ledger::proposals`, `ledger::posting`,
//! `ledger::closing`) makes and takes them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ledger::chain::ChainBreak;
use crate::model::{Basis, Period, ProposalStatus, Source};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalInput {
    /// A UUID the client makes for the proposal, so that a resend after a lost answer is
    /// recognised: the same request under the same id answers `200` with the existing proposal
    /// and creates nothing; different content under it is refused with `409
    /// proposal_id_reused`. Without it the server makes the id (and a resend makes another
    /// proposal, which a case refuses: see `proposal_pending`).
    #[serde(default)]
    pub proposal_id: Option<Uuid>,
    /// The case the finding is about; omit for a finding with no case (media, a leader's
    /// criticism, a public complaint), then give `zone_id`.
    #[serde(default)]
    pub case_id: Option<Uuid>,
    #[serde(default)]
    pub zone_id: Option<Uuid>,
    /// Default `inspection` for a case.
    #[serde(default)]
    pub source: Option<Source>,
    /// A rule of the active rulebook that applies to the source (and the case's category).
    pub rule_code: String,
    /// Taxonomy key of the problem, for a finding with no case (optional).
    #[serde(default)]
    pub category_code: Option<String>,
    /// When the problem was found; default the case's capture time, or now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub found_at: Option<time::OffsetDateTime>,
    #[serde(default)]
    pub note: String,
    /// What the deduction is for: `finding` (the default) or `lateness`, the case's failure to
    /// be rectified by its deadline. A case holds one deduction of each basis. A lateness
    /// deduction needs a case that was dispatched and is past its deadline, or was sent for
    /// verification only after it; it is found at the deadline (`found_at` may be later, not
    /// earlier), and its approval does not lock the case.
    #[serde(default)]
    pub basis: Basis,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Proposal {
    pub id: Uuid,
    pub case_id: Option<Uuid>,
    pub zone_id: Uuid,
    pub period_id: Uuid,
    pub source: String,
    pub rulebook_id: Uuid,
    pub rule_code: String,
    pub raw_points: f64,
    pub category_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: time::OffsetDateTime,
    pub note: String,
    /// `proposed`, `approved` or `rejected`.
    #[schema(value_type = String)]
    pub status: ProposalStatus,
    pub proposed_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub proposed_at: time::OffsetDateTime,
    pub decided_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<time::OffsetDateTime>,
    pub reason: Option<String>,
    pub ledger_entry_id: Option<Uuid>,
    /// `finding` or `lateness`.
    pub basis: Basis,
}

/// A ledger entry as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    pub seq: i64,
    pub id: Uuid,
    /// `deduction` or `reversal`.
    pub kind: String,
    pub zone_id: Uuid,
    pub period_id: Uuid,
    pub rulebook_version: i64,
    pub rule_code: String,
    pub source: String,
    pub category_code: Option<String>,
    pub work_category: Option<String>,
    /// Points of the rule (negated for a reversal).
    pub raw_points: f64,
    /// The zone's difficulty coefficient used.
    pub coefficient: f64,
    /// `raw × coefficient`, rounded to thousandths half away from zero.
    pub weighted_points: f64,
    /// The accountable people of the zone at the time of the finding.
    #[schema(value_type = Vec<crate::model::RosterPerson>)]
    pub roster: serde_json::Value,
    pub approved_by: Uuid,
    /// Who proposed the deduction: with four eyes, never `approved_by`. Absent for a reversal
    /// and for entries posted before the proposer was recorded. Not part of the hashed text.
    pub proposed_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: time::OffsetDateTime,
    pub case_id: Option<Uuid>,
    pub case_version: Option<i64>,
    /// SHA-256 of every photo the approval was based on.
    pub evidence: Vec<String>,
    pub proposal_id: Option<Uuid>,
    pub reverses_id: Option<Uuid>,
    /// A reversal's cause and reason; for a deduction for lateness, the hashed document citing
    /// the deadline and who was told (decoded in `notified`).
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// A deduction for lateness only: every escalation notice of the case, whom it told and
    /// whether they read and acknowledged it, as the entry's hashed `reason` records them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<Vec<Notified>>,
}

/// One person told of a case's time limit, as a lateness entry cites them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notified {
    pub user_id: Uuid,
    /// Their role on the case's roster as it stood at the dispatch, which escalation tells
    /// (`section_chief`, `road_chief`, `zone_chief`); `null` if it names them in none.
    pub role: Option<String>,
    /// `case.due_soon` or `case.overdue`.
    pub kind: String,
    /// The mark of the time limit the notice told of, in percent.
    pub mark_pct: i64,
    pub notice_id: Uuid,
    /// When the notice was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: time::OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub read_at: Option<time::OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub reason: String,
}

/// Why an entry is reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReversalCause {
    /// The entry was a mistake.
    Correction,
    /// The zone appealed and the appeal was upheld.
    AppealUpheld,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalInput {
    pub cause: ReversalCause,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    /// Entries checked before the first break (all of them when `ok`).
    pub checked: i64,
    pub ok: bool,
    pub first_bad: Option<ChainBreak>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClosedPeriod {
    pub period: Period,
    pub formula_version: String,
    /// SHA-256 of the ranking's JSON as stored at closing.
    pub ranking_sha256: String,
    /// The entries the close approved (`decisions`), in the order asked.
    pub approved: Vec<LedgerEntry>,
    /// The proposals the close rejected (`decisions`), in the order asked.
    pub rejected: Vec<Proposal>,
    /// The period opened by the close (`next`), with the closed period's coefficients.
    pub next: Option<Period>,
}

/// How to close a period. Every part is optional: `{}` closes a period that has ended and
/// has no pending proposals.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseInput {
    /// Close before the period's end (admins only). The period then ends now, so that the
    /// next one can start at once and no finding of the rest of it is left without a period.
    #[serde(default)]
    pub early: bool,
    /// A decision on each proposal of the period still pending, taken in the same step as the
    /// close: all of them succeed with the close, or nothing is done.
    #[serde(default)]
    pub decisions: Vec<PendingDecision>,
    /// The next period to open where this one ends, starting with this one's coefficients.
    #[serde(default)]
    pub next: Option<NextPeriod>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingDecision {
    pub proposal_id: Uuid,
    pub decision: Decision,
    /// Required for a rejection.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NextPeriod {
    pub code: String,
    /// `YYYY-MM`: the next period ends where that month ends in the site's time zone. Give
    /// either `month` or `ends_at`.
    #[serde(default)]
    pub month: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ends_at: Option<time::OffsetDateTime>,
}
