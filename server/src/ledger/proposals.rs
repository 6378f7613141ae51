//! Deduction proposals: a supervisor proposes one against a rule of the rulebook in force, and
//! a proposal is rejected with a reason (approval is `ledger::posting`). A client-made
//! `proposal_id` makes a resend harmless.

use gridline_sync::{ErrorCode, Role};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::access::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::ledger::views::{DecisionInput, Proposal, ProposalInput};
use crate::ledger::LedgerService;
use crate::model::{Basis, Milli, PeriodStatus, ProposalStatus, Source};
use crate::store::changes::{self, PendingChange};
use crate::store::ledger::{self as store, ProposalRow};
use crate::store::{
    audit, cases, ms_from_time, new_id, now_ms, reference, review, time_from_ms, Db, WriteTx,
};

/// Deciding and posting deductions is for supervisors (and admins).
pub fn require_supervisor(user: &AuthUser) -> ApiResult<()> {
    user.require_any(&[Role::Supervisor])
}

/// What a proposal request did: made the proposal, or found it made by an earlier send of the
/// same request under the same `proposal_id`.
#[derive(Debug, Clone)]
pub enum Proposed {
    Created(Proposal),
    Resent(Proposal),
}

pub fn proposal_view(p: &ProposalRow) -> Proposal {
    Proposal {
        id: p.id,
        case_id: p.case_id,
        zone_id: p.zone_id,
        period_id: p.period_id,
        source: p.source.clone(),
        rulebook_id: p.rulebook_id,
        rule_code: p.rule_code.clone(),
        raw_points: Milli::to_f64(p.raw_points_milli),
        category_code: p.category_code.clone(),
        found_at: time_from_ms(p.found_at),
        note: p.note.clone(),
        status: p.status,
        proposed_by: p.proposed_by,
        proposed_at: time_from_ms(p.proposed_at),
        decided_by: p.decided_by,
        decided_at: p.decided_at.map(time_from_ms),
        reason: p.reason.clone(),
        ledger_entry_id: p.ledger_entry_id,
        basis: p.basis,
    }
}

pub(crate) fn period_closed() -> ApiError {
    ApiError::new(
        ErrorCode::PeriodClosed,
        "the period of this finding is closed: it takes no new entries",
    )
}

/// SHA-256 of what a proposal request asks for (all of it but `proposal_id`) and who asks:
/// a resend under the same `proposal_id` must match it.
fn request_sha256(input: &ProposalInput, user: Uuid) -> String {
    let mut canonical = json!({
        "proposed_by": user,
        "case_id": input.case_id,
        "zone_id": input.zone_id,
        "source": input.source.map(Source::as_str),
        "rule_code": input.rule_code,
        "category_code": input.category_code,
        "found_at": input.found_at.map(ms_from_time),
        "note": input.note,
    });
    // Only when it is not the default, so that a finding's request hashes the same whether or
    // not `basis` is sent.
    if input.basis != Basis::Finding {
        canonical["basis"] = json!(input.basis);
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// The answer to a resent proposal: the proposal made under `id`, as it stands now, when the
/// request is the same; `proposal_id_reused` when it is not; `None` when there is none.
async fn replayed(
    conn: &mut AnyConnection,
    scope: &Scope,
    id: Uuid,
    sha: &str,
) -> ApiResult<Option<Proposal>> {
    let Some(p) = store::proposal(conn, id).await? else {
        return Ok(None);
    };
    scope.check_visible(p.zone_id, "deduction")?;
    if p.request_sha256.as_deref() != Some(sha) {
        return Err(ApiError::new(
            ErrorCode::ProposalIdReused,
            "a proposal with this proposal_id exists with different content",
        )
        .with_details(json!({ "proposal_id": id })));
    }
    Ok(Some(proposal_view(&p)))
}

/// The refusal of a second deduction of `basis` on a case that `proposal` holds.
fn case_held(proposal: Uuid, status: ProposalStatus, basis: Basis) -> ApiError {
    let (code, message) = if status == ProposalStatus::Proposed {
        (
            ErrorCode::ProposalPending,
            "the case already has a pending deduction proposal: decide that one first",
        )
    } else {
        (
            ErrorCode::CaseAlreadyDeducted,
            "the case already has an approved deduction: reverse it to correct it",
        )
    };
    ApiError::new(code, message).with_details(json!({ "proposal_id": proposal, "basis": basis }))
}

/// The deadline of a case that is late at `now` (see `store::ledger::Lateness`): what a
/// deduction for lateness needs. A case never dispatched, not filed, or rectified in time is
/// refused.
async fn late(conn: &mut AnyConnection, case: &cases::CaseRow, now: i64) -> ApiResult<i64> {
    use gridline_sync::case::CaseState::*;
    if matches!(case.state, Reported | NotFiled | Duplicate | Withdrawn) {
        return Err(ApiError::new(
            ErrorCode::CaseNotFiled,
            format!("a case in state {} cannot be deducted", case.state.as_str()),
        )
        .with_details(json!({ "state": case.state.as_str() })));
    }
    match store::case_lateness(conn, case.id, now).await? {
        None => Err(ApiError::conflict(
            "the case was never dispatched with a deadline: it cannot be late",
        )),
        Some(l) if !l.late => Err(ApiError::conflict(
            "the case is not late: its deadline is ahead, or it was rectified by the deadline",
        )
        .with_details(json!({ "deadline": crate::store::rfc3339(l.deadline_at) }))),
        Some(l) => Ok(l.deadline_at),
    }
}

/// Refuses a deduction on a case that is not filed (`case_not_filed`, saying where its evidence
/// stands too, so that one refusal does not hide the next) and, when `need_evidence` (at
/// approval), on one whose evidence is not complete (`evidence_incomplete`). Returns the hashes
/// of the case's photos.
pub(crate) async fn deductible(
    conn: &mut AnyConnection,
    case: &cases::CaseRow,
    need_evidence: bool,
) -> ApiResult<Vec<String>> {
    use gridline_sync::case::CaseState::*;
    let (photos, mut complete) = review::evidence(conn, case.id).await?;
    // A press clipping or a leader's instruction may be the whole evidence: with no photo,
    // a document makes the evidence complete.
    if photos.is_empty()
        && !crate::store::intake::documents_of(&mut *conn, case.id)
            .await?
            .is_empty()
    {
        complete = true;
    }
    if matches!(case.state, Reported | NotFiled | Duplicate | Withdrawn) {
        let message = if case.state == Reported {
            "the case has not been filed yet: file it before proposing a deduction".to_owned()
        } else {
            format!("a case in state {} cannot be deducted", case.state.as_str())
        };
        return Err(
            ApiError::new(ErrorCode::CaseNotFiled, message).with_details(json!({
                "state": case.state.as_str(),
                "evidence_complete": complete,
                "photos": photos,
            })),
        );
    }
    // A deduction is published to the zone (its ledger, its chiefs' notices): a finding of an
    // unannounced inspection still confidential would leak by it.
    if cases::is_hidden(&mut *conn, case.id, Some(Uuid::nil())).await? {
        return Err(ApiError::conflict(
            "the case belongs to an unannounced inspection not yet revealed: reveal its round \
             (POST /v1/rounds/{id}/reveal) or its plan, or dispatch the case, before deducting",
        )
        .with_details(json!({ "confidential": true })));
    }
    if gridline_sync::case::CaseSource::parse(&case.source)
        .is_some_and(|s| s.needs_site_verification())
        && !crate::store::intake::verified_on_site(&mut *conn, case.id).await?
    {
        return Err(ApiError::new(
            ErrorCode::CaseNotVerified,
            "a report from the public costs points only after an inspector's visit found it, with a photo",
        )
        .with_details(json!({ "source": case.source })));
    }
    if need_evidence && !complete {
        return Err(ApiError::new(
            ErrorCode::EvidenceIncomplete,
            "the case's evidence is not complete: every declared photo must be received and verified",
        )
        .with_details(json!({ "photos": photos })));
    }
    Ok(photos)
}

/// Propose a deduction (supervisors), from a case or directly, citing a rule of the rulebook
/// in force. The finding's time decides the period, which must be open. A case must be filed
/// (`case_not_filed`, which also says where its evidence stands). A case takes one
/// deduction of each basis: a second proposal of the same basis is refused while the first is
/// pending (`proposal_pending`) or approved and not reversed (`case_already_deducted`). A
/// deduction for lateness (`basis` `lateness`) needs a case that is late: dispatched and past
/// its deadline, or rectified only after it. A resend under the same client-made
/// `proposal_id` answers `200` with the proposal the first request made.
pub async fn propose(
    svc: &LedgerService,
    user: &AuthUser,
    input: ProposalInput,
) -> ApiResult<Proposed> {
    require_supervisor(user)?;
    let scope = user.scope(&svc.db).await?;
    let sha = request_sha256(&input, user.user_id);
    if let Some(id) = input.proposal_id {
        let mut conn = svc.db.pool.acquire().await?;
        if let Some(p) = replayed(&mut conn, &scope, id, &sha).await? {
            return Ok(Proposed::Resent(p));
        }
    }
    let now = now_ms();
    let (case_id, zone_id, source, category, found_at) = match input.case_id {
        Some(case_id) => {
            let case = cases::get(&svc.db.pool, case_id)
                .await?
                .ok_or_else(|| ApiError::not_found("case"))?;
            scope.check_visible(case.zone_id, "case")?;
            if input.zone_id.is_some_and(|z| z != case.zone_id) {
                return Err(ApiError::invalid("zone_id", "differs from the case's zone"));
            }
            let source = match input.source {
                Some(s) => s,
                None => Source::of_case(&case.source),
            };
            let found_at = match input.basis {
                Basis::Finding => {
                    // Evidence may still be arriving: it must be complete by the approval.
                    deductible(&mut *svc.db.pool.acquire().await?, &case, false).await?;
                    input.found_at.map(ms_from_time).unwrap_or(case.captured_at)
                }
                Basis::Lateness => {
                    let mut conn = svc.db.pool.acquire().await?;
                    let deadline = late(&mut conn, &case, now).await?;
                    match input.found_at.map(ms_from_time) {
                        Some(at) if at < deadline => {
                            return Err(ApiError::invalid(
                                "found_at",
                                "a case is late from its deadline, not before it",
                            ))
                        }
                        Some(at) => at,
                        None => deadline,
                    }
                }
            };
            (
                Some(case_id),
                case.zone_id,
                source,
                Some(case.category_code),
                found_at,
            )
        }
        None => {
            if input.basis == Basis::Lateness {
                return Err(ApiError::invalid(
                    "basis",
                    "a deduction for lateness is proposed on its case (case_id)",
                ));
            }
            let zone_id = input
                .zone_id
                .ok_or_else(|| ApiError::invalid("zone_id", "required without a case"))?;
            reference::zone(&svc.db.pool, zone_id)
                .await?
                .ok_or_else(|| ApiError::invalid("zone_id", "no such zone"))?;
            scope.check_writable(zone_id)?;
            let source = input
                .source
                .ok_or_else(|| ApiError::invalid("source", "required without a case"))?;
            if source == Source::Inspection {
                return Err(ApiError::invalid(
                    "source",
                    "an inspection finding is proposed from its case",
                ));
            }
            if let Some(c) = &input.category_code {
                if reference::taxonomy_entry(&svc.db.pool, c).await?.is_none() {
                    return Err(ApiError::invalid("category_code", "no such taxonomy entry"));
                }
            }
            (
                None,
                zone_id,
                source,
                input.category_code.clone(),
                input.found_at.map(ms_from_time).unwrap_or(now),
            )
        }
    };
    if input.note.chars().count() > 2000 {
        return Err(ApiError::invalid("note", "at most 2000 characters"));
    }
    let rulebook = reference::active_rulebook(&svc.db.pool, now)
        .await?
        .ok_or_else(|| ApiError::conflict("no rulebook is in force"))?;
    let rule = rulebook
        .rules
        .iter()
        .find(|r| r.code == input.rule_code)
        .ok_or_else(|| ApiError::invalid("rule_code", "not a rule of the rulebook in force"))?;
    if !rule.allows_source(source) {
        return Err(ApiError::invalid(
            "rule_code",
            format!("the rule does not apply to source {}", source.as_str()),
        ));
    }
    if !rule.allows_category(category.as_deref()) {
        return Err(ApiError::invalid(
            "rule_code",
            "the rule does not apply to this problem category",
        ));
    }
    let (period_id, status) = store::period_at(&svc.db.pool, found_at)
        .await?
        .ok_or_else(|| ApiError::invalid("found_at", "no period covers this time"))?;
    if status != PeriodStatus::Open {
        return Err(period_closed());
    }
    let row = ProposalRow {
        id: input.proposal_id.unwrap_or_else(new_id),
        case_id,
        zone_id,
        period_id,
        source: source.as_str().to_owned(),
        rulebook_id: rulebook.id,
        rule_code: rule.code.clone(),
        raw_points_milli: Milli::from_f64(rule.points, 1000.0).unwrap_or(0),
        category_code: category,
        found_at,
        note: input.note.trim().to_owned(),
        status: ProposalStatus::Proposed,
        proposed_by: user.user_id,
        proposed_at: now,
        decided_by: None,
        decided_at: None,
        reason: None,
        ledger_entry_id: None,
        request_sha256: Some(sha.clone()),
        basis: input.basis,
    };
    let view = proposal_view(&row);
    let mut tx = svc.db.begin_write().await?;
    if let Some(case_id) = case_id {
        // Under the case's lock, so that of two concurrent proposals on a case one is made.
        review::lock_cases(&mut tx, &[case_id]).await?;
        if let Some((held_by, status)) =
            store::open_proposal_of_case(tx.conn(), case_id, input.basis).await?
        {
            if Some(held_by) == input.proposal_id {
                // A resend that raced its first attempt, which made the proposal.
                if let Some(p) = replayed(tx.conn(), &scope, held_by, &sha).await? {
                    return Ok(Proposed::Resent(p));
                }
            }
            return Err(case_held(held_by, status, input.basis));
        }
    }
    // Under the period's lock, so that a close in flight sees this proposal pending, or this
    // proposal sees the period closed.
    if store::lock_period(&mut tx, period_id).await? != Some(PeriodStatus::Open) {
        return Err(period_closed());
    }
    if let Err(err) = store::insert_proposal(tx.conn(), &row).await {
        let taken = matches!(&err, sqlx::Error::Database(db) if db.is_unique_violation());
        if taken && input.proposal_id.is_some() {
            // A resend that raced its first attempt: answer as a resend does.
            drop(tx);
            let mut conn = svc.db.pool.acquire().await?;
            if let Some(p) = replayed(&mut conn, &scope, row.id, &sha).await? {
                return Ok(Proposed::Resent(p));
            }
        }
        return Err(err.into());
    }
    // The supervisors who may decide it (not its proposer, who knows and, under four eyes,
    // may not).
    let deciders: Vec<Uuid> = crate::store::users::with_role(tx.conn(), Role::Supervisor)
        .await?
        .into_iter()
        .filter(|u| *u != user.user_id)
        .collect();
    let recorded = crate::notify::record(
        tx.conn(),
        crate::notify::Notice {
            kind: crate::notify::NoticeKind::DeductionProposed,
            case_id: row.case_id,
            zone_id: Some(row.zone_id),
            data: json!({
                "proposal_id": row.id,
                "rule_code": row.rule_code,
                "source": row.source,
                "raw_points": Milli::to_f64(row.raw_points_milli),
                "category_code": row.category_code,
                "period_id": row.period_id,
                "proposed_by": user.user_id,
                "basis": row.basis,
            }),
            recipients: deciders,
        },
        now,
    )
    .await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "deduction.propose",
        "deduction_proposal",
        &row.id.to_string(),
        None::<&()>,
        Some(&view),
    )
    .await?;
    changes::append(tx.conn(), &recorded.changes).await?;
    tx.commit().await?;
    Ok(Proposed::Created(view))
}

/// A decision on a proposal of another period, asked for while closing one.
pub(crate) fn not_of_period(id: Uuid) -> ApiError {
    let reason = "a proposal of another period";
    ApiError::invalid("decisions", reason)
        .with_details(json!({ "path": "decisions", "reason": reason, "proposal_id": id }))
}

/// A rejection or reversal must say why: 1 to 2000 characters after trimming.
pub(crate) fn required_reason(reason: &str) -> ApiResult<&str> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(ApiError::invalid(
            "reason",
            "required, at most 2000 characters",
        ));
    }
    Ok(reason)
}

/// Reject a proposal (supervisors); the reason is required.
pub async fn reject(
    svc: &LedgerService,
    user: &AuthUser,
    id: Uuid,
    input: &DecisionInput,
) -> ApiResult<Proposal> {
    require_supervisor(user)?;
    let reason = required_reason(&input.reason)?;
    let scope = user.scope(&svc.db).await?;
    let mut tx = svc.db.begin_write().await?;
    let (after, pending) = reject_in(&mut tx, user, &scope, id, reason, None).await?;
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    Ok(after)
}

/// Rejects proposal `id` inside `tx` (see [`reject`]), refusing one that is not of `period`
/// when given. Returns the change-log rows for the caller to append last.
pub(crate) async fn reject_in(
    tx: &mut WriteTx,
    user: &AuthUser,
    scope: &Scope,
    id: Uuid,
    reason: &str,
    period: Option<Uuid>,
) -> ApiResult<(Proposal, Vec<PendingChange>)> {
    let p = store::proposal(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("deduction"))?;
    scope.check_visible(p.zone_id, "deduction")?;
    if period.is_some_and(|period| period != p.period_id) {
        return Err(not_of_period(id));
    }
    if !store::decide_proposal(
        tx.conn(),
        id,
        ProposalStatus::Rejected,
        user.user_id,
        Some(reason),
        None,
    )
    .await?
    {
        return Err(ApiError::conflict("the deduction has already been decided"));
    }
    let after = store::proposal(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("deduction"))?;
    let recorded = crate::notify::record(
        tx.conn(),
        crate::notify::Notice {
            kind: crate::notify::NoticeKind::DeductionRejected,
            case_id: p.case_id,
            zone_id: Some(p.zone_id),
            data: json!({
                "proposal_id": id,
                "rule_code": p.rule_code,
                "reason": reason,
                "rejected_by": user.user_id,
            }),
            recipients: vec![p.proposed_by],
        },
        now_ms(),
    )
    .await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "deduction.reject",
        "deduction_proposal",
        &id.to_string(),
        Some(&proposal_view(&p)),
        Some(&proposal_view(&after)),
    )
    .await?;
    Ok((proposal_view(&after), recorded.changes))
}

/// The rules of the rulebook in force that a finding from `source` of `category` may be
/// deducted under: what a proposal on it may cite.
pub async fn applicable_rules(
    db: &Db,
    source: Source,
    category: Option<&str>,
) -> ApiResult<Vec<crate::model::Rule>> {
    Ok(reference::active_rulebook(&db.pool, now_ms())
        .await?
        .map(|book| book.rules)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.applies_to(source, category))
        .collect())
}

/// Where a finding with no case comes from: a media report, a leader's criticism, a complaint
/// from the public. A deduction for one is proposed without a case (`propose_finding`).
pub const FINDING_SOURCES: [Source; 3] = [
    Source::Media,
    Source::LeaderCriticism,
    Source::PublicComplaint,
];

/// The source named `text`, if a finding with no case may come from it.
pub fn finding_source(text: &str) -> ApiResult<Source> {
    Source::parse(text)
        .filter(|s| FINDING_SOURCES.contains(s))
        .ok_or_else(|| ApiError::invalid("source", "media, leader_criticism or public_complaint"))
}

/// The rules of the rulebook in force that a finding with no case may cite: those naming one
/// of [`FINDING_SOURCES`].
pub async fn finding_rules(db: &Db) -> ApiResult<Vec<crate::model::Rule>> {
    Ok(reference::active_rulebook(&db.pool, now_ms())
        .await?
        .map(|book| book.rules)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.sources.iter().any(|s| FINDING_SOURCES.contains(s)))
        .collect())
}

/// A finding with no case, found on a day rather than at an instant.
#[derive(Debug, Clone)]
pub struct FindingInput {
    pub zone_id: Uuid,
    pub source: Source,
    pub rule_code: String,
    /// The local day it was found on: the finding is taken to be at noon that day, in the
    /// site's time zone.
    pub found_on: jiff::civil::Date,
    pub note: String,
}

/// Proposes a deduction for a finding with no case, to be approved like any other proposal.
pub async fn propose_finding(
    svc: &LedgerService,
    user: &AuthUser,
    finding: FindingInput,
) -> ApiResult<Proposed> {
    finding_source(finding.source.as_str())?;
    let noon = finding
        .found_on
        .at(12, 0, 0, 0)
        .to_zoned_datetime(svc.config.site.tz())
        .map_err(|_| ApiError::invalid("found_on", "not a day of the site's calendar"))?;
    let found_at = time::OffsetDateTime::from_unix_timestamp(noon.timestamp().as_second())
        .map_err(|_| ApiError::invalid("found_on", "out of range"))?;
    let input = ProposalInput {
        proposal_id: None,
        case_id: None,
        zone_id: Some(finding.zone_id),
        source: Some(finding.source),
        rule_code: finding.rule_code,
        category_code: None,
        found_at: Some(found_at),
        note: finding.note,
        basis: Basis::Finding,
    };
    propose(svc, user, input).await
}
