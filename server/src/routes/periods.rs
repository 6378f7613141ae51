//! Assessment periods and the zone difficulty coefficients set for each.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::{Coefficient, CoefficientInput, Period, PeriodInput};
use crate::routes::extract::{Json, PathParam};
use crate::state::AppState;
use crate::store::reference;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(coefficients))
        .routes(routes!(set_coefficient))
}

/// Every period, oldest first.
#[utoipa::path(get, path = "/v1/periods", operation_id = "list_periods", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Vec<Period>)))]
async fn list(State(state): State<AppState>, _user: AuthUser) -> ApiResult<Json<Vec<Period>>> {
    Ok(Json(reference::periods(&state.db.pool).await?))
}

/// Open a new period (admin): a calendar `month` in the site's time zone, or explicit
/// `starts_at` and `ends_at`. Periods may not overlap.
#[utoipa::path(post, path = "/v1/periods", operation_id = "create_period", tag = "reference", security(("bearer" = [])), request_body = PeriodInput,
    responses((status = 201, body = Period), (status = 409, body = gridline_sync::ErrorBody), (status = 422, body = gridline_sync::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Json(input): Json<PeriodInput>,
) -> ApiResult<(StatusCode, Json<Period>)> {
    user.require_admin()?;
    let tz = state.config.site.tz();
    let period = crate::periods::create_period(&state.db, Some(user.user_id), &input, &tz).await?;
    Ok((StatusCode::CREATED, Json(period)))
}

/// The zone coefficients set for a period (zones in the caller's scope).
#[utoipa::path(get, path = "/v1/periods/{id}/coefficients", operation_id = "list_coefficients", tag = "reference", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<Coefficient>), (status = 404, body = gridline_sync::ErrorBody)))]
async fn coefficients(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<Json<Vec<Coefficient>>> {
    reference::period(&state.db.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    let scope = user.scope(&state.db).await?;
    let all = reference::coefficients(&state.db.pool, id).await?;
    Ok(Json(
        all.into_iter()
            .filter(|c| scope.contains(c.zone_id))
            .collect(),
    ))
}

/// Set a zone's coefficient for an open period (admin). Ledger entries keep the coefficient
/// they used, so a later change never rewrites history.
#[utoipa::path(put, path = "/v1/periods/{id}/coefficients/{zone_id}", operation_id = "set_coefficient", tag = "reference", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("zone_id" = Uuid, Path)), request_body = CoefficientInput,
    responses((status = 200, body = Coefficient), (status = 404, body = gridline_sync::ErrorBody), (status = 409, body = gridline_sync::ErrorBody)))]
async fn set_coefficient(
    State(state): State<AppState>,
    user: AuthUser,
    PathParam((period_id, zone_id)): PathParam<(Uuid, Uuid)>,
    Json(input): Json<CoefficientInput>,
) -> ApiResult<Json<Coefficient>> {
    let set =
        crate::periods::set_coefficient(&state.db, &user, period_id, zone_id, input.coefficient)
            .await?;
    Ok(Json(set))
}
