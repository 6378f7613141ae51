//! Posting to the ledger: approving a proposal appends a deduction entry (four eyes, complete
//! evidence, the zone's coefficient and roster frozen in), and reversing an entry appends its
//! negation. Each write issues a signed checkpoint of the ledger in the same transaction.

use gridline_sync::{EntityKind, ErrorCode, Role};
use serde_json::json;
use uuid::Uuid;

use crate::access::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::ledger::chain::{self, Entry};
use crate::ledger::proposals::{
    deductible, not_of_period, period_closed, proposal_view, require_supervisor, required_reason,
};
use crate::ledger::views::{LedgerEntry, Notified, ReversalCause, ReversalInput};
use crate::ledger::LedgerService;
use crate::model::{Basis, Milli, PeriodStatus, ProposalStatus};
use crate::store::changes::{self, PendingChange};
use crate::store::ledger as store;
use crate::store::{
    audit, cases, ms_from_time, new_id, now_ms, parse_uuid, reference, review, time_from_ms,
    unknown_value, WriteTx,
};

/// An entry as the API shows it. Its ids and lists are stored as text (the hash covers that
/// text); text that does not parse is a decode error, never a nil id or an empty list. A
/// deduction with a `reason` is one for lateness, whose reason is a
/// [`chain::LatenessReason`]: it is shown decoded as `notified` (and is an error if it is not
/// one).
pub fn entry_view(e: &Entry) -> Result<LedgerEntry, sqlx::Error> {
    let id = |col: &str, s: &str| parse_uuid(&format!("ledger_entries.{col}"), s);
    let opt = |col: &str, s: &Option<String>| s.as_deref().map(|s| id(col, s)).transpose();
    fn json<T: serde::de::DeserializeOwned>(col: &str, s: &str) -> Result<T, sqlx::Error> {
        serde_json::from_str(s).map_err(|_| unknown_value(&format!("ledger_entries.{col}"), s))
    }
    Ok(LedgerEntry {
        seq: e.seq,
        id: id("id", &e.id)?,
        kind: e.kind.clone(),
        zone_id: id("zone_id", &e.zone_id)?,
        period_id: id("period_id", &e.period_id)?,
        rulebook_version: e.rulebook_version,
        rule_code: e.rule_code.clone(),
        source: e.source.clone(),
        category_code: e.category_code.clone(),
        work_category: e.work_category.clone(),
        raw_points: Milli::to_f64(e.raw_points_milli),
        coefficient: Milli::to_f64(e.coefficient_milli),
        weighted_points: Milli::to_f64(e.weighted_points_milli),
        roster: json("roster", &e.roster)?,
        approved_by: id("approved_by", &e.approved_by)?,
        proposed_by: opt("proposed_by", &e.proposed_by)?,
        approved_at: time_from_ms(e.approved_at),
        found_at: time_from_ms(e.found_at),
        case_id: opt("case_id", &e.case_id)?,
        case_version: e.case_version,
        evidence: json("evidence", &e.evidence)?,
        proposal_id: opt("proposal_id", &e.proposal_id)?,
        reverses_id: opt("reverses_id", &e.reverses_id)?,
        reason: e.reason.clone(),
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
        notified: match (&*e.kind, &e.reason) {
            ("deduction", Some(reason)) => Some(notified_view(reason)?),
            _ => None,
        },
    })
}

/// The people a lateness entry's `reason` cites, as the API shows them.
fn notified_view(reason: &str) -> Result<Vec<Notified>, sqlx::Error> {
    let bad = || unknown_value("ledger_entries.reason", reason);
    let doc = chain::LatenessReason::parse(reason).ok_or_else(bad)?;
    doc.notified
        .iter()
        .map(|t| {
            Ok(Notified {
                user_id: Uuid::parse_str(&t.user_id).map_err(|_| bad())?,
                role: t.role.clone(),
                kind: t.kind.clone(),
                mark_pct: t.mark_pct,
                notice_id: Uuid::parse_str(&t.notice_id).map_err(|_| bad())?,
                recorded_at: time_from_ms(t.recorded_at),
                read_at: t.read_at.map(time_from_ms),
                acknowledged_at: t.acknowledged_at.map(time_from_ms),
            })
        })
        .collect()
}

/// Approve a proposal (supervisors other than its proposer, unless the server turns the
/// four-eyes rule off: `self_approval`): the deduction is posted to the ledger with the zone's
/// coefficient for the period, the roster of the zone at the time of the finding and, for a
/// case, the case version and the hashes of its evidence, which must be complete and verified.
/// The case is locked. Of two concurrent approvals exactly one posts; the other gets 409, and
/// so does an approval on a case whose deduction stands (`case_already_deducted`).
pub async fn approve(svc: &LedgerService, user: &AuthUser, id: Uuid) -> ApiResult<LedgerEntry> {
    require_supervisor(user)?;
    let scope = user.scope(&svc.db).await?;
    let mut tx = svc.db.begin_write().await?;
    let (view, pending) = approve_in(svc, &mut tx, user, &scope, id, None).await?;
    crate::store::ledger_log::issue_checkpoint(tx.conn(), svc.keys.as_ref()).await?;
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    Ok(view)
}

/// Approves proposal `id` inside `tx` (see [`approve`]), refusing one that is not of `period`
/// when given; returns the entry and the change-log rows to append last.
pub(crate) async fn approve_in(
    svc: &LedgerService,
    tx: &mut WriteTx,
    user: &AuthUser,
    scope: &Scope,
    id: Uuid,
    period: Option<Uuid>,
) -> ApiResult<(LedgerEntry, Vec<PendingChange>)> {
    let now = now_ms();
    let p = store::proposal(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("deduction"))?;
    scope.check_visible(p.zone_id, "deduction")?;
    if period.is_some_and(|period| period != p.period_id) {
        return Err(not_of_period(id));
    }
    let already = || ApiError::conflict("the deduction has already been decided");
    if p.status != ProposalStatus::Proposed {
        return Err(already());
    }
    if svc.config.deductions.four_eyes && p.proposed_by == user.user_id {
        return Err(ApiError::new(
            ErrorCode::SelfApproval,
            "you proposed this deduction: another supervisor must approve it",
        )
        .with_details(json!({ "proposed_by": p.proposed_by })));
    }
    let mut case_row = None;
    let mut evidence = Vec::new();
    if let Some(case_id) = p.case_id {
        review::lock_cases(tx, &[case_id]).await?;
        // Read again under the lock: a concurrent approval of this proposal or of another on
        // the same case may have committed meanwhile.
        if store::proposal(tx.conn(), id)
            .await?
            .is_none_or(|q| q.status != ProposalStatus::Proposed)
        {
            return Err(already());
        }
        if let Some(held) = store::standing_deduction_of_case(tx.conn(), case_id, p.basis).await? {
            return Err(ApiError::new(
                ErrorCode::CaseAlreadyDeducted,
                "the case already has an approved deduction: reverse it to correct it",
            )
            .with_details(json!({ "proposal_id": held, "basis": p.basis })));
        }
        let case = cases::get(tx.conn(), case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case"))?;
        // A deduction for lateness rests on the deadline and the notices, not on the finding's
        // evidence: it binds no photos.
        if p.basis == Basis::Finding {
            evidence = deductible(tx.conn(), &case, true).await?;
        }
        case_row = Some(case);
    }
    if svc.config.deductions.require_photo_views && !evidence.is_empty() {
        let unviewed =
            crate::store::photos::not_opened_by(tx.conn(), user.user_id, &evidence).await?;
        if !unviewed.is_empty() {
            return Err(ApiError::new(
                ErrorCode::EvidenceNotViewed,
                "open every evidence photo (original or preview) before approving",
            )
            .with_details(json!({ "unviewed": unviewed })));
        }
    }
    // The case's documents (a leader's instruction, a press clipping) are evidence too: their
    // hashes join the photos' in the entry, one sorted list.
    if let Some(case_id) = p.case_id.filter(|_| p.basis == Basis::Finding) {
        let documents = crate::store::intake::documents_of(tx.conn(), case_id).await?;
        if !documents.is_empty() {
            evidence.extend(documents.into_iter().map(|d| d.sha256));
            evidence.sort();
            evidence.dedup();
        }
    }
    if store::lock_period(tx, p.period_id).await? != Some(PeriodStatus::Open) {
        return Err(period_closed());
    }
    let coefficient = reference::coefficients(tx.conn(), p.period_id)
        .await?
        .into_iter()
        .find(|c| c.zone_id == p.zone_id)
        .and_then(|c| Milli::from_f64(c.coefficient, 10.0))
        .ok_or_else(|| ApiError::conflict("no coefficient is set for this zone and period"))?;
    let rulebook_version: i64 = reference::rulebooks(&svc.db.pool)
        .await?
        .into_iter()
        .find(|r| r.id == p.rulebook_id)
        .map(|r| r.version)
        .unwrap_or_default();
    let roster = review::roster_at(
        tx.conn(),
        p.zone_id,
        &[Role::ZoneChief, Role::RoadChief, Role::SectionChief],
        false,
        p.found_at,
    )
    .await?;
    let reason = match (p.basis, &case_row) {
        (Basis::Finding, _) => None,
        (Basis::Lateness, Some(case)) => Some(lateness_reason(tx.conn(), case).await?),
        (Basis::Lateness, None) => {
            return Err(ApiError::conflict(
                "a deduction for lateness is made on its case",
            ))
        }
    };
    let work_category = match &p.category_code {
        Some(c) => review::taxonomy_terms(tx.conn(), c)
            .await?
            .map(|(_, wc)| wc),
        None => None,
    };
    let entry_id = new_id();
    if !store::decide_proposal(
        tx.conn(),
        id,
        ProposalStatus::Approved,
        user.user_id,
        None,
        Some(entry_id),
    )
    .await?
    {
        return Err(already());
    }
    let entry = store::append(
        tx.conn(),
        Entry {
            seq: 0,
            id: entry_id.to_string(),
            kind: "deduction".into(),
            zone_id: p.zone_id.to_string(),
            period_id: p.period_id.to_string(),
            rulebook_version,
            rule_code: p.rule_code.clone(),
            source: p.source.clone(),
            category_code: p.category_code.clone(),
            work_category,
            raw_points_milli: p.raw_points_milli,
            coefficient_milli: coefficient,
            weighted_points_milli: chain::weighted_milli(p.raw_points_milli, coefficient),
            roster: serde_json::to_string(&roster).unwrap_or_else(|_| "[]".into()),
            approved_by: user.user_id.to_string(),
            approved_at: now,
            found_at: p.found_at,
            case_id: p.case_id.map(|c| c.to_string()),
            case_version: case_row.as_ref().map(|c| c.version),
            evidence: serde_json::to_string(&evidence).unwrap_or_else(|_| "[]".into()),
            proposal_id: Some(id.to_string()),
            reverses_id: None,
            reason,
            prev_hash: String::new(),
            hash: String::new(),
            proposed_by: Some(p.proposed_by.to_string()),
        },
    )
    .await?;
    let mut recipients: Vec<Uuid> = roster.iter().map(|r| r.user_id).collect();
    recipients.push(p.proposed_by);
    let recorded = crate::notify::record(
        tx.conn(),
        crate::notify::Notice {
            kind: crate::notify::NoticeKind::DeductionApproved,
            case_id: p.case_id,
            zone_id: Some(p.zone_id),
            data: json!({
                "ledger_entry_id": entry_id,
                "rule_code": p.rule_code,
                "source": p.source,
                "raw_points": Milli::to_f64(p.raw_points_milli),
                "coefficient": Milli::to_f64(coefficient),
                "weighted_points": Milli::to_f64(chain::weighted_milli(p.raw_points_milli, coefficient)),
                "period_id": p.period_id,
                "approved_by": user.user_id,
                "basis": p.basis,
            }),
            recipients,
        },
        now,
    )
    .await?;
    let mut pending = recorded.changes;
    // A deduction for lateness leaves the case as it is: it is still being rectified.
    if let Some(mut case) = case_row.filter(|_| p.basis == Basis::Finding) {
        // The approval freezes the case: phones see `locked` on their next pull.
        case.locked_at.get_or_insert(now);
        case.version += 1;
        case.updated_at = now;
        cases::update_case(tx.conn(), &case).await?;
        cases::insert_events(
            tx.conn(),
            &[cases::EventRow {
                id: new_id(),
                case_id: case.id,
                version: case.version,
                kind: "deduction_approved".into(),
                actor_id: user.user_id,
                from_state: None,
                to_state: None,
                comment: None,
                data: Some(
                    json!({ "ledger_entry_id": entry_id, "evidence": evidence }).to_string(),
                ),
                at: now,
            }],
        )
        .await?;
        pending.push(PendingChange::upsert(
            EntityKind::Case,
            case.id,
            Some(case.zone_id.to_string()),
        ));
    }
    let view = entry_view(&entry)?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "deduction.approve",
        "deduction_proposal",
        &id.to_string(),
        Some(&proposal_view(&p)),
        Some(&view),
    )
    .await?;
    Ok((view, pending))
}

/// The hashed `reason` of a deduction for lateness on `case` (see [`chain::LatenessReason`]):
/// the case's deadline and every recipient of its escalation notices, with their role on the
/// zone's roster as it stood at the dispatch (the roster escalation tells, chiefs of every
/// zone included) and when they read and acknowledged the notice.
async fn lateness_reason(
    conn: &mut sqlx::AnyConnection,
    case: &cases::CaseRow,
) -> ApiResult<String> {
    let case_id = case.id;
    let lateness = store::case_lateness(&mut *conn, case_id, now_ms())
        .await?
        .ok_or_else(|| ApiError::conflict("the case was never dispatched with a deadline"))?;
    let roster = review::roster_at(
        &mut *conn,
        case.zone_id,
        &[Role::ZoneChief, Role::RoadChief, Role::SectionChief],
        true,
        lateness.dispatched_at,
    )
    .await?;
    // Of several roles, the one escalation tells first.
    let role_of = |user: Uuid| {
        ["section_chief", "road_chief", "zone_chief"]
            .into_iter()
            .find(|role| roster.iter().any(|r| r.user_id == user && r.role == *role))
            .map(str::to_owned)
    };
    let notified = crate::store::notices::escalation_receipts(conn, case_id)
        .await?
        .into_iter()
        .map(|r| chain::Told {
            user_id: r.user_id.to_string(),
            role: role_of(r.user_id),
            kind: r.kind,
            mark_pct: r.mark_pct,
            notice_id: r.notice_id.to_string(),
            recorded_at: r.recorded_at,
            read_at: r.read_at,
            acknowledged_at: r.acknowledged_at,
        })
        .collect();
    Ok(chain::LatenessReason {
        format: chain::LATENESS_FORMAT.to_owned(),
        case_id: case_id.to_string(),
        dispatched_at: lateness.dispatched_at,
        deadline_at: lateness.deadline_at,
        notified,
    }
    .to_canonical())
}

/// Reverse an entry (supervisors): a new entry with the points negated, pointing at the
/// original. An entry is reversed at most once and a reversal is never reversed. The reversal
/// goes into the original's period while it is open, otherwise into the open period of today.
pub async fn reverse(
    svc: &LedgerService,
    user: &AuthUser,
    id: Uuid,
    input: &ReversalInput,
) -> ApiResult<LedgerEntry> {
    require_supervisor(user)?;
    let reason = required_reason(&input.reason)?;
    let scope = user.scope(&svc.db).await?;
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    let original = store::entry(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("ledger entry"))?;
    scope.check_visible(
        parse_uuid("ledger_entries.zone_id", &original.zone_id)?,
        "ledger entry",
    )?;
    if original.kind == "reversal" {
        return Err(ApiError::conflict("a reversal cannot be reversed"));
    }
    if store::reversal_of(tx.conn(), id).await?.is_some() {
        return Err(ApiError::conflict("this entry has already been reversed"));
    }
    let original_period = parse_uuid("ledger_entries.period_id", &original.period_id)?;
    let period_id = if store::lock_period(&mut tx, original_period).await?
        == Some(PeriodStatus::Open)
    {
        original_period
    } else {
        // The open period of today, else the next open one after the original's.
        let today = store::period_at(tx.conn(), now)
            .await?
            .filter(|(_, status)| *status == PeriodStatus::Open)
            .map(|(id, _)| id);
        let open = match today {
            Some(id) => Some(id),
            None => {
                let original_period = reference::period(tx.conn(), original_period)
                    .await?
                    .ok_or_else(|| ApiError::not_found("period"))?;
                store::open_period_from(tx.conn(), ms_from_time(original_period.ends_at)).await?
            }
        }
        .ok_or_else(period_closed)?;
        if store::lock_period(&mut tx, open).await? != Some(PeriodStatus::Open) {
            return Err(period_closed());
        }
        open
    };
    let cause = match input.cause {
        ReversalCause::Correction => "correction",
        ReversalCause::AppealUpheld => "appeal_upheld",
    };
    let entry = store::append(
        tx.conn(),
        Entry {
            seq: 0,
            id: new_id().to_string(),
            kind: "reversal".into(),
            period_id: period_id.to_string(),
            raw_points_milli: -original.raw_points_milli,
            weighted_points_milli: -original.weighted_points_milli,
            approved_by: user.user_id.to_string(),
            approved_at: now,
            proposal_id: None,
            reverses_id: Some(original.id.clone()),
            reason: Some(format!("{cause}: {reason}")),
            prev_hash: String::new(),
            hash: String::new(),
            proposed_by: None,
            ..original.clone()
        },
    )
    .await?;
    if let Some(proposal) = &original.proposal_id {
        // The case may take a new (corrected) deduction.
        store::release_case(tx.conn(), proposal).await?;
    }
    let view = entry_view(&entry)?;
    // Those the original entry named: the chiefs it froze, its proposer and its approver.
    let frozen: Vec<crate::model::RosterPerson> =
        serde_json::from_str(&original.roster).unwrap_or_default();
    let mut recipients: Vec<Uuid> = frozen.iter().map(|r| r.user_id).collect();
    recipients.extend(
        [
            original.proposed_by.as_deref(),
            Some(original.approved_by.as_str()),
        ]
        .into_iter()
        .flatten()
        .filter_map(|u| Uuid::parse_str(u).ok()),
    );
    recipients.retain(|u| *u != user.user_id);
    let recorded = crate::notify::record(
        tx.conn(),
        crate::notify::Notice {
            kind: crate::notify::NoticeKind::DeductionReversed,
            case_id: original
                .case_id
                .as_deref()
                .and_then(|c| Uuid::parse_str(c).ok()),
            zone_id: Uuid::parse_str(&original.zone_id).ok(),
            data: json!({
                "ledger_entry_id": entry.id,
                "reverses_id": original.id,
                "rule_code": original.rule_code,
                "weighted_points": Milli::to_f64(-original.weighted_points_milli),
                "reason": format!("{cause}: {reason}"),
                "reversed_by": user.user_id,
            }),
            recipients,
        },
        now,
    )
    .await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "ledger.reverse",
        "ledger_entry",
        &original.id,
        Some(&entry_view(&original)?),
        Some(&view),
    )
    .await?;
    crate::store::ledger_log::issue_checkpoint(tx.conn(), svc.keys.as_ref()).await?;
    changes::append(tx.conn(), &recorded.changes).await?;
    tx.commit().await?;
    Ok(view)
}
