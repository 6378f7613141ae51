//! The case workflow: which action moves a case from which state to which, and who may ask.
//!
//! ```text
//! reported ──file──▶ filed ──dispatch──▶ dispatched ──start──▶ in_progress
//!    │ └─reject─▶ not_filed                 │                      │
//!    ├─mark_duplicate─▶ duplicate           └──report_rectified────┴─▶ pending_verification
//!    └─withdraw─▶ withdrawn                                              │        │
//!            filed ◀──reopen── closed ◀──────────────close───────────────┘        │
//!                               in_progress ◀──return (rework, counted)───────────┘
//! ```
//!
//! Pure rules, no I/O: the server calls [`apply`] inside the transaction that writes the event,
//! and phones may call it to grey out buttons. States are decided by the server; a phone only
//! asks (`case.transition@1`, checked by [`check_transition`] against the same table).
//!
//! # Transitions a phone may request
//!
//! | action | allowed from | by | to |
//! |---|---|---|---|
//! | `withdraw` | `reported` | the case's reporter | `withdrawn` |
//! | `report_rectified` | `dispatched`, `in_progress` | an assignee of the case | `pending_verification` |
//!
//! The wrong person gets `forbidden`; the wrong state gets `invalid_transition`. Transitions are
//! guarded by state, not by `base_version`: a stale base is fine if the state still allows it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::case::CaseState;
use crate::error::ErrorCode;
use crate::ops::TransitionAction;

/// Every action of the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowAction {
    /// Supervisor accepts a report: `reported → filed`.
    File,
    /// Supervisor refuses a report (comment required): `reported → not_filed`.
    Reject,
    /// Supervisor marks a report as a duplicate of another case: `reported → duplicate`.
    MarkDuplicate,
    /// The reporter takes back a report: `reported → withdrawn`.
    Withdraw,
    /// Supervisor sends a filed case to the accountable people or the squad, with a deadline.
    Dispatch,
    /// An assignee starts work: `dispatched → in_progress`.
    Start,
    /// An assignee reports the problem fixed, with an `after` photo.
    ReportRectified,
    /// Supervisor verifies the rectification: `pending_verification → closed`.
    Close,
    /// Supervisor sends the rectification back (comment required; counted as rework).
    Return,
    /// Supervisor reopens a closed case (comment required): `closed → filed`.
    Reopen,
}

impl WorkflowAction {
    pub const ALL: &'static [WorkflowAction] = &[
        WorkflowAction::File,
        WorkflowAction::Reject,
        WorkflowAction::MarkDuplicate,
        WorkflowAction::Withdraw,
        WorkflowAction::Dispatch,
        WorkflowAction::Start,
        WorkflowAction::ReportRectified,
        WorkflowAction::Close,
        WorkflowAction::Return,
        WorkflowAction::Reopen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowAction::File => "file",
            WorkflowAction::Reject => "reject",
            WorkflowAction::MarkDuplicate => "mark_duplicate",
            WorkflowAction::Withdraw => "withdraw",
            WorkflowAction::Dispatch => "dispatch",
            WorkflowAction::Start => "start",
            WorkflowAction::ReportRectified => "report_rectified",
            WorkflowAction::Close => "close",
            WorkflowAction::Return => "return",
            WorkflowAction::Reopen => "reopen",
        }
    }

    /// The states the action applies to, and the state it leads to.
    pub fn edge(self) -> (&'static [CaseState], CaseState) {
        use CaseState::*;
        match self {
            WorkflowAction::File => (&[Reported], Filed),
            WorkflowAction::Reject => (&[Reported], NotFiled),
            WorkflowAction::MarkDuplicate => (&[Reported], Duplicate),
            WorkflowAction::Withdraw => (&[Reported], Withdrawn),
            WorkflowAction::Dispatch => (&[Filed], Dispatched),
            WorkflowAction::Start => (&[Dispatched], InProgress),
            WorkflowAction::ReportRectified => (&[Dispatched, InProgress], PendingVerification),
            WorkflowAction::Close => (&[PendingVerification], Closed),
            WorkflowAction::Return => (&[PendingVerification], InProgress),
            WorkflowAction::Reopen => (&[Closed], Filed),
        }
    }

    /// Who may ask for the action.
    pub fn allowed(self, actor: WorkflowActor) -> bool {
        match self {
            WorkflowAction::Withdraw => actor.is_reporter,
            WorkflowAction::Start | WorkflowAction::ReportRectified => {
                actor.is_assignee || actor.is_supervisor
            }
            _ => actor.is_supervisor,
        }
    }

    /// Refusals, returns and reopenings must say why.
    pub fn needs_comment(self) -> bool {
        matches!(
            self,
            WorkflowAction::Reject | WorkflowAction::Return | WorkflowAction::Reopen
        )
    }
}

/// Who asks, relative to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkflowActor {
    /// Supervisor or admin.
    pub is_supervisor: bool,
    /// The user who reported the case.
    pub is_reporter: bool,
    /// The user the case is dispatched to now.
    pub is_assignee: bool,
}

/// What else the request brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkflowInput {
    pub has_comment: bool,
    /// At least one `after` photo is declared with the request.
    pub has_after_photo: bool,
    /// `mark_duplicate` names the original case.
    pub has_original: bool,
}

/// An allowed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: CaseState,
    pub to: CaseState,
    /// A rectification sent back: the case's rework count goes up by one.
    pub rework: bool,
}

/// Why a transition is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    /// The request field at fault, if any (`comment`, `photos`, `duplicate_of`).
    pub field: Option<&'static str>,
    pub message: String,
}

/// Checks `action` from `state`; the order of checks is: role, state, then required inputs.
pub fn apply(
    action: WorkflowAction,
    state: CaseState,
    actor: WorkflowActor,
    input: WorkflowInput,
) -> Result<Transition, Refusal> {
    if !action.allowed(actor) {
        return Err(Refusal {
            code: ErrorCode::Forbidden,
            field: None,
            message: format!("you may not {} this case", action.as_str()),
        });
    }
    let (from, to) = action.edge();
    if !from.contains(&state) {
        return Err(Refusal {
            code: ErrorCode::InvalidTransition,
            field: None,
            message: format!("{} is not allowed from {}", action.as_str(), state.as_str()),
        });
    }
    let missing = |field: &'static str, what: &str| Refusal {
        code: ErrorCode::InvalidRequest,
        field: Some(field),
        message: format!("{} needs {what}", action.as_str()),
    };
    if action.needs_comment() && !input.has_comment {
        return Err(missing("comment", "a comment saying why"));
    }
    if action == WorkflowAction::ReportRectified && !input.has_after_photo {
        return Err(missing("photos", "an `after` photo"));
    }
    if action == WorkflowAction::MarkDuplicate && !input.has_original {
        return Err(missing("duplicate_of", "the original case"));
    }
    Ok(Transition {
        from: state,
        to,
        rework: action == WorkflowAction::Return,
    })
}

/// Who asks for a transition by operation, relative to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionActor {
    /// The user who reported the case.
    pub is_reporter: bool,
    /// The user is assigned to the case for rectification (an accountable person or squad).
    pub is_assignee: bool,
}

impl From<TransitionAction> for WorkflowAction {
    fn from(action: TransitionAction) -> Self {
        match action {
            TransitionAction::Withdraw => WorkflowAction::Withdraw,
            TransitionAction::ReportRectified => WorkflowAction::ReportRectified,
        }
    }
}

/// Checks a transition a phone requested (`case.transition@1`) against the one table; returns
/// the new state. Operations act as the phone's user, never as a supervisor: supervisors decide
/// through the API. `has_after_photo`: the operation declares an `after` photo.
pub fn check_transition(
    action: TransitionAction,
    state: CaseState,
    actor: TransitionActor,
    has_after_photo: bool,
) -> Result<CaseState, ErrorCode> {
    let actor = WorkflowActor {
        is_supervisor: false,
        is_reporter: actor.is_reporter,
        is_assignee: actor.is_assignee,
    };
    let input = WorkflowInput {
        has_comment: true,
        has_after_photo,
        has_original: false,
    };
    apply(action.into(), state, actor, input)
        .map(|t| t.to)
        .map_err(|refusal| refusal.code)
}

/// Overdue: dispatched with a deadline that has passed, and not yet rectified.
pub fn is_overdue(state: CaseState, deadline_ms: Option<i64>, now_ms: i64) -> bool {
    matches!(state, CaseState::Dispatched | CaseState::InProgress)
        && deadline_ms.is_some_and(|d| d < now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_transitions_follow_the_one_table() {
        let reporter = TransitionActor {
            is_reporter: true,
            is_assignee: false,
        };
        let assignee = TransitionActor {
            is_reporter: false,
            is_assignee: true,
        };
        use TransitionAction::*;
        assert_eq!(
            check_transition(Withdraw, CaseState::Reported, reporter, true),
            Ok(CaseState::Withdrawn)
        );
        assert_eq!(
            check_transition(Withdraw, CaseState::Filed, reporter, true),
            Err(ErrorCode::InvalidTransition)
        );
        assert_eq!(
            check_transition(Withdraw, CaseState::Reported, assignee, true),
            Err(ErrorCode::Forbidden)
        );
        assert_eq!(
            check_transition(ReportRectified, CaseState::Dispatched, assignee, false),
            Err(ErrorCode::InvalidRequest),
            "a rectification needs an after photo"
        );
        for &state in CaseState::ALL {
            let r = check_transition(ReportRectified, state, assignee, true);
            if matches!(state, CaseState::Dispatched | CaseState::InProgress) {
                assert_eq!(r, Ok(CaseState::PendingVerification));
            } else {
                assert_eq!(r, Err(ErrorCode::InvalidTransition), "{state:?}");
            }
            assert_eq!(
                check_transition(ReportRectified, state, reporter, true),
                Err(ErrorCode::Forbidden)
            );
        }
    }
    use proptest::prelude::*;
    use CaseState::*;

    const SUPERVISOR: WorkflowActor = WorkflowActor {
        is_supervisor: true,
        is_reporter: false,
        is_assignee: false,
    };
    const ASSIGNEE: WorkflowActor = WorkflowActor {
        is_supervisor: false,
        is_reporter: false,
        is_assignee: true,
    };
    const EVERYTHING: WorkflowInput = WorkflowInput {
        has_comment: true,
        has_after_photo: true,
        has_original: true,
    };

    fn go(action: WorkflowAction, state: CaseState, actor: WorkflowActor) -> CaseState {
        apply(action, state, actor, EVERYTHING).expect("allowed").to
    }

    #[test]
    fn the_full_loop_with_one_rework_and_a_reopen() {
        use WorkflowAction::*;
        let mut s = Reported;
        s = go(File, s, SUPERVISOR);
        s = go(Dispatch, s, SUPERVISOR);
        s = go(Start, s, ASSIGNEE);
        s = go(ReportRectified, s, ASSIGNEE);
        let back = apply(Return, s, SUPERVISOR, EVERYTHING).unwrap();
        assert!(back.rework);
        s = back.to;
        assert_eq!(s, InProgress);
        s = go(ReportRectified, s, ASSIGNEE);
        s = go(Close, s, SUPERVISOR);
        assert_eq!(s, Closed);
        assert_eq!(go(Reopen, s, SUPERVISOR), Filed);
    }

    #[test]
    fn comments_photos_and_originals_are_required_where_documented() {
        let none = WorkflowInput::default();
        let r = apply(WorkflowAction::Reject, Reported, SUPERVISOR, none).unwrap_err();
        assert_eq!(
            (r.code, r.field),
            (ErrorCode::InvalidRequest, Some("comment"))
        );
        let r = apply(
            WorkflowAction::Return,
            PendingVerification,
            SUPERVISOR,
            none,
        )
        .unwrap_err();
        assert_eq!(r.field, Some("comment"));
        let r = apply(WorkflowAction::Reopen, Closed, SUPERVISOR, none).unwrap_err();
        assert_eq!(r.field, Some("comment"));
        let r = apply(WorkflowAction::ReportRectified, Dispatched, ASSIGNEE, none).unwrap_err();
        assert_eq!(r.field, Some("photos"));
        let r = apply(WorkflowAction::MarkDuplicate, Reported, SUPERVISOR, none).unwrap_err();
        assert_eq!(r.field, Some("duplicate_of"));
        assert!(apply(WorkflowAction::File, Reported, SUPERVISOR, none).is_ok());
    }

    #[test]
    fn only_assignees_and_supervisors_rectify_and_only_supervisors_decide() {
        let inspector = WorkflowActor {
            is_reporter: true,
            ..WorkflowActor::default()
        };
        for &a in WorkflowAction::ALL {
            let r = apply(a, a.edge().0[0], inspector, EVERYTHING);
            assert_eq!(r.is_ok(), a == WorkflowAction::Withdraw, "{a:?}");
            let r = apply(a, a.edge().0[0], ASSIGNEE, EVERYTHING);
            assert_eq!(
                r.is_ok(),
                matches!(a, WorkflowAction::Start | WorkflowAction::ReportRectified),
                "{a:?}"
            );
        }
    }

    fn any_state() -> impl Strategy<Value = CaseState> {
        prop::sample::select(CaseState::ALL.to_vec())
    }
    fn any_action() -> impl Strategy<Value = WorkflowAction> {
        prop::sample::select(WorkflowAction::ALL.to_vec())
    }
    fn any_actor() -> impl Strategy<Value = WorkflowActor> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(s, r, a)| WorkflowActor {
            is_supervisor: s,
            is_reporter: r,
            is_assignee: a,
        })
    }

    proptest! {
        /// Whatever is asked, an accepted transition follows a documented edge, and a refusal
        /// leaves the case where it was (the caller keeps its state).
        #[test]
        fn accepted_transitions_follow_the_edges(
            state in any_state(), action in any_action(), actor in any_actor(),
            c in any::<bool>(), p in any::<bool>(), o in any::<bool>(),
        ) {
            let input = WorkflowInput { has_comment: c, has_after_photo: p, has_original: o };
            match apply(action, state, actor, input) {
                Ok(t) => {
                    let (from, to) = action.edge();
                    prop_assert!(from.contains(&state));
                    prop_assert_eq!(t.to, to);
                    prop_assert_eq!(t.from, state);
                    prop_assert!(action.allowed(actor));
                    prop_assert!(!action.needs_comment() || c);
                    prop_assert_eq!(t.rework, action == WorkflowAction::Return);
                }
                Err(r) => prop_assert!(matches!(
                    r.code,
                    ErrorCode::Forbidden | ErrorCode::InvalidTransition | ErrorCode::InvalidRequest
                )),
            }
        }

        /// Final states other than `closed` have no way out; `closed` only reopens.
        #[test]
        fn final_states_are_final(action in any_action()) {
            for s in [NotFiled, Duplicate, Withdrawn] {
                prop_assert!(apply(action, s, SUPERVISOR, EVERYTHING).is_err());
            }
            let from_closed = apply(action, Closed, SUPERVISOR, EVERYTHING);
            prop_assert_eq!(from_closed.is_ok(), action == WorkflowAction::Reopen);
        }

        /// Random walks by an all-powerful actor never reach a state without an edge into it.
        #[test]
        fn random_walks_stay_on_the_graph(actions in prop::collection::vec(any_action(), 0..40)) {
            let god = WorkflowActor { is_supervisor: true, is_reporter: true, is_assignee: true };
            let mut s = Reported;
            let mut reworks = 0;
            for a in actions {
                if let Ok(t) = apply(a, s, god, EVERYTHING) {
                    reworks += usize::from(t.rework);
                    s = t.to;
                }
                prop_assert!(s == Reported || WorkflowAction::ALL.iter().any(|a| a.edge().1 == s));
            }
            prop_assert!(reworks <= 40);
        }
    }

    #[test]
    fn overdue_is_derived_from_the_deadline() {
        assert!(is_overdue(Dispatched, Some(10), 11));
        assert!(is_overdue(InProgress, Some(10), 11));
        assert!(!is_overdue(Dispatched, Some(10), 10));
        assert!(!is_overdue(PendingVerification, Some(10), 11));
        assert!(!is_overdue(Dispatched, None, 11));
    }
}
