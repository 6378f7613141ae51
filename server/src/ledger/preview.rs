//! What approving a proposal would do, before anyone approves it: the points weighted by the
//! zone's coefficient, the accountable chain the entry would freeze, the photo hashes it would
//! bind, the zone's score and rank before and after, and what still stands in the way (the
//! same rules `posting::approve` enforces, read without writing).

use gridline_sync::Role;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::ledger::chain::weighted_milli;
use crate::ledger::closing::visible_ranking;
use crate::ledger::LedgerService;
use crate::model::{Milli, RosterPerson};
use crate::store::ledger::{self as store, ProposalRow};
use crate::store::{photos, reference, review};

/// The consequence of approving a proposal, as `user` would approve it.
#[derive(Debug, Clone)]
pub struct Consequence {
    pub raw_points: f64,
    pub coefficient: Option<f64>,
    pub weighted_points: Option<f64>,
    /// The zone, road and section chiefs on the roster when the problem was found.
    pub roster: Vec<RosterPerson>,
    /// The photos the entry would bind (verified evidence of the case).
    pub evidence: Vec<String>,
    /// Of those, the ones `user` has not opened yet.
    pub unviewed: Vec<String>,
    /// The zone's score and rank in the period's ranking now, and after the approval.
    pub before: Option<(f64, i64)>,
    pub after: Option<(f64, i64)>,
    /// Why `user` could not approve it now: error codes (`self_approval`,
    /// `evidence_incomplete`, `evidence_not_viewed`, `period_closed`), empty when they can.
    pub blockers: Vec<gridline_sync::ErrorCode>,
}

pub async fn consequence(
    svc: &LedgerService,
    user: &AuthUser,
    proposal_id: Uuid,
) -> ApiResult<Consequence> {
    use gridline_sync::ErrorCode;
    let db = &svc.db;
    let p = store::proposal(&db.pool, proposal_id)
        .await?
        .ok_or_else(|| ApiError::not_found("deduction"))?;
    user.scope(db)
        .await?
        .check_visible(p.zone_id, "deduction")?;
    let mut blockers = Vec::new();
    if svc.config.deductions.four_eyes && p.proposed_by == user.user_id {
        blockers.push(ErrorCode::SelfApproval);
    }
    let coefficient = reference::coefficients(&db.pool, p.period_id)
        .await?
        .into_iter()
        .find(|c| c.zone_id == p.zone_id)
        .and_then(|c| Milli::from_f64(c.coefficient, 10.0));
    let weighted = coefficient.map(|c| weighted_milli(p.raw_points_milli, c));
    let mut conn = db.pool.acquire().await?;
    let roster = review::roster_at(
        &mut *conn,
        p.zone_id,
        &[Role::ZoneChief, Role::RoadChief, Role::SectionChief],
        false,
        p.found_at,
    )
    .await?;
    let mut evidence = Vec::new();
    // A deduction for lateness binds no evidence.
    if let Some(case_id) = p
        .case_id
        .filter(|_| p.basis == crate::model::Basis::Finding)
    {
        let summary = photos::evidence(db, case_id).await?;
        if !summary.complete {
            blockers.push(ErrorCode::EvidenceIncomplete);
        }
        evidence = summary.photos.into_iter().map(|p| p.sha256).collect();
        evidence.sort();
    }
    let unviewed = photos::not_opened_by(&mut conn, user.user_id, &evidence).await?;
    if svc.config.deductions.require_photo_views && !unviewed.is_empty() {
        blockers.push(ErrorCode::EvidenceNotViewed);
    }
    let period = reference::period(&db.pool, p.period_id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    if period.status == crate::model::PeriodStatus::Closed {
        blockers.push(ErrorCode::PeriodClosed);
    }
    let (before, after) = match (
        visible_ranking(db, &svc.rankings, user, &period).await,
        weighted,
    ) {
        (Ok(ranking), Some(w)) => {
            let zone = p.zone_id.to_string();
            let scores: Vec<(String, f64)> = ranking
                .zones
                .iter()
                .map(|z| (z.zone_id.clone(), z.score))
                .collect();
            let rank_of = |id: &str, scores: &[(String, f64)]| {
                let own = scores.iter().find(|(z, _)| z == id).map(|(_, s)| *s);
                own.map(|s| (s, 1 + scores.iter().filter(|(_, o)| *o > s).count() as i64))
            };
            let before = rank_of(&zone, &scores);
            let moved: Vec<(String, f64)> = scores
                .iter()
                .map(|(z, s)| {
                    let s = if *z == zone {
                        ((s - Milli::to_f64(w)) * 1000.0).round() / 1000.0
                    } else {
                        *s
                    };
                    (z.clone(), s)
                })
                .collect();
            (before, rank_of(&zone, &moved))
        }
        _ => (None, None),
    };
    Ok(Consequence {
        raw_points: Milli::to_f64(p.raw_points_milli),
        coefficient: coefficient.map(Milli::to_f64),
        weighted_points: weighted.map(Milli::to_f64),
        roster,
        evidence,
        unviewed,
        before,
        after,
        blockers,
    })
}

/// The proposals waiting for a decision in `user`'s zones (supervisors; at most `limit`), each
/// with the consequence of approving it as `user`.
pub async fn waiting(
    svc: &LedgerService,
    user: &AuthUser,
    limit: i64,
) -> ApiResult<Vec<(ProposalRow, Consequence)>> {
    crate::ledger::proposals::require_supervisor(user)?;
    let zones = crate::ledger::closing::scoped_zones(&svc.db, user, None).await?;
    let pending = store::proposals(&svc.db.pool, zones.as_deref(), Some("proposed"), limit).await?;
    let mut out = Vec::with_capacity(pending.len());
    for p in pending {
        let k = consequence(svc, user, p.id).await?;
        out.push((p, k));
    }
    Ok(out)
}

/// Where a case stands with the ledger on the basis of its finding, as `user` may act on it:
/// what a case page offers a supervisor.
#[derive(Debug, Clone)]
pub enum CaseDeduction {
    /// Nothing for this reader (not a supervisor), or the case cannot be deducted (never
    /// filed, a duplicate or withdrawn).
    None,
    /// No proposal yet: the rules of the active rulebook that apply to it.
    Proposable(Vec<crate::model::Rule>),
    /// A proposal waiting for a decision, and what approving it would do.
    Pending(Box<(store::ProposalRow, Consequence)>),
    /// Approved into the ledger.
    Approved(Box<store::ProposalRow>),
}

/// The deduction of `case` for its finding as `user` sees it: the proposal open on it (with
/// its [`consequence`] while it waits), or the rules a new one could cite.
pub async fn case_deduction(
    svc: &LedgerService,
    user: &AuthUser,
    case: &crate::model::CaseView,
) -> ApiResult<CaseDeduction> {
    use gridline_sync::case::CaseState;
    if !user.is_supervisor_level() {
        return Ok(CaseDeduction::None);
    }
    let mut conn = svc.db.pool.acquire().await?;
    let finding = crate::model::Basis::Finding;
    let Some((pid, status)) = store::open_proposal_of_case(&mut conn, case.id, finding).await?
    else {
        let never_filed = matches!(
            case.state,
            CaseState::Reported | CaseState::NotFiled | CaseState::Duplicate | CaseState::Withdrawn
        );
        if never_filed {
            return Ok(CaseDeduction::None);
        }
        let rules = match crate::model::Source::parse(&case.source) {
            Some(source) => {
                crate::ledger::proposals::applicable_rules(
                    &svc.db,
                    source,
                    Some(&case.category_code),
                )
                .await?
            }
            None => Vec::new(),
        };
        return Ok(CaseDeduction::Proposable(rules));
    };
    let Some(p) = store::proposal(&mut *conn, pid).await? else {
        return Ok(CaseDeduction::None);
    };
    if status == crate::model::ProposalStatus::Proposed {
        drop(conn);
        let consequence = consequence(svc, user, pid).await?;
        Ok(CaseDeduction::Pending(Box::new((p, consequence))))
    } else {
        Ok(CaseDeduction::Approved(Box::new(p)))
    }
}
