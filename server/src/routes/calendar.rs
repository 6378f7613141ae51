//! The working-day calendar: holidays and make-up working days that deadlines count.

use axum::body::Bytes;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::routes::extract::{Json, PathParam};
use crate::state::AppState;
use crate::workcalendar::{self, CalendarImport, CalendarYear};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .routes(routes!(year))
}

/// One year of the calendar: the working week (hours, days off, time zone) and the days that
/// differ from it (holidays, make-up working days).
#[utoipa::path(get, path = "/v1/calendar/{year}", operation_id = "get_calendar_year", tag = "reference", security(("bearer" = [])),
    params(("year" = i16, Path, minimum = 1970, maximum = 9998)),
    responses((status = 200, body = CalendarYear), (status = 422, body = gridline_sync::ErrorBody)))]
async fn year(
    State(state): State<AppState>,
    _user: AuthUser,
    PathParam(year): PathParam<i16>,
) -> ApiResult<Json<CalendarYear>> {
    Ok(Json(
        workcalendar::year(&state.db, &state.config.work_week(), year).await?,
    ))
}

/// Import holidays and make-up working days from CSV (admin): a header `date,kind,name`, then
/// one day per line, `kind` being `holiday` (休) or `workday` (班). Each year the file names
/// is replaced by the file's days of that year; other years stay. A bad line refuses the
/// whole file, naming the line. Deadlines already set keep the calendar they were counted on.
#[utoipa::path(post, path = "/v1/calendar", operation_id = "import_calendar", tag = "reference", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = CalendarImport), (status = 422, body = gridline_sync::ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    body: Bytes,
) -> ApiResult<Json<CalendarImport>> {
    user.require_admin()?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::invalid("file", "not UTF-8 text"))?;
    Ok(Json(
        workcalendar::import(&state.db, Some(user.user_id), text).await?,
    ))
}
