//! The review queue: the cases waiting for a supervisor, filtered, with their evidence (each
//! photo's verification state and flags) and workflow, paged by an opaque cursor.

use gridline_sync::case::CaseState;
use gridline_sync::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::workflow_view;
use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{CaseView, Page, WorkCategory};
use crate::review::CaseWorkflow;
use crate::store::review::{self as store_review, QueueFilter};
use crate::store::{now_ms, Db};
use crate::sync::view::case_views;

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

/// A photo of the evidence with its verification status, as the queue lists it. (Named apart
/// from `evidence::EvidencePhoto`, the case view's, so the OpenAPI document has both.)
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueuePhoto {
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
pub struct QueueEvidence {
    /// At least one photo, and every declared photo received and verified.
    pub complete: bool,
    pub photos: Vec<QueuePhoto>,
    /// The case's integrity flags, and `photo_reused` when another case declares one of its
    /// photos too.
    pub flags: Vec<String>,
}

/// One case waiting for review, with everything needed to decide.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueItem {
    pub case: CaseView,
    pub evidence: QueueEvidence,
    pub workflow: CaseWorkflow,
}

/// Case `id` as one queue row, as it stands now (after a decision taken from the queue): its
/// view, evidence summary and workflow, if `user` may see it. The photos' details are left out,
/// as the row shows only thumbnails from the view.
pub async fn item(db: &Db, user: &AuthUser, id: Uuid) -> ApiResult<QueueItem> {
    let case = crate::sync::view::visible_case(db, user, id).await?;
    let workflow = super::workflow_of(db, user, id).await?;
    let evidence = case.evidence.clone();
    Ok(QueueItem {
        evidence: QueueEvidence {
            complete: evidence.as_ref().is_some_and(|e| e.complete),
            photos: Vec::new(),
            flags: evidence.map(|e| e.flags).unwrap_or_default(),
        },
        workflow,
        case,
    })
}

pub fn parse_cursor(text: &str) -> Option<(i64, Uuid)> {
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, Uuid::parse_str(id).ok()?))
}

/// The review queue for `user` (supervisors): cases in scope, filtered by `q`, oldest received
/// first.
pub async fn queue(db: &Db, user: &AuthUser, q: &QueueQuery) -> ApiResult<Page<QueueItem>> {
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
    let zones = crate::ledger::closing::scoped_zones(db, user, q.zone_id).await?;
    let mut category_codes: Option<Vec<String>> = q.category.clone().map(|c| vec![c]);
    if let Some(wc) = q.work_category {
        let keys = store_review::category_keys(&db.pool, wc.as_str()).await?;
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
    let rows = store_review::queue(db, &filter).await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let mut views = case_views(&mut db.reader().await?.reader(), db.spare_readers(3), &ids).await?;
    let mut conn = db.pool.acquire().await?;
    let mut workflows = store_review::workflows(&mut conn, &ids).await?;
    let mut assignees = store_review::assignees(&mut conn, &ids).await?;
    let photo_states = store_review::photo_status(&mut conn, &ids).await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(case) = views.remove(id) else {
            continue;
        };
        let photos: Vec<QueuePhoto> = case
            .photos
            .iter()
            .map(|p| {
                let state = photo_states.get(&p.sha256).cloned().unwrap_or_default();
                QueuePhoto {
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
            evidence: QueueEvidence {
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
    Ok(Page { items, next })
}
