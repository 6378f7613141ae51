//! Cases as the API shows them, with their conflicts, scoped by the roster.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{CaseConflict, CaseView, NewestFirst, Page};
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;
use crate::store::cases;
use crate::sync::view::{case_views, conflict_view, with_evidence};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(conflicts))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// Only cases in this state.
    pub state: Option<String>,
    /// The `next` value of the previous page.
    pub after: Option<Uuid>,
    /// 1 to 500, default 100.
    pub limit: Option<i64>,
}

/// Cases in the caller's scope (an unannounced inspection's cases only for supervisors and
/// their authors, until dispatched).
#[utoipa::path(get, path = "/v1/cases", operation_id = "list_cases", tag = "cases", security(("bearer" = [])), params(CaseQuery),
    responses((status = 200, body = Page<CaseView>)))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<CaseQuery>,
) -> ApiResult<Json<Page<CaseView>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    let scope = user.scope(&state.db).await?;
    let rows = cases::list(
        &state.db.pool,
        scope.zones(),
        q.state.as_deref(),
        q.after,
        limit + 1,
        user.confidential_reader(),
    )
    .await?;
    let more = rows.len() as i64 > limit;
    let ids: Vec<Uuid> = rows.iter().take(limit as usize).map(|c| c.id).collect();
    let mut views = case_views(
        &mut state.db.reader().await?.reader(),
        state.db.spare_readers(3),
        &ids,
    )
    .await?;
    let mut items: Vec<CaseView> = ids.iter().filter_map(|id| views.remove(id)).collect();
    with_evidence(&state.db, &mut items).await?;
    let next = if more {
        items.last().map(|c| c.id.to_string())
    } else {
        None
    };
    Ok(Json(Page { items, next }))
}

/// One case with its evidence manifest, history and conflicts (404 outside the scope).
#[utoipa::path(get, path = "/v1/cases/{id}", operation_id = "get_case", tag = "cases", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = CaseView), (status = 404, body = gridline_sync::ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<CaseView>> {
    let view = crate::sync::view::visible_case(&state.db, &user, id).await?;
    Ok(Json(view))
}

/// Recorded conflicts in the caller's scope, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/conflicts", operation_id = "list_conflicts", tag = "cases", security(("bearer" = [])), params(NewestFirst),
    responses((status = 200, body = Page<CaseConflict>), (status = 422, body = gridline_sync::ErrorBody)))]
async fn conflicts(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<NewestFirst>,
) -> ApiResult<Json<Page<CaseConflict>>> {
    let limit = q.limit()?;
    let scope = user.scope(&state.db).await?;
    let rows = cases::conflicts_in(
        &state.db.pool,
        scope.zones(),
        q.before,
        limit + 1,
        user.confidential_reader(),
    )
    .await?;
    let items = rows.iter().map(conflict_view).collect();
    Ok(Json(q.page(items, limit, |c: &CaseConflict| c.id)))
}
