//! Conflict rules for stale edits.
//!
//! Evidence (photos, location, capture time) is append-only: `case.edit@1` cannot touch it, so it
//! never conflicts. Only the mutable fields ([`CaseField`]) can, when the phone's `base_version`
//! is older than the server's and someone changed the field in between.
//!
//! # The edit table
//!
//! For each field an edit touches, the first matching row decides. "Open" states are `reported`,
//! `filed`, `dispatched`, `in_progress` and `pending_verification`; "final" states are
//! `not_filed`, `duplicate`, `closed` and `withdrawn`. "Ledger" fields feed deductions:
//! `category_code`, `severity`, `asset_code`. "Changed by" is who last changed the field after
//! the phone's base version. The editor is the person whose operation is being applied
//! (inspector-level = every role but supervisor and admin).
//!
//! | # | rule_id | incoming = server | locked | state | field | editor | changed by | outcome |
//! |---|---|---|---|---|---|---|---|---|
//! | 1 | `unchanged` | yes | any | any | any | any | any | no-op |
//! | 2 | `deduction_locks_case` | no | yes | any | any | any | any | reject `evidence_locked` |
//! | 3 | `case_final` | no | no | final | any | any | any | reject `case_closed` |
//! | 4 | `supervisor_beats_inspector` | no | no | open | any | inspector | supervisor | keep server + record |
//! | 5 | `classification_frozen` | no | no | open, not reported | ledger | inspector | any | keep server + record |
//! | 6 | `no_concurrent_change` | no | no | open | any | any | nobody, same user | apply |
//! | 7 | `supervisor_overrides_inspector` | no | no | open | any | supervisor | other inspector | apply + record |
//! | 8 | `ledger_first_writer_wins` | no | no | open | ledger | any | other inspector, supervisor | keep server + record |
//! | 9 | `description_incoming_wins` | no | no | open | description | any | other inspector, supervisor | apply + record |
//!
//! Consequences: a supervisor's decision beats an offline inspector edit (4, 7); an approved
//! deduction locks the case (2); nothing that feeds the ledger is last-writer-wins against another
//! person's change (4, 5, 8: only rule 7, a supervisor over an inspector, overwrites, and it
//! records what it overwrote); every outcome other than apply and no-op carries a
//! [`ConflictRecord`] that both sides see. [`EDIT_RULES`] is this table as data; a test checks
//! [`decide`] against it for every combination of inputs.
//!
//! An edit is resolved field by field ([`resolve_edit`]). If any field is rejected the whole
//! operation is rejected (nothing written, records kept); otherwise the `apply` fields are
//! written and the operation's status is `conflict` if any record was made, else `applied`.
//!

use serde::{Deserialize, Serialize};

use crate::case::{CaseField, CaseState, ConflictRecord, Resolution, FINAL_STATES};
use crate::error::ErrorCode;
use crate::ops::{CaseChanges, Severity};
use crate::wire::OpStatus;

/// Who last changed a field after the phone's base version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangedBy {
    /// Nobody: the server value is the base value.
    Nobody,
    /// The same user as the editor (e.g. an earlier operation of theirs).
    SameUser,
    /// Another user with an inspector-level role.
    OtherInspector,
    /// A supervisor or an admin.
    Supervisor,
}

impl ChangedBy {
    pub const ALL: &'static [ChangedBy] = &[
        ChangedBy::Nobody,
        ChangedBy::SameUser,
        ChangedBy::OtherInspector,
        ChangedBy::Supervisor,
    ];

    /// Someone other than the editor changed the field since the base version.
    pub fn is_someone_else(self) -> bool {
        matches!(self, ChangedBy::OtherInspector | ChangedBy::Supervisor)
    }
}

/// The role level of the person whose edit is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Editor {
    /// Every role but supervisor and admin.
    Inspector,
    /// Supervisor or admin.
    Supervisor,
}

impl Editor {
    pub const ALL: &'static [Editor] = &[Editor::Inspector, Editor::Supervisor];
}

/// What happens to one field of an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The incoming value equals the current one: nothing to write, nothing to record.
    NoOp,
    /// No conflict: write the incoming value.
    Apply,
    /// Write the incoming value; the overwritten server value is kept in a conflict record.
    ApplyRecordConflict,
    /// Keep the server value; the incoming value is kept in a conflict record.
    KeepServerRecordConflict,
    /// Refuse the whole operation with this code; the incoming value is kept in a record.
    Reject(ErrorCode),
}

/// Everything the edit table looks at for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSituation {
    pub field: CaseField,
    pub editor: Editor,
    pub changed_by: ChangedBy,
    pub state: CaseState,
    /// An approved deduction locks the case.
    pub locked: bool,
    /// The incoming value equals the current server value.
    pub same_value: bool,
}

/// An outcome and the rule that chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    pub outcome: Outcome,
    pub rule_id: &'static str,
}

const OPEN_STATES: &[CaseState] = &[
    CaseState::Reported,
    CaseState::Filed,
    CaseState::Dispatched,
    CaseState::InProgress,
    CaseState::PendingVerification,
];
const OPEN_AFTER_REPORT: &[CaseState] = &[
    CaseState::Filed,
    CaseState::Dispatched,
    CaseState::InProgress,
    CaseState::PendingVerification,
];
const LEDGER_FIELDS: &[CaseField] = &[
    CaseField::CategoryCode,
    CaseField::Severity,
    CaseField::AssetCode,
];
const ANY_FIELD: &[CaseField] = CaseField::ALL;
const ANY_EDITOR: &[Editor] = Editor::ALL;
const ANY_CHANGE: &[ChangedBy] = ChangedBy::ALL;
const ANY_STATE: &[CaseState] = CaseState::ALL;
const SOMEONE_ELSE: &[ChangedBy] = &[ChangedBy::OtherInspector, ChangedBy::Supervisor];

/// One row of the edit table: the row matches when every column contains the situation's value
/// (`None` for the booleans means "any").
#[derive(Debug, Clone, Copy)]
pub struct EditRule {
    pub rule_id: &'static str,
    pub same_value: Option<bool>,
    pub locked: Option<bool>,
    pub states: &'static [CaseState],
    pub fields: &'static [CaseField],
    pub editors: &'static [Editor],
    pub changed_by: &'static [ChangedBy],
    pub outcome: Outcome,
}

impl EditRule {
    pub fn matches(&self, s: &FieldSituation) -> bool {
        self.same_value.is_none_or(|v| v == s.same_value)
            && self.locked.is_none_or(|v| v == s.locked)
            && self.states.contains(&s.state)
            && self.fields.contains(&s.field)
            && self.editors.contains(&s.editor)
            && self.changed_by.contains(&s.changed_by)
    }
}

/// The edit table of the module documentation, as data. First match wins.
pub const EDIT_RULES: &[EditRule] = &[
    EditRule {
        rule_id: "unchanged",
        same_value: Some(true),
        locked: None,
        states: ANY_STATE,
        fields: ANY_FIELD,
        editors: ANY_EDITOR,
        changed_by: ANY_CHANGE,
        outcome: Outcome::NoOp,
    },
    EditRule {
        rule_id: "deduction_locks_case",
        same_value: Some(false),
        locked: Some(true),
        states: ANY_STATE,
        fields: ANY_FIELD,
        editors: ANY_EDITOR,
        changed_by: ANY_CHANGE,
        outcome: Outcome::Reject(ErrorCode::EvidenceLocked),
    },
    EditRule {
        rule_id: "case_final",
        same_value: Some(false),
        locked: Some(false),
        states: FINAL_STATES,
        fields: ANY_FIELD,
        editors: ANY_EDITOR,
        changed_by: ANY_CHANGE,
        outcome: Outcome::Reject(ErrorCode::CaseClosed),
    },
    EditRule {
        rule_id: "supervisor_beats_inspector",
        same_value: Some(false),
        locked: Some(false),
        states: OPEN_STATES,
        fields: ANY_FIELD,
        editors: &[Editor::Inspector],
        changed_by: &[ChangedBy::Supervisor],
        outcome: Outcome::KeepServerRecordConflict,
    },
    EditRule {
        rule_id: "classification_frozen",
        same_value: Some(false),
        locked: Some(false),
        states: OPEN_AFTER_REPORT,
        fields: LEDGER_FIELDS,
        editors: &[Editor::Inspector],
        changed_by: ANY_CHANGE,
        outcome: Outcome::KeepServerRecordConflict,
    },
    EditRule {
        rule_id: "no_concurrent_change",
        same_value: Some(false),
        locked: Some(false),
        states: OPEN_STATES,
        fields: ANY_FIELD,
        editors: ANY_EDITOR,
        changed_by: &[ChangedBy::Nobody, ChangedBy::SameUser],
        outcome: Outcome::Apply,
    },
    EditRule {
        rule_id: "supervisor_overrides_inspector",
        same_value: Some(false),
        locked: Some(false),
        states: OPEN_STATES,
        fields: ANY_FIELD,
        editors: &[Editor::Supervisor],
        changed_by: &[ChangedBy::OtherInspector],
        outcome: Outcome::ApplyRecordConflict,
    },
    EditRule {
        rule_id: "ledger_first_writer_wins",
        same_value: Some(false),
        locked: Some(false),
        states: OPEN_STATES,
        fields: LEDGER_FIELDS,
        editors: ANY_EDITOR,
        changed_by: SOMEONE_ELSE,
        outcome: Outcome::KeepServerRecordConflict,
    },
    EditRule {
        rule_id: "description_incoming_wins",
        same_value: Some(false),
        locked: Some(false),
        states: OPEN_STATES,
        fields: &[CaseField::Description],
        editors: ANY_EDITOR,
        changed_by: SOMEONE_ELSE,
        outcome: Outcome::ApplyRecordConflict,
    },
];

/// Decides one field of an edit. See the table in the module documentation.
pub fn decide(s: &FieldSituation) -> Decision {
    let d = |outcome, rule_id| Decision { outcome, rule_id };
    if s.same_value {
        return d(Outcome::NoOp, "unchanged");
    }
    if s.locked {
        return d(
            Outcome::Reject(ErrorCode::EvidenceLocked),
            "deduction_locks_case",
        );
    }
    if s.state.is_final() {
        return d(Outcome::Reject(ErrorCode::CaseClosed), "case_final");
    }
    if s.editor == Editor::Inspector && s.changed_by == ChangedBy::Supervisor {
        return d(
            Outcome::KeepServerRecordConflict,
            "supervisor_beats_inspector",
        );
    }
    if s.editor == Editor::Inspector && s.field.feeds_ledger() && s.state != CaseState::Reported {
        return d(Outcome::KeepServerRecordConflict, "classification_frozen");
    }
    if !s.changed_by.is_someone_else() {
        return d(Outcome::Apply, "no_concurrent_change");
    }
    if s.editor == Editor::Supervisor && s.changed_by == ChangedBy::OtherInspector {
        return d(
            Outcome::ApplyRecordConflict,
            "supervisor_overrides_inspector",
        );
    }
    if s.field.feeds_ledger() {
        d(
            Outcome::KeepServerRecordConflict,
            "ledger_first_writer_wins",
        )
    } else {
        d(Outcome::ApplyRecordConflict, "description_incoming_wins")
    }
}

/// The edit's context that is the same for every field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditContext {
    pub editor: Editor,
    pub state: CaseState,
    /// An approved deduction locks the case.
    pub locked: bool,
}

/// The outcome for one field, with its record when the outcome is not apply or no-op.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldResolution {
    pub field: CaseField,
    pub outcome: Outcome,
    pub rule_id: &'static str,
    /// The value to write (the incoming one) when the outcome writes.
    pub incoming_value: serde_json::Value,
    pub record: Option<ConflictRecord>,
}

impl FieldResolution {
    /// Whether the incoming value is to be written.
    pub fn writes(&self) -> bool {
        matches!(self.outcome, Outcome::Apply | Outcome::ApplyRecordConflict)
    }
}

/// Resolves one field given its three values.
pub fn resolve_field(
    ctx: EditContext,
    field: CaseField,
    base_value: serde_json::Value,
    server_value: serde_json::Value,
    incoming_value: serde_json::Value,
    changed_by: ChangedBy,
) -> FieldResolution {
    let decision = decide(&FieldSituation {
        field,
        editor: ctx.editor,
        changed_by,
        state: ctx.state,
        locked: ctx.locked,
        same_value: incoming_value == server_value,
    });
    let resolution = match decision.outcome {
        Outcome::NoOp | Outcome::Apply => None,
        Outcome::ApplyRecordConflict => Some(Resolution::IncomingApplied),
        Outcome::KeepServerRecordConflict => Some(Resolution::ServerKept),
        Outcome::Reject(_) => Some(Resolution::Rejected),
    };
    let record = resolution.map(|resolution| ConflictRecord {
        field,
        base_value,
        server_value,
        incoming_value: incoming_value.clone(),
        resolution,
        rule_id: decision.rule_id.to_owned(),
    });
    FieldResolution {
        field,
        outcome: decision.outcome,
        rule_id: decision.rule_id,
        incoming_value,
        record,
    }
}

/// The mutable fields of a case at one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFields {
    pub category_code: String,
    pub description: String,
    pub severity: Severity,
    pub asset_code: Option<String>,
}

impl CaseFields {
    pub fn value(&self, field: CaseField) -> serde_json::Value {
        match field {
            CaseField::CategoryCode => self.category_code.clone().into(),
            CaseField::Description => self.description.clone().into(),
            CaseField::Severity => self.severity.as_str().into(),
            CaseField::AssetCode => self.asset_code.clone().into(),
        }
    }
}

/// The incoming value of every field `changes` touches, in [`CaseField::ALL`] order.
pub fn changed_fields(changes: &CaseChanges) -> Vec<(CaseField, serde_json::Value)> {
    let mut out = Vec::new();
    if let Some(v) = &changes.category_code {
        out.push((CaseField::CategoryCode, v.clone().into()));
    }
    if let Some(v) = &changes.description {
        out.push((CaseField::Description, v.clone().into()));
    }
    if let Some(v) = changes.severity {
        out.push((CaseField::Severity, v.as_str().into()));
    }
    if let Some(v) = &changes.asset_code {
        out.push((CaseField::AssetCode, v.clone().into()));
    }
    out
}

/// A whole edit, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EditResolution {
    pub fields: Vec<FieldResolution>,
    /// `rejected` if any field was rejected, else `conflict` if any record was made, else
    /// `applied`.
    pub status: OpStatus,
    /// The first rejecting field's code.
    pub code: Option<ErrorCode>,
}

impl EditResolution {
    /// Every conflict record, for the operation result and for supervisors.
    pub fn records(&self) -> Vec<ConflictRecord> {
        self.fields
            .iter()
            .filter_map(|f| f.record.clone())
            .collect()
    }

    /// What to write: the changes whose outcome writes, or nothing when the edit is rejected.
    pub fn to_write(&self, changes: &CaseChanges) -> CaseChanges {
        if self.status == OpStatus::Rejected {
            return CaseChanges::default();
        }
        let writes = |field| self.fields.iter().any(|f| f.field == field && f.writes());
        CaseChanges {
            category_code: changes
                .category_code
                .clone()
                .filter(|_| writes(CaseField::CategoryCode)),
            description: changes
                .description
                .clone()
                .filter(|_| writes(CaseField::Description)),
            severity: changes.severity.filter(|_| writes(CaseField::Severity)),
            asset_code: changes
                .asset_code
                .clone()
                .filter(|_| writes(CaseField::AssetCode)),
        }
    }
}

/// Resolves every field of a `case.edit@1`.
///
/// `base` holds the values at the phone's `base_version`, `server` the current ones, and
/// `changed_by(field)` says who last changed `field` after `base_version`.
pub fn resolve_edit(
    ctx: EditContext,
    base: &CaseFields,
    server: &CaseFields,
    changed_by: impl Fn(CaseField) -> ChangedBy,
    changes: &CaseChanges,
) -> EditResolution {
    let fields: Vec<FieldResolution> = changed_fields(changes)
        .into_iter()
        .map(|(field, incoming)| {
            resolve_field(
                ctx,
                field,
                base.value(field),
                server.value(field),
                incoming,
                changed_by(field),
            )
        })
        .collect();
    let code = fields.iter().find_map(|f| match f.outcome {
        Outcome::Reject(code) => Some(code),
        _ => None,
    });
    let status = if code.is_some() {
        OpStatus::Rejected
    } else if fields.iter().any(|f| f.record.is_some()) {
        OpStatus::Conflict
    } else {
        OpStatus::Applied
    };
    EditResolution {
        fields,
        status,
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn every_situation() -> Vec<FieldSituation> {
        let mut all = Vec::new();
        for &field in CaseField::ALL {
            for &editor in Editor::ALL {
                for &changed_by in ChangedBy::ALL {
                    for &state in CaseState::ALL {
                        for locked in [false, true] {
                            for same_value in [false, true] {
                                all.push(FieldSituation {
                                    field,
                                    editor,
                                    changed_by,
                                    state,
                                    locked,
                                    same_value,
                                });
                            }
                        }
                    }
                }
            }
        }
        all
    }

    #[test]
    fn decide_agrees_with_the_table_for_every_input() {
        let all = every_situation();
        assert_eq!(all.len(), 4 * 2 * 4 * 9 * 2 * 2);
        for s in all {
            let row = EDIT_RULES
                .iter()
                .find(|r| r.matches(&s))
                .unwrap_or_else(|| panic!("no table row matches {s:?}"));
            let d = decide(&s);
            assert_eq!((d.outcome, d.rule_id), (row.outcome, row.rule_id), "{s:?}");
        }
    }

    #[test]
    fn every_table_row_is_reachable() {
        let all = every_situation();
        for row in EDIT_RULES {
            assert!(
                all.iter().any(|s| decide(s).rule_id == row.rule_id),
                "{} is shadowed",
                row.rule_id
            );
        }
    }

    #[test]
    fn rule_ids_are_unique_and_documented() {
        let doc = include_str!("conflict.rs");
        for (i, row) in EDIT_RULES.iter().enumerate() {
            assert!(
                EDIT_RULES[..i].iter().all(|r| r.rule_id != row.rule_id),
                "{}",
                row.rule_id
            );
            let line = format!("//! | {} | `{}` |", i + 1, row.rule_id);
            assert!(doc.contains(&line), "doc table lacks {line}");
            let md = format!("| {} | `{}` |", i + 1, row.rule_id);
            assert!(
                include_str!("../PROTOCOL.md").contains(&md),
                "PROTOCOL.md lacks {md}"
            );
        }
    }

    #[test]
    fn ledger_fields_are_never_last_writer_wins_against_another_person() {
        for s in every_situation() {
            if s.field.feeds_ledger() && s.changed_by.is_someone_else() && !s.same_value {
                let d = decide(&s);
                let overwrites = matches!(d.outcome, Outcome::Apply | Outcome::ApplyRecordConflict);
                // The only overwrite allowed: a supervisor's decision over an inspector's change,
                // and it is recorded.
                if overwrites {
                    assert_eq!(d.outcome, Outcome::ApplyRecordConflict, "{s:?}");
                    assert_eq!(
                        (s.editor, s.changed_by),
                        (Editor::Supervisor, ChangedBy::OtherInspector),
                        "{s:?}"
                    );
                }
            }
        }
    }

    fn fields() -> CaseFields {
        CaseFields {
            category_code: "event:0102".into(),
            description: "bin".into(),
            severity: Severity::Medium,
            asset_code: None,
        }
    }

    #[test]
    fn supervisor_reclassification_beats_offline_inspector_edit() {
        let base = fields();
        let server = CaseFields {
            category_code: "event:0501".into(),
            ..fields()
        };
        let changes = CaseChanges {
            category_code: Some("event:0103".into()),
            description: Some("bin overflowing onto the road".into()),
            ..Default::default()
        };
        let who = |f| match f {
            CaseField::CategoryCode => ChangedBy::Supervisor,
            _ => ChangedBy::Nobody,
        };
        let ctx = EditContext {
            editor: Editor::Inspector,
            state: CaseState::Reported,
            locked: false,
        };
        let r = resolve_edit(ctx, &base, &server, who, &changes);
        assert_eq!(r.status, OpStatus::Conflict);
        assert_eq!(r.code, None);
        let records = r.records();
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0],
            ConflictRecord {
                field: CaseField::CategoryCode,
                base_value: json!("event:0102"),
                server_value: json!("event:0501"),
                incoming_value: json!("event:0103"),
                resolution: Resolution::ServerKept,
                rule_id: "supervisor_beats_inspector".into(),
            }
        );
        let write = r.to_write(&changes);
        assert_eq!(write.category_code, None);
        assert_eq!(
            write.description.as_deref(),
            Some("bin overflowing onto the road")
        );
    }

    #[test]
    fn approved_deduction_rejects_the_whole_edit() {
        let changes = CaseChanges {
            severity: Some(Severity::High),
            description: Some("more detail".into()),
            ..Default::default()
        };
        let ctx = EditContext {
            editor: Editor::Supervisor,
            state: CaseState::Dispatched,
            locked: true,
        };
        let r = resolve_edit(ctx, &fields(), &fields(), |_| ChangedBy::Nobody, &changes);
        assert_eq!(r.status, OpStatus::Rejected);
        assert_eq!(r.code, Some(ErrorCode::EvidenceLocked));
        assert_eq!(r.records().len(), 2);
        assert!(r.to_write(&changes).is_empty());
    }

    #[test]
    fn inspector_cannot_reclassify_after_filing_but_can_describe() {
        let changes = CaseChanges {
            severity: Some(Severity::High),
            description: Some("more detail".into()),
            ..Default::default()
        };
        let ctx = EditContext {
            editor: Editor::Inspector,
            state: CaseState::Filed,
            locked: false,
        };
        let r = resolve_edit(ctx, &fields(), &fields(), |_| ChangedBy::Nobody, &changes);
        assert_eq!(r.status, OpStatus::Conflict);
        let write = r.to_write(&changes);
        assert_eq!(write.severity, None);
        assert_eq!(write.description.as_deref(), Some("more detail"));
        assert_eq!(r.records()[0].rule_id, "classification_frozen");
    }

    #[test]
    fn asset_code_can_be_cleared_and_same_value_is_a_no_op() {
        let server = CaseFields {
            asset_code: Some("3201020101000123".into()),
            ..fields()
        };
        let ctx = EditContext {
            editor: Editor::Inspector,
            state: CaseState::Reported,
            locked: false,
        };
        let clear = CaseChanges {
            asset_code: Some(None),
            ..Default::default()
        };
        let r = resolve_edit(ctx, &server, &server, |_| ChangedBy::Nobody, &clear);
        assert_eq!(r.status, OpStatus::Applied);
        assert_eq!(r.to_write(&clear).asset_code, Some(None));

        let same = CaseChanges {
            severity: Some(Severity::Medium),
            ..Default::default()
        };
        let r = resolve_edit(ctx, &fields(), &fields(), |_| ChangedBy::Supervisor, &same);
        assert_eq!(r.status, OpStatus::Applied);
        assert_eq!(r.fields[0].outcome, Outcome::NoOp);
    }

    fn any_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(json!(null)),
            Just(json!("event:0102")),
            Just(json!("event:0501")),
            Just(json!("low")),
            Just(json!("high")),
            "[a-c]{0,3}".prop_map(serde_json::Value::from),
        ]
    }

    proptest! {
        #[test]
        fn resolve_field_properties(
            field in prop::sample::select(CaseField::ALL),
            editor in prop::sample::select(Editor::ALL),
            changed_by in prop::sample::select(ChangedBy::ALL),
            state in prop::sample::select(CaseState::ALL),
            locked in any::<bool>(),
            base in any_value(),
            server in any_value(),
            incoming in any_value(),
        ) {
            let ctx = EditContext { editor, state, locked };
            let r = resolve_field(
                ctx, field, base.clone(), server.clone(), incoming.clone(), changed_by,
            );
            if changed_by.is_someone_else() {
                prop_assert_ne!(r.outcome, Outcome::Apply);
            }
            match r.outcome {
                Outcome::NoOp => {
                    prop_assert_eq!(&incoming, &server);
                    prop_assert!(r.record.is_none());
                }
                Outcome::Apply => prop_assert!(r.record.is_none()),
                _ => {
                    let rec = r.record.expect("non-apply outcomes carry a record");
                    prop_assert_eq!(rec.field, field);
                    prop_assert_eq!(rec.base_value, base);
                    prop_assert_eq!(rec.server_value, server);
                    prop_assert_eq!(rec.incoming_value, incoming);
                    prop_assert_eq!(rec.rule_id, r.rule_id);
                }
            }
            if locked && r.outcome != Outcome::NoOp {
                prop_assert_eq!(r.outcome, Outcome::Reject(ErrorCode::EvidenceLocked));
            }
        }
    }
}
