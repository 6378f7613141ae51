//! Supervisor review: case transitions (the workflow of `gridline_sync::workflow`, decided
//! here) and the review queue.

use axum::extract::State;
use gridline_sync::case::CaseState;
use gridline_sync::ops::{CaseTransitionV1, PhotoManifest, PhotoRole, TransitionAction};
use gridline_sync::workflow::{self, WorkflowAction, WorkflowActor, WorkflowInput};
use gridline_sync::{ErrorCode, Operation, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{CaseView, Page, WorkCategory};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::cases::{self, EventRow, PhotoRow};
use crate::store::changes::{self, PendingChange};
use crate::store::review::{self, QueueFilter, Workflow};
use crate::store::{audit, ms_from_time, new_id, now_ms, rfc3339};
use crate::sync::view::case_views;

/// Rectification time when the taxonomy entry sets none.
pub const DEFAULT_TIME_LIMIT_HOURS: i64 = 72;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(transition))
        .routes(routes!(workflow_of))
        .routes(routes!(queue))
}

/// Who a case is dispatched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchTarget {
    /// The zone's road and section chiefs on the roster now.
    Accountable,
    /// The emergency squad.
    Squad,
}

impl DispatchTarget {
    fn as_str(self) -> &'static str {
        match self {
            DispatchTarget::Accountable => "accountable",
            DispatchTarget::Squad => "squad",
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub action: WorkflowAction,
    /// The case version the caller decided on; a newer version answers `stale_version`.
    pub base_version: i64,
    /// Required for `reject`, `return` and `reopen`.
    #[serde(default)]
    pub comment: Option<String>,
    /// `mark_duplicate`: the original case.
    #[serde(default)]
    pub duplicate_of: Option<Uuid>,
    /// `dispatch`: to whom (default `accountable`).
    #[serde(default)]
    pub target: Option<DispatchTarget>,
    /// `report_rectified`: the `after` photos.
    #[serde(default)]
    pub photos: Vec<PhotoManifest>,
}

/// The workflow side of a case: dispatch, deadline, rework.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaseWorkflow {
    pub case_id: Uuid,
    #[schema(value_type = String)]
    pub state: CaseState,
    pub version: i64,
    pub duplicate_of: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub filed_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub dispatched_at: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deadline: Option<time::OffsetDateTime>,
    pub dispatch_target: Option<String>,
    pub assignees: Vec<Uuid>,
    /// Rectifications sent back so far.
    pub rework_count: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<time::OffsetDateTime>,
    /// Dispatched or in progress with the deadline passed.
    pub overdue: bool,
}

fn workflow_view(
    case_id: Uuid,
    state: CaseState,
    version: i64,
    w: &Workflow,
    assignees: Vec<Uuid>,
    now: i64,
) -> CaseWorkflow {
    let t = |ms: Option<i64>| ms.map(crate::store::time_from_ms);
    CaseWorkflow {
        case_id,
        state,
        version,
        duplicate_of: w.duplicate_of,
        filed_at: t(w.filed_at),
        dispatched_at: t(w.dispatched_at),
        deadline: t(w.deadline_at),
        dispatch_target: w.dispatch_target.clone(),
        assignees,
        rework_count: w.rework_count,
        closed_at: t(w.closed_at),
        overdue: workflow::is_overdue(state, w.deadline_at, now),
    }
}

fn refusal(r: workflow::Refusal) -> ApiError {
    match r.field {
        Some(field) => ApiError::invalid(field, r.message),
        None => ApiError::new(r.code, r.message),
    }
}

/// Move a case through the workflow. Supervisors file, reject, mark duplicates, dispatch,
/// close, return and reopen; the people a case is dispatched to start and report it rectified
/// (phones do the same with `case.transition@1`). Every transition is an event on the case and
/// reaches phones through the pull.
#[utoipa::path(post, path = "/v1/cases/{id}/transitions", operation_id = "transition_case", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = TransitionRequest,
    responses((status = 200, body = CaseView), (status = 403, body = gridline_sync::ErrorBody),
        (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn transition(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Json(req): Json<TransitionRequest>,
) -> ApiResult<Json<CaseView>> {
    transition_case(&state, &user, id, req).await.map(Json)
}

/// Applies one workflow transition; see the `transition` handler.
pub async fn transition_case(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    req: TransitionRequest,
) -> ApiResult<CaseView> {
    let comment = req
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(ApiError::invalid("comment", "at most 2000 characters"));
    }
    if req.action == WorkflowAction::ReportRectified {
        let op = Operation::CaseTransitionV1(CaseTransitionV1 {
            case_id: id,
            base_version: req.base_version,
            action: TransitionAction::ReportRectified,
            comment: comment.clone(),
            photos: req.photos.clone(),
        });
        if let Err(errors) = op.validate() {
            if let Some(e) = errors.errors.first() {
                return Err(ApiError::invalid(&e.path, e.message.clone()));
            }
        }
    } else if !req.photos.is_empty() {
        return Err(ApiError::invalid(
            "photos",
            "only report_rectified takes photos",
        ));
    }
    let scope = user.scope(&state.db).await?;
    let now = now_ms();
    let mut tx = state.db.begin_write().await?;
    review::lock_cases(&mut tx, &[id]).await?;
    let mut case = cases::get(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    scope
        .check_case_visible(tx.conn(), user, id, case.zone_id)
        .await?;
    let assignees = review::assignees(tx.conn(), &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let actor = WorkflowActor {
        is_supervisor: user.is_supervisor_level(),
        is_reporter: case.reporter_id == user.user_id,
        is_assignee: assignees.contains(&user.user_id),
    };
    let input = WorkflowInput {
        has_comment: comment.is_some(),
        has_after_photo: req.photos.iter().any(|p| p.role == PhotoRole::After),
        has_original: req.duplicate_of.is_some(),
    };
    let step = workflow::apply(req.action, case.state, actor, input).map_err(refusal)?;
    if req.base_version != case.version {
        return Err(ApiError::new(
            ErrorCode::StaleVersion,
            format!(
                "the case is at version {}, not {}: reload it and decide again",
                case.version, req.base_version
            ),
        )
        .with_details(json!({ "version": case.version })));
    }
    let mut wf = review::workflows(tx.conn(), &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let mut data = json!({ "action": req.action.as_str() });
    match req.action {
        WorkflowAction::File => {
            wf.filed_at.get_or_insert(now);
        }
        WorkflowAction::MarkDuplicate => {
            let original = req.duplicate_of.unwrap_or_default();
            if original == id {
                return Err(ApiError::invalid(
                    "duplicate_of",
                    "a case cannot duplicate itself",
                ));
            }
            let found = cases::get(tx.conn(), original)
                .await?
                .filter(|o| scope.contains(o.zone_id));
            if found.is_none() {
                return Err(ApiError::invalid("duplicate_of", "no such case"));
            }
            wf.duplicate_of = Some(original);
            data["duplicate_of"] = json!(original);
        }
        WorkflowAction::Dispatch => {
            let target = req.target.unwrap_or(DispatchTarget::Accountable);
            let people = match target {
                DispatchTarget::Accountable => {
                    review::roster_at(
                        tx.conn(),
                        case.zone_id,
                        &[Role::RoadChief, Role::SectionChief],
                        false,
                        now,
                    )
                    .await?
                }
                DispatchTarget::Squad => {
                    review::roster_at(tx.conn(), case.zone_id, &[Role::SquadMember], true, now)
                        .await?
                }
            };
            if people.is_empty() {
                return Err(ApiError::conflict(format!(
                    "nobody is on the roster as {} for this zone",
                    target.as_str()
                )));
            }
            let hours = review::taxonomy_terms(tx.conn(), &case.category_code)
                .await?
                .and_then(|(h, _)| h)
                .unwrap_or(DEFAULT_TIME_LIMIT_HOURS);
            let deadline = now + hours * 3_600_000;
            let assigned: Vec<(Uuid, Role)> = people
                .iter()
                .filter_map(|p| {
                    Role::ALL
                        .iter()
                        .find(|r| r.as_str() == p.role)
                        .map(|r| (p.user_id, *r))
                })
                .collect();
            review::assign(tx.conn(), id, &assigned, now).await?;
            wf.dispatched_at = Some(now);
            wf.deadline_at = Some(deadline);
            wf.dispatch_target = Some(target.as_str().to_owned());
            data["target"] = json!(target);
            data["assignees"] = json!(people);
            data["deadline"] = json!(rfc3339(deadline));
        }
        WorkflowAction::ReportRectified => {
            let rows: Vec<PhotoRow> = req
                .photos
                .iter()
                .map(|p| PhotoRow {
                    case_id: id,
                    sha256: p.sha256.clone(),
                    size: p.size as i64,
                    captured_at: ms_from_time(p.captured_at),
                    gps_lat: p.gps.as_ref().map(|g| g.lat),
                    gps_lon: p.gps.as_ref().map(|g| g.lon),
                    role: "after".into(),
                    declared_by: user.user_id,
                    declared_at: now,
                })
                .collect();
            let known = cases::photo_keys(tx.conn(), &[id]).await?;
            let fresh: Vec<PhotoRow> = rows
                .into_iter()
                .filter(|p| !known.contains(&(id, p.sha256.clone())))
                .collect();
            cases::insert_photos(tx.conn(), &fresh).await?;
        }
        WorkflowAction::Close => wf.closed_at = Some(now),
        WorkflowAction::Return => {
            wf.rework_count += 1;
            data["rework"] = json!(wf.rework_count);
        }
        WorkflowAction::Reopen => wf.closed_at = None,
        WorkflowAction::Reject | WorkflowAction::Withdraw | WorkflowAction::Start => {}
    }
    let before = json!({ "state": case.state.as_str(), "version": case.version });
    case.state = step.to;
    case.version += 1;
    case.updated_at = now;
    cases::update_case(tx.conn(), &case).await?;
    review::set_workflow(tx.conn(), id, &wf).await?;
    cases::insert_events(
        tx.conn(),
        &[EventRow {
            id: new_id(),
            case_id: id,
            version: case.version,
            kind: "transition".into(),
            actor_id: user.user_id,
            from_state: Some(step.from.as_str().into()),
            to_state: Some(step.to.as_str().into()),
            comment,
            data: Some(data.to_string()),
            at: now,
        }],
    )
    .await?;
    if user.is_supervisor_level() {
        audit::record(
            tx.conn(),
            Some(user.user_id),
            &format!("case.{}", req.action.as_str()),
            "case",
            &id.to_string(),
            Some(&before),
            Some(&json!({ "state": case.state.as_str(), "version": case.version, "data": data })),
        )
        .await?;
    }
    changes::append(
        tx.conn(),
        &[PendingChange::upsert(
            "case",
            id,
            Some(case.zone_id.to_string()),
        )],
    )
    .await?;
    tx.commit().await?;
    case_views(&mut state.db.reader().await?.reader(), Vec::new(), &[id])
        .await?
        .remove(&id)
        .ok_or_else(|| ApiError::not_found("case"))
}

/// The workflow side of a case: dispatch, assignees, deadline, rework, overdue.
#[utoipa::path(get, path = "/v1/cases/{id}/workflow", operation_id = "get_case_workflow", tag = "review", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CaseWorkflow), (status = 404, body = gridline_sync::ErrorBody)))]
async fn workflow_of(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<CaseWorkflow>> {
    let case = cases::get(&state.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let mut conn = state.db.pool.acquire().await?;
    user.scope(&state.db)
        .await?
        .check_case_visible(&mut conn, &user, id, case.zone_id)
        .await?;
    let wf = review::workflows(&mut conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let assignees = review::assignees(&mut conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(Json(workflow_view(
        id,
        case.state,
        case.version,
        &wf,
        assignees,
        now_ms(),
    )))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceFilter {
    Complete,
    Incomplete,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    pub zone_id: Option<Uuid>,
    /// Taxonomy key, e.g. `event:0102`.
    pub category: Option<String>,
    pub work_category: Option<WorkCategory>,
    /// `inspection`, …
    pub source: Option<String>,
    /// Default: `reported` and `pending_verification` (what waits for a supervisor).
    /// `any` for every state.
    pub state: Option<String>,
    #[param(value_type = Option<String>)]
    pub evidence: Option<EvidenceFilter>,
    /// Only cases with this integrity flag, e.g. `location_outside_zone`.
    pub flag: Option<String>,
    /// Only cases with (`true`) or without (`false`) integrity flags.
    pub flagged: Option<bool>,
    pub overdue: Option<bool>,
    /// The `next` value of the previous page.
    pub after: Option<String>,
    /// 1 to 200, default 50.
    pub limit: Option<i64>,
}

/// A photo of the evidence with its verification status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidencePhoto {
    pub sha256: String,
    /// `before` or `after`.
    pub role: String,
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: time::OffsetDateTime,
    /// `[lat, lon]` from the phone, if any.
    pub gps: Option<[f64; 2]>,
    pub size: i64,
    /// `verified`, `rejected`, or `missing` (the bytes have not arrived).
    pub status: String,
    /// Thumbnail and preview of a photo that arrived: `pending`, `ready` (links can be asked
    /// for), `failed`, `undecodable` (its image data cannot be decoded: the original is kept as
    /// it arrived, and the case view flags it `photo_undecodable`) or `none` (HEIC, not
    /// decoded). Absent while the photo is missing.
    pub derivatives: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvidenceSummary {
    /// At least one photo, and every declared photo received and verified.
    pub complete: bool,
    pub photos: Vec<EvidencePhoto>,
    /// The case's integrity flags, and `photo_reused` when another case declares one of its
    /// photos too.
    pub flags: Vec<String>,
}

/// One case waiting for review, with everything needed to decide.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueItem {
    pub case: CaseView,
    pub evidence: EvidenceSummary,
    pub workflow: CaseWorkflow,
}

fn parse_cursor(text: &str) -> Option<(i64, Uuid)> {
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, Uuid::parse_str(id).ok()?))
}

/// The review queue (supervisors): cases in scope, filtered, oldest received first, paged by
/// an opaque cursor. Each item carries the case, its evidence with verification status and
/// flags, and its workflow.
#[utoipa::path(get, path = "/v1/review/queue", operation_id = "get_review_queue", tag = "review", security(("bearer" = [])), params(QueueQuery),
    responses((status = 200, body = Page<QueueItem>), (status = 403, body = gridline_sync::ErrorBody)))]
async fn queue(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<Page<QueueItem>>> {
    user.require_any(&[Role::Supervisor])?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    let states = match q.state.as_deref() {
        None => Some(vec![
            "reported".to_owned(),
            "pending_verification".to_owned(),
        ]),
        Some("any") => None,
        Some(s) => {
            let list: Vec<String> = s.split(',').map(str::to_owned).collect();
            if let Some(bad) = list
                .iter()
                .find(|s| !CaseState::ALL.iter().any(|c| c.as_str() == s.as_str()))
            {
                return Err(ApiError::invalid("state", format!("unknown state {bad}")));
            }
            Some(list)
        }
    };
    let after = match &q.after {
        None => None,
        Some(t) => Some(parse_cursor(t).ok_or_else(|| ApiError::invalid("after", "bad cursor"))?),
    };
    let zones = crate::ledger::closing::scoped_zones(&state.db, &user, q.zone_id).await?;
    let mut category_codes: Option<Vec<String>> = q.category.clone().map(|c| vec![c]);
    if let Some(wc) = q.work_category {
        let keys = review::category_keys(&state.db.pool, wc.as_str()).await?;
        category_codes = Some(match category_codes {
            Some(c) => c.into_iter().filter(|k| keys.contains(k)).collect(),
            None => keys,
        });
    }
    let now = now_ms();
    let filter = QueueFilter {
        zones,
        states,
        category_codes,
        source: q.source.clone(),
        evidence_complete: q.evidence.map(|e| e == EvidenceFilter::Complete),
        flag: q.flag.clone(),
        flagged: q.flagged,
        overdue: q.overdue,
        now,
        after,
        limit: limit + 1,
    };
    let rows = review::queue(&state.db.pool, &filter).await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let mut views = case_views(
        &mut state.db.reader().await?.reader(),
        state.db.spare_readers(3),
        &ids,
    )
    .await?;
    let mut conn = state.db.pool.acquire().await?;
    let mut workflows = review::workflows(&mut conn, &ids).await?;
    let mut assignees = review::assignees(&mut conn, &ids).await?;
    let photo_states = review::photo_status(&mut conn, &ids).await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(case) = views.remove(id) else {
            continue;
        };
        let photos: Vec<EvidencePhoto> = case
            .photos
            .iter()
            .map(|p| {
                let state = photo_states.get(&p.sha256).cloned().unwrap_or_default();
                EvidencePhoto {
                    sha256: p.sha256.clone(),
                    role: p.role.clone(),
                    captured_at: p.captured_at,
                    gps: p.gps,
                    size: p.size,
                    status: state.status.unwrap_or_else(|| "missing".to_owned()),
                    derivatives: state.derivatives,
                }
            })
            .collect();
        let complete = !photos.is_empty() && photos.iter().all(|p| p.status == "verified");
        // As on the case view: a photo another case declares too is flagged where the
        // supervisor decides.
        let mut flags = case.flags.clone();
        let reused = case.photos.iter().any(|p| {
            photo_states
                .get(&p.sha256)
                .is_some_and(|s| s.declaring_cases > 1)
        });
        if reused {
            flags.push(crate::evidence::flags::PHOTO_REUSED.to_owned());
        }
        let wf = workflows.remove(id).unwrap_or_default();
        let workflow = workflow_view(
            *id,
            case.state,
            case.version,
            &wf,
            assignees.remove(id).unwrap_or_default(),
            now,
        );
        items.push(QueueItem {
            evidence: EvidenceSummary {
                complete,
                photos,
                flags,
            },
            case,
            workflow,
        });
    }
    let next = if more {
        rows.last().map(|(id, at)| format!("{at}.{id}"))
    } else {
        None
    };
    Ok(Json(Page { items, next }))
}
