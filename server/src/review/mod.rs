//! Case review: moving a case through the workflow (the one table of
//! `gridline_sync::workflow`), reading its workflow side, and the review queue ([`queue`]).

use gridline_sync::case::CaseState;
use gridline_sync::ops::{CaseTransitionV1, PhotoManifest, PhotoRole, TransitionAction};
use gridline_sync::workflow::{self, WorkflowAction, WorkflowActor, WorkflowInput};
use gridline_sync::{EntityKind, ErrorCode, Operation, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::CaseView;
use crate::store::cases::{self, EventRow, PhotoRow};
use crate::store::changes::{self, PendingChange};
use crate::store::review::{self as store_review, Workflow};
use crate::store::{audit, ms_from_time, new_id, now_ms, rfc3339, Db};
use crate::sync::view::case_views;
use crate::workdays::{TimeLimit, WorkWeek};

pub mod overview;
pub mod queue;

/// Rectification time when the taxonomy entry sets none.
pub const DEFAULT_TIME_LIMIT_HOURS: i64 = 72;

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
    pub fn as_str(self) -> &'static str {
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

pub fn workflow_view(
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

/// Moves a case through the workflow (`gridline_sync::workflow`, the one table): supervisors
/// file, reject, mark duplicates, dispatch, close, return and reopen; the people a case is
/// dispatched to start and report it rectified. The transition is an event on the case and
/// reaches phones through the pull; returns the case as it stands after.
pub async fn transition_case(
    db: &Db,
    week: &WorkWeek,
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
    let scope = user.scope(db).await?;
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    store_review::lock_cases(&mut tx, &[id]).await?;
    let mut case = cases::get(tx.conn(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    scope
        .check_case_visible(tx.conn(), user, id, case.zone_id)
        .await?;
    let assignees = store_review::assignees(tx.conn(), &[id])
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
    let mut wf = store_review::workflows(tx.conn(), &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let mut data = json!({ "action": req.action.as_str() });
    // Who is told of this transition (a notice in the same transaction).
    let mut notify_to: Vec<(crate::notify::NoticeKind, Vec<Uuid>)> = Vec::new();
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
            // Every reporter of the duplicate is called back on the case that goes on.
            let moved = crate::store::intake::copy_callers(tx.conn(), id, original, now).await?;
            if moved > 0 {
                data["callers_merged"] = json!(moved);
            }
        }
        WorkflowAction::Dispatch => {
            let target = req.target.unwrap_or(DispatchTarget::Accountable);
            let people = match target {
                DispatchTarget::Accountable => {
                    store_review::roster_at(
                        tx.conn(),
                        case.zone_id,
                        &[Role::RoadChief, Role::SectionChief],
                        false,
                        now,
                    )
                    .await?
                }
                DispatchTarget::Squad => {
                    store_review::roster_at(
                        tx.conn(),
                        case.zone_id,
                        &[Role::SquadMember],
                        true,
                        now,
                    )
                    .await?
                }
            };
            if people.is_empty() {
                return Err(ApiError::conflict(format!(
                    "nobody is on the roster as {} for this zone",
                    target.as_str()
                )));
            }
            let limit = store_review::taxonomy_terms(tx.conn(), &case.category_code)
                .await?
                .and_then(|(limit, _)| limit)
                .unwrap_or(TimeLimit::Hours(DEFAULT_TIME_LIMIT_HOURS));
            let calendar = crate::workcalendar::load(tx.conn(), week).await?;
            let deadline = calendar.deadline(now, limit);
            wf.time_limit_working_ms = calendar.working_ms(limit);
            let assigned: Vec<(Uuid, Role)> = people
                .iter()
                .filter_map(|p| {
                    Role::ALL
                        .iter()
                        .find(|r| r.as_str() == p.role)
                        .map(|r| (p.user_id, *r))
                })
                .collect();
            store_review::assign(tx.conn(), id, &assigned, now).await?;
            notify_to.push((
                crate::notify::NoticeKind::CaseDispatched,
                assigned.iter().map(|(u, _)| *u).collect(),
            ));
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
                    gps_lat: p.gps.map(|g| g.to_wgs84().0),
                    gps_lon: p.gps.map(|g| g.to_wgs84().1),
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
            notify_to.push((crate::notify::NoticeKind::CaseReturned, assignees.clone()));
        }
        WorkflowAction::Reopen => wf.closed_at = None,
        WorkflowAction::Reject | WorkflowAction::Withdraw | WorkflowAction::Start => {}
    }
    let before = json!({ "state": case.state.as_str(), "version": case.version });
    let comment_for_notice = comment.clone();
    case.state = step.to;
    case.version += 1;
    case.updated_at = now;
    cases::update_case(tx.conn(), &case).await?;
    store_review::set_workflow(tx.conn(), id, &wf).await?;
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
    let mut pending = vec![PendingChange::upsert(
        EntityKind::Case,
        id,
        Some(case.zone_id.to_string()),
    )];
    for (kind, recipients) in notify_to {
        let notice = crate::notify::Notice {
            kind,
            case_id: Some(id),
            zone_id: Some(case.zone_id),
            data: json!({
                "category_code": case.category_code,
                "description": case.description,
                "state": case.state.as_str(),
                "deadline": wf.deadline_at.map(rfc3339),
                "comment": comment_for_notice,
                "by": user.user_id,
            }),
            recipients,
        };
        pending.extend(crate::notify::record(tx.conn(), notice, now).await?.changes);
    }
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
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    case_views(&mut db.reader().await?.reader(), Vec::new(), &[id])
        .await?
        .remove(&id)
        .ok_or_else(|| ApiError::not_found("case"))
}

/// The workflow side of case `id` as `user` may see it: dispatch, assignees, deadline, rework,
/// overdue.
pub async fn workflow_of(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<CaseWorkflow> {
    let case = cases::get(&db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let mut conn = db.pool.acquire().await?;
    user.scope(db)
        .await?
        .check_case_visible(&mut conn, user, id, case.zone_id)
        .await?;
    let wf = store_review::workflows(&mut conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let assignees = store_review::assignees(&mut conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    Ok(workflow_view(
        id,
        case.state,
        case.version,
        &wf,
        assignees,
        now_ms(),
    ))
}

/// The decisions `user` may take on `case` now, by the workflow's one table, given a reason
/// and an original where one is needed. `report_rectified`, which needs the after photos a
/// phone takes on site, is left to the phone.
pub fn possible_actions(
    user: &AuthUser,
    case: &CaseView,
    wf: &CaseWorkflow,
) -> Vec<WorkflowAction> {
    let actor = WorkflowActor {
        is_supervisor: user.is_supervisor_level(),
        is_reporter: case.reporter_id == user.user_id,
        is_assignee: wf.assignees.contains(&user.user_id),
    };
    let input = WorkflowInput {
        has_comment: true,
        has_after_photo: true,
        has_original: true,
    };
    WorkflowAction::ALL
        .iter()
        .copied()
        .filter(|a| *a != WorkflowAction::ReportRectified)
        .filter(|a| workflow::apply(*a, case.state, actor, input).is_ok())
        .collect()
}

/// How far apart in receipt time a report and the case it may duplicate can be.
pub const DUPLICATE_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

/// The cases a reviewer may mark `case` a duplicate of: the same zone and category, received
/// within [`DUPLICATE_WINDOW_MS`], nearest first (at most ten). The caller has read `case`, so
/// its zone is in their scope, and so are these.
pub async fn duplicate_candidates(
    db: &Db,
    case: &CaseView,
) -> ApiResult<Vec<store_review::DuplicateCandidate>> {
    Ok(store_review::duplicate_candidates(
        &db.pool,
        case.id,
        case.zone_id,
        &case.category_code,
        ms_from_time(case.received_at),
        DUPLICATE_WINDOW_MS,
        10,
    )
    .await?)
}

/// Takes each of `ids` through `action` on its own (file, dispatch or reject a selection in the
/// queue), each at the version it has now, with the same `comment`; returns each case's
/// outcome, so a refusal of one says why and leaves the others done.
pub async fn transition_each(
    db: &Db,
    week: &WorkWeek,
    user: &AuthUser,
    ids: &[Uuid],
    action: WorkflowAction,
    comment: Option<String>,
) -> Vec<(Uuid, ApiResult<()>)> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let result = async {
            let wf = workflow_of(db, user, id).await?;
            let req = TransitionRequest {
                action,
                base_version: wf.version,
                comment: comment.clone(),
                duplicate_of: None,
                target: None,
                photos: Vec::new(),
            };
            transition_case(db, week, user, id, req).await.map(|_| ())
        }
        .await;
        out.push((id, result));
    }
    out
}
