//! Deductions and the ledger over HTTP: proposals, approval into the hash-chained ledger,
//! reversals, chain verification, closing periods and the ranking. The work is the ledger
//! service's (`ledger::proposals`, `ledger::posting`, `ledger::closing`); these handlers
//! parse, call it and answer.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::ledger::closing::{self, scoped_zones, visible_ranking};
use crate::ledger::posting::{self, entry_view};
use crate::ledger::proposals::{self, proposal_view, require_supervisor, Proposed};
use crate::ledger::scoring::Ranking;
use crate::ledger::views::{
    CloseInput, ClosedPeriod, DecisionInput, LedgerEntry, Proposal, ProposalInput, ReversalInput,
    VerifyReport,
};
use crate::model::Page;
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::ledger as store;
use crate::store::{parse_uuid, reference};

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
    Ok(
        match proposals::propose(&state.ledger_service(), &user, input).await? {
            Proposed::Created(p) => (StatusCode::CREATED, Json(p)),
            Proposed::Resent(p) => (StatusCode::OK, Json(p)),
        },
    )
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
    Ok(Json(
        posting::approve(&state.ledger_service(), &user, id).await?,
    ))
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
    Ok(Json(
        proposals::reject(&state.ledger_service(), &user, id, &input).await?,
    ))
}

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
    let zones = scoped_zones(&state.db, &user, q.zone_id).await?;
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
    let entry = posting::reverse(&state.ledger_service(), &user, id, &input).await?;
    Ok((StatusCode::CREATED, Json(entry)))
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
    Ok(Json(
        closing::close_period(&state.ledger_service(), &user, id, &input).await?,
    ))
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
    Ok(Json(
        visible_ranking(&state.db, &state.rankings, &user, &period).await?,
    ))
}
