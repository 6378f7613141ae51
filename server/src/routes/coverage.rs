//! How much of a zone the rounds walked in a period. The work is `crate::coverage`'s.

use axum::extract::State;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::coverage::{self, ZoneCoverage};
use crate::error::ApiResult;
use crate::routes::extract::{Json, PathParam, Query};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(zone_coverage))
}

/// A period of round starts, at most 366 days.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First start included, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[param(value_type = String, format = DateTime)]
    pub from: OffsetDateTime,
    /// First start excluded, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    #[param(value_type = String, format = DateTime)]
    pub to: OffsetDateTime,
}

/// The tracks of the rounds made in a zone that started in a period, and the share of the zone
/// they came near: its bounding box split into 50 m cells, those whose centre lies in the zone
/// counted, and covered when a track passes within 25 m. Only a zone in the caller's scope
/// (`404` otherwise); an unannounced round not yet revealed is left out for anyone but
/// planners, its inspector and its plan's assignees.
#[utoipa::path(get, path = "/v1/zones/{id}/coverage", operation_id = "get_zone_coverage", tag = "plans", security(("bearer" = [])),
    params(("id" = Uuid, Path), Period),
    responses((status = 200, body = ZoneCoverage), (status = 404, body = gridline_sync::ErrorBody),
        (status = 422, body = gridline_sync::ErrorBody)))]
async fn zone_coverage(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
    Query(period): Query<Period>,
) -> ApiResult<Json<ZoneCoverage>> {
    Ok(Json(
        coverage::zone_coverage(&state.db, &user, id, period.from, period.to).await?,
    ))
}
