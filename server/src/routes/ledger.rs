//! Deductions and the ledger: proposals, approval into the hash-chained ledger, reversals,
//! chain verification, closing periods, zone scores and the ranking.

use axum::extract::State;
use axum::http::StatusCode;
use gridline_sync::{ErrorCode, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::ledger::chain::{self, ChainBreak, Entry};
use crate::ledger::scoring::{self, Ranking};
use crate::model::{Milli, Page, Period, PeriodStatus, Source};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::changes::{self, PendingChange};
use crate::store::ledger::{self as store, ProposalRow};
use crate::store::review;
use crate::store::{
    audit, cases, ms_from_time, new_id, now_ms, parse_uuid, reference, rfc3339, time_from_ms,
    unknown_value, WriteTx,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_proposals, propose))
        .routes(routes!(get_proposal))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(list_entries))
        .routes(routes!(verify))
        .routes(routes!(get_entry))
        .routes(routes!(reverse))
        .routes(routes!(close_period))
        .routes(routes!(ranking))
}

fn require_supervisor(user: &AuthUser) -> ApiResult<()> {
    user.require_any(&[Role::Supervisor])
}

// ---- proposals --------------------------------------------------------------------------------

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
    pub status: String,
    pub proposed_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub proposed_at: time::OffsetDateTime,
    pub decided_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<time::OffsetDateTime>,
    pub reason: Option<String>,
    pub ledger_entry_id: Option<Uuid>,
}

fn proposal_view(p: &ProposalRow) -> Proposal {
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
        status: p.status.clone(),
        proposed_by: p.proposed_by,
        proposed_at: time_from_ms(p.proposed_at),
        decided_by: p.decided_by,
        decided_at: p.decided_at.map(time_from_ms),
        reason: p.reason.clone(),
        ledger_entry_id: p.ledger_entry_id,
    }
}

fn period_closed() -> ApiError {
    ApiError::new(
        ErrorCode::PeriodClosed,
        "the period of this finding is closed: it takes no new entries",
    )
}

/// SHA-256 of what a proposal request asks for (all of it but `proposal_id`) and who asks:
/// a resend under the same `proposal_id` must match it.
fn request_sha256(input: &ProposalInput, user: Uuid) -> String {
    let canonical = json!({
        "proposed_by": user,
        "case_id": input.case_id,
        "zone_id": input.zone_id,
        "source": input.source.map(Source::as_str),
        "rule_code": input.rule_code,
        "category_code": input.category_code,
        "found_at": input.found_at.map(ms_from_time),
        "note": input.note,
    });
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

/// The refusal of a second deduction on a case that `proposal` holds.
fn case_held(proposal: Uuid, status: &str) -> ApiError {
    let (code, message) = if status == "proposed" {
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
    ApiError::new(code, message).with_details(json!({ "proposal_id": proposal }))
}

/// Refuses a deduction on a case that is not filed (`case_not_filed`, saying where its evidence
/// stands too, so that one refusal does not hide the next) and, when `need_evidence` (at
/// approval), on one whose evidence is not complete (`evidence_incomplete`). Returns the hashes
/// of the case's photos.
async fn deductible(
    conn: &mut AnyConnection,
    case: &cases::CaseRow,
    need_evidence: bool,
) -> ApiResult<Vec<String>> {
    use gridline_sync::case::CaseState::*;
    let (photos, complete) = review::evidence(conn, case.id).await?;
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
/// deduction: a second proposal is refused while the first is pending (`proposal_pending`) or
/// approved and not reversed (`case_already_deducted`). A resend under the same client-made
/// `proposal_id` answers `200` with the proposal the first request made.
#[utoipa::path(post, path = "/v1/deductions", operation_id = "propose_deduction", tag = "ledger", security(("bearer" = [])), request_body = ProposalInput,
    responses((status = 201, body = Proposal),
        (status = 200, body = Proposal, description = "a resend: the proposal made by the first request under this proposal_id"),
        (status = 404, body = gridline_sync::ErrorBody),
        (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn propose(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<ProposalInput>,
) -> ApiResult<(StatusCode, Json<Proposal>)> {
    require_supervisor(&user)?;
    let scope = user.scope(&state.db).await?;
    let sha = request_sha256(&input, user.user_id);
    if let Some(id) = input.proposal_id {
        let mut conn = state.db.pool.acquire().await?;
        if let Some(p) = replayed(&mut conn, &scope, id, &sha).await? {
            return Ok((StatusCode::OK, Json(p)));
        }
    }
    let now = now_ms();
    let (case_id, zone_id, source, category, found_at) = match input.case_id {
        Some(case_id) => {
            let case = cases::get(&state.db.pool, case_id)
                .await?
                .ok_or_else(|| ApiError::not_found("case"))?;
            scope.check_visible(case.zone_id, "case")?;
            if input.zone_id.is_some_and(|z| z != case.zone_id) {
                return Err(ApiError::invalid("zone_id", "differs from the case's zone"));
            }
            // Evidence may still be arriving: it must be complete by the approval.
            deductible(&mut *state.db.pool.acquire().await?, &case, false).await?;
            let source = match input.source {
                Some(s) => s,
                None => Source::parse(&case.source).unwrap_or(Source::Inspection),
            };
            (
                Some(case_id),
                case.zone_id,
                source,
                Some(case.category_code),
                input.found_at.map(ms_from_time).unwrap_or(case.captured_at),
            )
        }
        None => {
            let zone_id = input
                .zone_id
                .ok_or_else(|| ApiError::invalid("zone_id", "required without a case"))?;
            reference::zone(&state.db.pool, zone_id)
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
                if reference::taxonomy_entry(&state.db.pool, c)
                    .await?
                    .is_none()
                {
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
    let rulebook = reference::active_rulebook(&state.db.pool, now)
        .await?
        .ok_or_else(|| ApiError::conflict("no rulebook is in force"))?;
    let rule = rulebook
        .rules
        .iter()
        .find(|r| r.code == input.rule_code)
        .ok_or_else(|| ApiError::invalid("rule_code", "not a rule of the rulebook in force"))?;
    if !rule.sources.contains(&source) {
        return Err(ApiError::invalid(
            "rule_code",
            format!("the rule does not apply to source {}", source.as_str()),
        ));
    }
    if !rule.taxonomy_codes.is_empty()
        && !category
            .as_ref()
            .is_some_and(|c| rule.taxonomy_codes.contains(c))
    {
        return Err(ApiError::invalid(
            "rule_code",
            "the rule does not apply to this problem category",
        ));
    }
    let (period_id, status) = store::period_at(&state.db.pool, found_at)
        .await?
        .ok_or_else(|| ApiError::invalid("found_at", "no period covers this time"))?;
    if status != "open" {
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
        status: "proposed".into(),
        proposed_by: user.user_id,
        proposed_at: now,
        decided_by: None,
        decided_at: None,
        reason: None,
        ledger_entry_id: None,
        request_sha256: Some(sha.clone()),
    };
    let view = proposal_view(&row);
    let mut tx = state.db.begin_write().await?;
    if let Some(case_id) = case_id {
        // Under the case's lock, so that of two concurrent proposals on a case one is made.
        review::lock_cases(&mut tx, &[case_id]).await?;
        if let Some((held_by, status)) = store::open_proposal_of_case(tx.conn(), case_id).await? {
            if Some(held_by) == input.proposal_id {
                // A resend that raced its first attempt, which made the proposal.
                if let Some(p) = replayed(tx.conn(), &scope, held_by, &sha).await? {
                    return Ok((StatusCode::OK, Json(p)));
                }
            }
            return Err(case_held(held_by, &status));
        }
    }
    // Under the period's lock, so that a close in flight sees this proposal pending, or this
    // proposal sees the period closed.
    if store::lock_period(&mut tx, period_id).await?.as_deref() != Some("open") {
        return Err(period_closed());
    }
    if let Err(err) = store::insert_proposal(tx.conn(), &row).await {
        let taken = matches!(&err, sqlx::Error::Database(db) if db.is_unique_violation());
        if taken && input.proposal_id.is_some() {
            // A resend that raced its first attempt: answer as a resend does.
            drop(tx);
            let mut conn = state.db.pool.acquire().await?;
            if let Some(p) = replayed(&mut conn, &scope, row.id, &sha).await? {
                return Ok((StatusCode::OK, Json(p)));
            }
        }
        return Err(err.into());
    }
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
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProposalQuery {
    /// `proposed`, `approved` or `rejected`.
    pub status: Option<String>,
}

/// Deduction proposals in the caller's scope, newest first (at most 500).
#[utoipa::path(get, path = "/v1/deductions", operation_id = "list_proposals", tag = "ledger", security(("bearer" = [])), params(ProposalQuery),
    responses((status = 200, body = Vec<Proposal>)))]
async fn list_proposals(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ProposalQuery>,
) -> ApiResult<Json<Vec<Proposal>>> {
    require_supervisor(&user)?;
    let scope = user.scope(&state.db).await?;
    let rows = store::proposals(&state.db.pool, scope.zones(), q.status.as_deref(), 500).await?;
    Ok(Json(rows.iter().map(proposal_view).collect()))
}

#[utoipa::path(get, path = "/v1/deductions/{id}", operation_id = "get_proposal", tag = "ledger", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Proposal), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get_proposal(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<Proposal>> {
    require_supervisor(&user)?;
    let p = store::proposal(&state.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("deduction"))?;
    user.scope(&state.db)
        .await?
        .check_visible(p.zone_id, "deduction")?;
    Ok(Json(proposal_view(&p)))
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
    #[schema(value_type = Vec<crate::store::review::RosterPerson>)]
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
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// An entry as the API shows it. Its ids and lists are stored as text (the hash covers that
/// text); text that does not parse is a decode error, never a nil id or an empty list.
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
    })
}

/// Approve a proposal (supervisors other than its proposer, unless the server turns the
/// four-eyes rule off: `self_approval`): the deduction is posted to the ledger with the zone's
/// coefficient for the period, the roster of the zone at the time of the finding and, for a
/// case, the case version and the hashes of its evidence, which must be complete and verified.
/// The case is locked. Of two concurrent approvals exactly one posts; the other gets 409, and
/// so does an approval on a case whose deduction stands (`case_already_deducted`).
#[utoipa::path(post, path = "/v1/deductions/{id}/approve", operation_id = "approve_proposal", tag = "ledger", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = LedgerEntry), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<LedgerEntry>> {
    require_supervisor(&user)?;
    let scope = user.scope(&state.db).await?;
    let mut tx = state.db.begin_write().await?;
    let (view, pending) = approve_in(&state, &mut tx, &user, &scope, id, None).await?;
    crate::store::ledger_log::issue_checkpoint(tx.conn(), state.keys.as_ref()).await?;
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// Approves proposal `id` inside `tx` (see [`approve`]), refusing one that is not of `period`
/// when given; returns the entry and the change-log rows to append last.
async fn approve_in(
    state: &AppState,
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
    if p.status != "proposed" {
        return Err(already());
    }
    if state.config.deductions.four_eyes && p.proposed_by == user.user_id {
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
            .is_none_or(|q| q.status != "proposed")
        {
            return Err(already());
        }
        if let Some(held) = store::standing_deduction_of_case(tx.conn(), case_id).await? {
            return Err(ApiError::new(
                ErrorCode::CaseAlreadyDeducted,
                "the case already has an approved deduction: reverse it to correct it",
            )
            .with_details(json!({ "proposal_id": held })));
        }
        let case = cases::get(tx.conn(), case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case"))?;
        evidence = deductible(tx.conn(), &case, true).await?;
        case_row = Some(case);
    }
    if store::lock_period(tx, p.period_id).await?.as_deref() != Some("open") {
        return Err(period_closed());
    }
    let coefficient = reference::coefficients(tx.conn(), p.period_id)
        .await?
        .into_iter()
        .find(|c| c.zone_id == p.zone_id)
        .and_then(|c| Milli::from_f64(c.coefficient, 10.0))
        .ok_or_else(|| ApiError::conflict("no coefficient is set for this zone and period"))?;
    let rulebook_version: i64 = reference::rulebooks(&state.db.pool)
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
        "approved",
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
            reason: None,
            prev_hash: String::new(),
            hash: String::new(),
            proposed_by: Some(p.proposed_by.to_string()),
        },
    )
    .await?;
    let mut pending = Vec::new();
    if let Some(mut case) = case_row {
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
            "case",
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

/// A decision on a proposal of another period, asked for while closing one.
fn not_of_period(id: Uuid) -> ApiError {
    let reason = "a proposal of another period";
    ApiError::invalid("decisions", reason)
        .with_details(json!({ "path": "decisions", "reason": reason, "proposal_id": id }))
}

/// A rejection or reversal must say why: 1 to 2000 characters after trimming.
fn required_reason(reason: &str) -> ApiResult<&str> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 {
        return Err(ApiError::invalid(
            "reason",
            "required, at most 2000 characters",
        ));
    }
    Ok(reason)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub reason: String,
}

/// Reject a proposal (supervisors); the reason is required.
#[utoipa::path(post, path = "/v1/deductions/{id}/reject", operation_id = "reject_proposal", tag = "ledger", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = DecisionInput,
    responses((status = 200, body = Proposal), (status = 404, body = gridline_sync::ErrorBody),
        (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn reject(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(input): Json<DecisionInput>,
) -> ApiResult<Json<Proposal>> {
    require_supervisor(&user)?;
    let reason = required_reason(&input.reason)?;
    let scope = user.scope(&state.db).await?;
    let mut tx = state.db.begin_write().await?;
    let after = reject_in(&mut tx, &user, &scope, id, reason, None).await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Rejects proposal `id` inside `tx` (see [`reject`]), refusing one that is not of `period`
/// when given.
async fn reject_in(
    tx: &mut WriteTx,
    user: &AuthUser,
    scope: &Scope,
    id: Uuid,
    reason: &str,
    period: Option<Uuid>,
) -> ApiResult<Proposal> {
    let p = store::proposal(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("deduction"))?;
    scope.check_visible(p.zone_id, "deduction")?;
    if period.is_some_and(|period| period != p.period_id) {
        return Err(not_of_period(id));
    }
    if !store::decide_proposal(tx.conn(), id, "rejected", user.user_id, Some(reason), None).await? {
        return Err(ApiError::conflict("the deduction has already been decided"));
    }
    let after = store::proposal(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("deduction"))?;
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
    Ok(proposal_view(&after))
}

// ---- the ledger -------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    pub period_id: Option<Uuid>,
    pub zone_id: Option<Uuid>,
    /// The `next` value of the previous page.
    pub after: Option<i64>,
    /// 1 to 1000, default 200.
    pub limit: Option<i64>,
}

/// Ledger entries in chain order (zones in the caller's scope).
#[utoipa::path(get, path = "/v1/ledger", operation_id = "list_ledger_entries", tag = "ledger", security(("bearer" = [])), params(LedgerQuery),
    responses((status = 200, body = Page<LedgerEntry>)))]
async fn list_entries(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<Json<Page<LedgerEntry>>> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let zones = scoped_zones(&state, &user, q.zone_id).await?;
    let rows = store::entries(
        &state.db.pool,
        q.period_id,
        zones.as_deref(),
        q.after.unwrap_or(0),
        limit + 1,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    let items = rows
        .iter()
        .take(limit as usize)
        .map(entry_view)
        .collect::<Result<Vec<LedgerEntry>, _>>()?;
    let next = if more {
        items.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(Json(Page { items, next }))
}

/// The caller's zones, narrowed to `zone` if given.
pub async fn scoped_zones(
    state: &AppState,
    user: &AuthUser,
    zone: Option<Uuid>,
) -> ApiResult<Option<Vec<Uuid>>> {
    let scope = user.scope(&state.db).await?;
    Ok(match (scope.zones(), zone) {
        (None, None) => None,
        (None, Some(z)) => Some(vec![z]),
        (Some(zs), None) => Some(zs.to_vec()),
        (Some(zs), Some(z)) => Some(zs.iter().copied().filter(|x| *x == z).collect()),
    })
}

#[utoipa::path(get, path = "/v1/ledger/entries/{id}", operation_id = "get_ledger_entry", tag = "ledger", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = LedgerEntry), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get_entry(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<LedgerEntry>> {
    let e = store::entry(&state.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("ledger entry"))?;
    user.scope(&state.db).await?.check_visible(
        parse_uuid("ledger_entries.zone_id", &e.zone_id)?,
        "ledger entry",
    )?;
    Ok(Json(entry_view(&e)?))
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

/// Reverse an entry (supervisors): a new entry with the points negated, pointing at the
/// original. An entry is reversed at most once and a reversal is never reversed. The reversal
/// goes into the original's period while it is open, otherwise into the open period of today.
#[utoipa::path(post, path = "/v1/ledger/entries/{id}/reverse", operation_id = "reverse_ledger_entry", tag = "ledger", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = ReversalInput,
    responses((status = 201, body = LedgerEntry), (status = 404, body = gridline_sync::ErrorBody),
        (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn reverse(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(input): Json<ReversalInput>,
) -> ApiResult<(StatusCode, Json<LedgerEntry>)> {
    require_supervisor(&user)?;
    let reason = required_reason(&input.reason)?;
    let scope = user.scope(&state.db).await?;
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
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
    let period_id = if store::lock_period(&mut tx, original_period)
        .await?
        .as_deref()
        == Some("open")
    {
        original_period
    } else {
        // The open period of today, else the next open one after the original's.
        let today = store::period_at(tx.conn(), now)
            .await?
            .filter(|(_, status)| status == "open")
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
        if store::lock_period(&mut tx, open).await?.as_deref() != Some("open") {
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
    crate::store::ledger_log::issue_checkpoint(tx.conn(), state.keys.as_ref()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyReport {
    /// Entries checked before the first break (all of them when `ok`).
    pub checked: i64,
    pub ok: bool,
    pub first_bad: Option<ChainBreak>,
}

/// Recompute the ledger's hash chain (supervisors) and report the first bad entry.
#[utoipa::path(get, path = "/v1/ledger/verify", operation_id = "verify_ledger", tag = "ledger", security(("bearer" = [])),
    responses((status = 200, body = VerifyReport)))]
async fn verify(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<VerifyReport>> {
    require_supervisor(&user)?;
    let (checked, first_bad) = store::verify_chain(&state.db.pool).await?;
    Ok(Json(VerifyReport {
        checked,
        ok: first_bad.is_none(),
        first_bad,
    }))
}

// ---- periods, scores and ranking --------------------------------------------------------------

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
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: time::OffsetDateTime,
}

/// The ranking of a period, computed from the ledger.
pub async fn compute_ranking(state: &AppState, period: &Period) -> ApiResult<Ranking> {
    let mut conn = state.db.pool.acquire().await?;
    let starts = ms_from_time(period.starts_at);
    let ends = ms_from_time(period.ends_at);
    let cutoff = period.closed_at.map(ms_from_time).unwrap_or_else(now_ms);
    let as_of = cutoff.min(ends);
    let zones = store::zone_refs(&mut *conn).await?;
    let groups = store::scored_groups(&mut *conn, period.id).await?;
    let indicators = store::indicators(&mut conn, starts, as_of).await?;
    Ok(scoring::compute_grouped(
        &period.id.to_string(),
        &period.code,
        &zones,
        &groups,
        &indicators,
    ))
}

/// Close a period (admins and supervisors): it takes no new ledger entries from now on. The
/// ranking is computed and stored with its formula version and hash.
///
/// A period closes once its end has passed (`period_not_ended` before; an admin may close it
/// early with `early`, and it then ends now) and when none of its proposals is pending
/// (`period_proposals_pending`, listing them in `details.proposals`; `decisions` decides them
/// in the same step, under the usual rules: four eyes, complete evidence). `next` opens the
/// following period where this one ends, with this one's coefficients. Nothing is done unless
/// all of it is.
#[utoipa::path(post, path = "/v1/periods/{id}/close", operation_id = "close_period", tag = "ledger", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body = CloseInput,
    responses((status = 200, body = ClosedPeriod), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn close_period(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(input): Json<CloseInput>,
) -> ApiResult<Json<ClosedPeriod>> {
    require_supervisor(&user)?;
    let scope = user.scope(&state.db).await?;
    let now = now_ms();
    let before = reference::period(&state.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    if before.status == PeriodStatus::Closed {
        return Err(period_closed());
    }
    let early = now < ms_from_time(before.ends_at);
    if early && !input.early {
        return Err(ApiError::new(
            ErrorCode::PeriodNotEnded,
            "the period has not ended yet: an admin may close it early (`early`)",
        )
        .with_details(json!({ "ends_at": rfc3339(ms_from_time(before.ends_at)) })));
    }
    if early {
        user.require_admin()?;
    }
    let reasons = input
        .decisions
        .iter()
        .map(|d| match d.decision {
            Decision::Approve => Ok(None),
            Decision::Reject => required_reason(d.reason.as_deref().unwrap_or_default()).map(Some),
        })
        .collect::<ApiResult<Vec<_>>>()?;

    let mut tx = state.db.begin_write().await?;
    let (mut approved, mut rejected, mut pending) = (Vec::new(), Vec::new(), Vec::new());
    // Decisions first: each takes its case's lock, then the period's, as an approval does.
    for (d, reason) in input.decisions.iter().zip(reasons) {
        match reason {
            None => {
                let (entry, changes) =
                    approve_in(&state, &mut tx, &user, &scope, d.proposal_id, Some(id)).await?;
                approved.push(entry);
                pending.extend(changes);
            }
            Some(reason) => {
                rejected.push(
                    reject_in(&mut tx, &user, &scope, d.proposal_id, reason, Some(id)).await?,
                );
            }
        }
    }
    // Under the period's lock: a proposal being made waits for the close, and then finds the
    // period closed.
    if store::lock_period(&mut tx, id).await?.as_deref() != Some("open") {
        return Err(period_closed());
    }
    let waiting = store::pending_proposals(tx.conn(), id).await?;
    if !waiting.is_empty() {
        let proposals: Vec<Proposal> = waiting.iter().map(proposal_view).collect();
        return Err(ApiError::new(
            ErrorCode::PeriodProposalsPending,
            format!(
                "{} proposal(s) of the period are pending: decide them first, or in the close (`decisions`)",
                proposals.len()
            ),
        )
        .with_details(json!({ "proposals": proposals })));
    }
    if early {
        store::end_period_at(tx.conn(), id, now).await?;
    }
    if !store::close_period(tx.conn(), id, user.user_id, now).await? {
        return Err(period_closed());
    }
    let period = Period {
        status: PeriodStatus::Closed,
        closed_at: Some(time_from_ms(now)),
        ends_at: if early {
            time_from_ms(now)
        } else {
            before.ends_at
        },
        ..before.clone()
    };
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "period.close",
        "period",
        &id.to_string(),
        Some(&before),
        Some(&period),
    )
    .await?;
    let next = match &input.next {
        Some(next) => {
            let opened = crate::periods::create_period_in(
                &mut tx,
                Some(user.user_id),
                &crate::model::PeriodInput {
                    code: next.code.clone(),
                    starts_at: period.ends_at,
                    ends_at: next.ends_at,
                },
            )
            .await?;
            crate::periods::copy_coefficients(&mut tx, user.user_id, id, opened.id).await?;
            Some(opened)
        }
        None => None,
    };
    pending.push(PendingChange::upsert("period", id, None));
    crate::store::ledger_log::issue_checkpoint(tx.conn(), state.keys.as_ref()).await?;
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    // Computed after the close has committed: no entry can join the period any more, so this
    // is the period's final ranking.
    let ranking = compute_ranking(&state, &period).await?;
    let body = serde_json::to_string(&ranking).map_err(ApiError::internal)?;
    let sha = hex::encode(Sha256::digest(body.as_bytes()));
    let mut tx = state.db.begin_write().await?;
    store::insert_result(tx.conn(), id, scoring::FORMULA_VERSION, &body, &sha).await?;
    tx.commit().await?;
    Ok(Json(ClosedPeriod {
        period,
        formula_version: scoring::FORMULA_VERSION.to_owned(),
        ranking_sha256: sha,
        approved,
        rejected,
        next,
    }))
}

/// Zone scores and the ranking of a period, with breakdowns by work category, source and
/// rule, and the field's indicators. Recomputed from the ledger on every call: the same ledger
/// gives the same bytes. Admins and supervisors see every zone, zone, road and section chiefs
/// the zones of their roster; inspectors and squad members get 403.
#[utoipa::path(get, path = "/v1/periods/{id}/ranking", operation_id = "get_period_ranking", tag = "ledger", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Ranking), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody)))]
async fn ranking(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<Ranking>> {
    let period = reference::period(&state.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    Ok(Json(visible_ranking(&state, &user, &period).await?))
}

/// The ranking of a period as `user` may see it: admins and supervisors see every zone; zone,
/// road and section chiefs see the rows of the zones their roster gives them (each with its
/// rank among all zones); inspectors and squad members, who are not assessed and must not be
/// swayed by the standings, see none (403).
pub async fn visible_ranking(
    state: &AppState,
    user: &AuthUser,
    period: &Period,
) -> ApiResult<Ranking> {
    let chief = [Role::ZoneChief, Role::RoadChief, Role::SectionChief]
        .iter()
        .any(|r| user.has(*r));
    if !user.is_supervisor_level() && !chief {
        return Err(ApiError::forbidden(
            "the ranking is for supervisors and the zones' chiefs",
        ));
    }
    let scope = user.scope(&state.db).await?;
    let mut ranking = compute_ranking(state, period).await?;
    ranking
        .zones
        .retain(|z| Uuid::parse_str(&z.zone_id).is_ok_and(|z| scope.contains(z)));
    Ok(ranking)
}
