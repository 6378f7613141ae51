//! The case vocabulary every part of the protocol shares: the states of a case's lifecycle, the
//! fields an edit may change, and the record kept when an edit meets another person's change.
//!
//! Which action moves a case between states is the workflow's table (`workflow.rs`); which edit
//! wins is the edit table (`conflict.rs`). This module imports nothing else of the crate, so
//! every other module can use it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The lifecycle of a case. States are decided by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    Reported,
    Filed,
    NotFiled,
    Duplicate,
    Dispatched,
    InProgress,
    PendingVerification,
    Closed,
    Withdrawn,
}

impl CaseState {
    pub const ALL: &'static [CaseState] = &[
        CaseState::Reported,
        CaseState::Filed,
        CaseState::NotFiled,
        CaseState::Duplicate,
        CaseState::Dispatched,
        CaseState::InProgress,
        CaseState::PendingVerification,
        CaseState::Closed,
        CaseState::Withdrawn,
    ];

    /// States from which no edit is accepted.
    pub fn is_final(self) -> bool {
        FINAL_STATES.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Reported => "reported",
            CaseState::Filed => "filed",
            CaseState::NotFiled => "not_filed",
            CaseState::Duplicate => "duplicate",
            CaseState::Dispatched => "dispatched",
            CaseState::InProgress => "in_progress",
            CaseState::PendingVerification => "pending_verification",
            CaseState::Closed => "closed",
            CaseState::Withdrawn => "withdrawn",
        }
    }
}

/// Where a case came from: an inspector's patrol, or one of the channels outside it that the
/// office takes in (a hotline call, a public report, a transfer from another department, the
/// press, a leader's written instruction). Every source runs the same workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseSource {
    /// Captured by an inspector's phone.
    Inspection,
    /// A call to the complaint hotline (12345, 12319, the zone's own number).
    Hotline,
    /// A report filed by the public through an app or portal (Open311).
    PublicReport,
    /// Passed on by another department (e.g. from 110).
    DepartmentTransfer,
    /// Exposed by the press.
    Media,
    /// A leader's written instruction.
    LeaderInstruction,
}

impl CaseSource {
    pub const ALL: &'static [CaseSource] = &[
        CaseSource::Inspection,
        CaseSource::Hotline,
        CaseSource::PublicReport,
        CaseSource::DepartmentTransfer,
        CaseSource::Media,
        CaseSource::LeaderInstruction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseSource::Inspection => "inspection",
            CaseSource::Hotline => "hotline",
            CaseSource::PublicReport => "public_report",
            CaseSource::DepartmentTransfer => "department_transfer",
            CaseSource::Media => "media",
            CaseSource::LeaderInstruction => "leader_instruction",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// A report from the public (a call, an app, another department's transfer) is checked on
    /// site by an inspector, with a photo, before it can cost a zone points (核实). The press
    /// and a leader's instruction carry their own document as evidence.
    pub fn needs_site_verification(self) -> bool {
        matches!(
            self,
            CaseSource::Hotline | CaseSource::PublicReport | CaseSource::DepartmentTransfer
        )
    }
}

/// The mutable case fields `case.edit@1` may change.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseField {
    CategoryCode,
    Description,
    Severity,
    AssetCode,
}

impl CaseField {
    pub const ALL: &'static [CaseField] = &[
        CaseField::CategoryCode,
        CaseField::Description,
        CaseField::Severity,
        CaseField::AssetCode,
    ];

    /// Fields that feed deductions in the ledger.
    pub fn feeds_ledger(self) -> bool {
        !matches!(self, CaseField::Description)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CaseField::CategoryCode => "category_code",
            CaseField::Description => "description",
            CaseField::Severity => "severity",
            CaseField::AssetCode => "asset_code",
        }
    }
}

/// How a recorded conflict was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The incoming value was written; `server_value` is what it replaced.
    IncomingApplied,
    /// The server value stayed; `incoming_value` is what the phone asked for.
    ServerKept,
    /// The operation was rejected; nothing was written.
    Rejected,
}

/// A conflict, recorded and shown to both the phone's user and supervisors. Nothing is
/// silently dropped: the losing value is always here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConflictRecord {
    pub field: CaseField,
    /// The value at the phone's base version.
    pub base_value: serde_json::Value,
    /// The server's value when the edit arrived.
    pub server_value: serde_json::Value,
    /// The value the phone asked for.
    pub incoming_value: serde_json::Value,
    pub resolution: Resolution,
    /// The rule that decided (the edit table of the protocol, `conflict::EDIT_RULES`).
    pub rule_id: String,
}

/// States from which no edit is accepted.
pub const FINAL_STATES: &[CaseState] = &[
    CaseState::NotFiled,
    CaseState::Duplicate,
    CaseState::Closed,
    CaseState::Withdrawn,
];
