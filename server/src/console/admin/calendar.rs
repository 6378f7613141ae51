//! The working-day calendar on the reference page, for admins: this year's and next year's
//! holidays and make-up working days, and a year's file imported through `workcalendar`, as
//! the API does.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};

use super::{change, csrf, Fields};
use crate::console::Console;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_ms;
use crate::workcalendar::CalendarYear;

/// This year's and next year's calendars, this year first.
pub(super) async fn years(state: &AppState) -> Result<Vec<CalendarYear>, ApiError> {
    let week = state.config.work_week();
    let this_year = crate::localtime::civil(&week.tz, now_ms()).year();
    let mut years = Vec::new();
    for year in [this_year, this_year + 1] {
        years.push(crate::workcalendar::year(&state.db, &week, year).await?);
    }
    Ok(years)
}

/// The calendars of `years`, this year's open, and the form that imports a year's file.
pub(super) fn section(c: &Console, years: &[CalendarYear]) -> Markup {
    let this_year = years[0].year;
    let weekend: Vec<String> = years[0]
        .weekend
        .iter()
        .map(|d| c.t(&format!("console-weekday-{d}")))
        .collect();
    html! {
        h2 #calendar { (c.t("console-calendar")) }
        p.hint {
            (c.ta("console-calendar-hint", &[
                ("start", &years[0].day_start),
                ("end", &years[0].day_end),
                ("weekend", &weekend.join("、")),
            ]))
        }
        @for y in years {
            details open[y.year == this_year] {
                summary { (c.ta("console-calendar-year", &[("year", &y.year.to_string()), ("days", &y.days.len().to_string())])) }
                @if y.days.is_empty() {
                    p.muted { (c.t("console-calendar-empty")) }
                } @else {
                    table {
                        thead { tr {
                            th { (c.t("console-date")) }
                            th { (c.t("console-calendar-kind")) }
                            th { (c.t("console-name")) }
                        } }
                        tbody {
                            @for d in &y.days {
                                tr {
                                    td { (d.date) }
                                    td { (c.t(&format!("console-calendar-{}", d.kind))) }
                                    td { (d.name) }
                                }
                            }
                        }
                    }
                }
            }
        }
        form method="post" action="/console/admin/calendar" {
            (csrf(c))
            label for="calendar-csv" { (c.t("console-calendar-import")) }
            p.hint #calendar-csv-hint { (c.t("console-calendar-format")) }
            textarea #calendar-csv name="csv" rows="8" cols="60" required
                aria-describedby="calendar-csv-hint"
                placeholder="date,kind,name\n2027-01-01,holiday,元旦\n2027-02-07,workday,调休上班" {}
            button type="submit" { (c.t("console-calendar-import-button")) }
        }
    }
}

/// `POST /console/admin/calendar`: a pasted calendar file, through the same service as
/// `POST /v1/calendar`.
pub async fn import_calendar(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let text = f.raw("csv").unwrap_or("");
        crate::workcalendar::import(&state.db, Some(c.session.user.user_id), text).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/reference#calendar", run).await
}
