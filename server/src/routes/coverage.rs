//! How much of a zone the rounds walked in a period. The work is `crate::coverage`'s.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::coverage::{self, ZoneCoverage};
use crate::error::ApiResult;
use crate::routes::extract::{Json, PathParam, Query};
use crate::routes::plans::Range;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(zone_coverage))
}

/// The tracks of the rounds made in a zone that started in a period, and the share of the zone
/// they came near: its bounding box split into 50 m cells, those whose centre lies in the zone
/// counted, and covered when a track passes within 25 m. Only a zone in the caller's scope
/// (`404` otherwise); an unannounced round not yet revealed is left out for anyone but
/// planners, its inspector and its plan's assignees.
#[utoipa::path(get, path = "/v1/zones/{id}/coverage", operation_id = "get_zone_coverage", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path), Range),
    responses((status = 200, body = ZoneCoverage), (status = 404, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn zone_coverage(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Query(period): Query<Range>,
) -> ApiResult<Json<ZoneCoverage>> {
    Ok(Json(
        coverage::zone_coverage(&state.db, &user, id, period.from, period.to).await?,
    ))
}
