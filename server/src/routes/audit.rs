//! Reading the audit log (admin).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{AuditRecord, Page};
use crate::routes::extract::{Json, Query};
use crate::state::AppState;
use crate::store::{audit, time_from_ms};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records about this kind of entity (e.g. `zone`, `roster`, `device`).
    pub entity: Option<String>,
    /// The `next` value of the previous page.
    pub before: Option<String>,
    /// 1 to 500, default 100.
    pub limit: Option<i64>,
}

/// The audit log, newest first (admin).
#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit_events", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Page<AuditRecord>)))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    user.require_admin()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    let rows = audit::list(
        &state.db.pool,
        q.entity.as_deref(),
        limit + 1,
        q.before.as_deref(),
    )
    .await?;
    let parse = |s: &Option<String>| s.as_deref().and_then(|t| serde_json::from_str(t).ok());
    let mut items: Vec<AuditRecord> = rows
        .iter()
        .map(|r| AuditRecord {
            id: r.id.clone(),
            actor_id: r.actor_id.clone(),
            action: r.action.clone(),
            entity: r.entity.clone(),
            entity_id: r.entity_id.clone(),
            before: parse(&r.before),
            after: parse(&r.after),
            at: time_from_ms(r.at),
        })
        .collect();
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Json(Page { items, next }))
}
