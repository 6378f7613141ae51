//! The month calendar of every plan the reader may see, and the coverage map of a zone: the
//! rounds' tracks of a month over it (`coverage::zone_coverage`), with the share it came near.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gridline_sync::ops::RoundKind;
use jiff::civil::Date;
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::map::{svg_with_tracks, Track};
use super::plans::{
    answer, kind_badge, month_nav, month_of_query, plans_layout, status_class, MonthQuery, WEEKDAYS,
};
use super::{failure, page, Console};
use crate::coverage::ZoneCoverage;
use crate::error::{ApiError, ApiResult};
use crate::exports::Names;
use crate::localtime;
use crate::model::Zone;
use crate::plans::{self, OccurrenceStatus, OccurrenceView};
use crate::state::AppState;
use crate::store::{self, ms_from_time, now_ms};

// ---- the calendar -----------------------------------------------------------------------------

/// `GET /console/calendar?month=YYYY-MM`: every visible plan's occurrences in a month grid,
/// Monday first, in the site's time zone.
pub async fn calendar(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Query(q): Query<MonthQuery>,
) -> Response {
    let rendered = calendar_page(&state, &c, &q).await;
    answer(&c, &headers, rendered)
}

async fn calendar_page(state: &AppState, c: &Console, q: &MonthQuery) -> ApiResult<Markup> {
    let (month, from, to) = month_of_query(c, q.month.as_deref())?;
    let occurrences = plans::calendar(&state.db, &c.session.user, from, to).await?;
    Ok(calendar_markup(c, &month, from, &occurrences))
}

/// The calendar of `month` (starting at `from`): a week a row, Monday first, each day with
/// its `occurrences`, coloured by status.
fn calendar_markup(
    c: &Console,
    month: &str,
    from: OffsetDateTime,
    occurrences: &[OccurrenceView],
) -> Markup {
    let first = localtime::civil(&c.tz, ms_from_time(from)).date();
    let days = first.days_in_month();
    let lead = usize::try_from(first.weekday().to_monday_zero_offset()).unwrap_or(0);
    let mut by_day: BTreeMap<i8, Vec<&OccurrenceView>> = BTreeMap::new();
    for o in occurrences {
        let day = localtime::civil(&c.tz, ms_from_time(o.starts_at)).day();
        by_day.entry(day).or_default().push(o);
    }
    // Leading blanks, the days, then trailing blanks to a whole week.
    let mut cells: Vec<Option<i8>> = vec![None; lead];
    cells.extend((1..=days).map(Some));
    while cells.len() % 7 != 0 {
        cells.push(None);
    }
    let today = localtime::civil(&c.tz, now_ms()).date();
    let title = c.t("console-plans-calendar");
    let body = html! {
        (month_nav(c, "/console/calendar", month))
        p.bar {
            span.legend.occ-upcoming { (c.t("console-occ-upcoming")) }
            span.legend.occ-open { (c.t("console-occ-open")) }
            span.legend.occ-done { (c.t("console-occ-done")) }
            span.legend.occ-missed { (c.t("console-occ-missed")) }
            span.hint { (c.ta("console-plans-calendar-count", &[("count", &occurrences.len().to_string())])) }
        }
        table.calendar {
            caption.sr-only { (title) " " (month) }
            thead { tr {
                @for d in WEEKDAYS { th scope="col" { (c.t(&format!("console-weekday-{}", d.to_ascii_lowercase()))) } }
            } }
            tbody {
                @for week in cells.chunks(7) {
                    tr {
                        @for cell in week {
                            @match cell {
                                None => td.blank {},
                                Some(day) => {
                                    @let date = Date::new(first.year(), first.month(), *day).ok();
                                    td class=[(date == Some(today)).then_some("today")] {
                                        div.day { (day) }
                                        @if let Some(list) = by_day.get(day) {
                                            ul {
                                                @for o in list {
                                                    li class={"occ occ-" (status_class(o.status))} {
                                                        a href={"/console/plans/" (o.plan_id) "?month=" (month)} {
                                                            (localtime::civil(&c.tz, ms_from_time(o.starts_at)).strftime("%H:%M").to_string())
                                                            " " (o.plan_name)
                                                        }
                                                        @if o.kind == RoundKind::Unannounced {
                                                            " " span.badge.warn { (c.t("console-plans-kind-unannounced")) }
                                                        }
                                                        span.sr-only { " · " (c.t(&format!("console-occ-{}", status_class(o.status)))) }
                                                        @if o.status == OccurrenceStatus::Missed {
                                                            span.missed-mark aria-hidden="true" { " ⚠" }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    plans_layout(c, "/console/calendar", &title, body)
}

// ---- the coverage map -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct CoverageQuery {
    zone: Option<String>,
    month: Option<String>,
}

/// `GET /console/coverage?zone=&month=`: a zone's tracks of a month over its map, with the
/// share of the zone they came near.
pub async fn coverage(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Query(q): Query<CoverageQuery>,
) -> Response {
    match coverage_page(&state, &c, &q).await {
        Ok(m) => super::map::with_tiles(&state, page(StatusCode::OK, m)),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn coverage_page(state: &AppState, c: &Console, q: &CoverageQuery) -> ApiResult<Markup> {
    let user = &c.session.user;
    let scope = user.scope(&state.db).await?;
    let zones = store::reference::zones(&state.db.pool, scope.zones()).await?;
    let (month, from, to) = month_of_query(c, q.month.as_deref())?;
    let chosen = match q.zone.as_deref().filter(|z| !z.is_empty()) {
        Some(z) => Some(
            Uuid::parse_str(z).map_err(|_| ApiError::invalid("zone", "not one of the choices"))?,
        ),
        None => zones.first().map(|z| z.id),
    };
    let title = c.t("console-coverage-title");
    let Some(zone_id) = chosen else {
        let body = html! { p.muted { (c.t("console-map-empty")) } };
        return Ok(plans_layout(c, "/console/coverage", &title, body));
    };
    let cov = crate::coverage::zone_coverage(&state.db, user, zone_id, from, to).await?;
    let zone: Vec<_> = zones.iter().filter(|z| z.id == zone_id).cloned().collect();
    let names = Names::load(&state.db).await?;
    let shown = CoveragePage {
        zones: &zones,
        zone_id,
        month: &month,
        coverage: &cov,
    };
    Ok(coverage_markup(c, state, &names, &zone, shown))
}

/// What the coverage page shows.
struct CoveragePage<'a> {
    /// The zones to choose from, the one shown, and the month.
    zones: &'a [Zone],
    zone_id: Uuid,
    month: &'a str,
    coverage: &'a ZoneCoverage,
}

/// The coverage page: the choice of zone and month, the share covered, the zone (`zone`) with
/// the rounds' tracks over it, and the rounds.
fn coverage_markup(
    c: &Console,
    state: &AppState,
    names: &Names,
    zone: &[Zone],
    shown: CoveragePage<'_>,
) -> Markup {
    let CoveragePage {
        zones,
        zone_id,
        month,
        coverage: cov,
    } = shown;
    let title = c.t("console-coverage-title");
    let tracks: Vec<Track> = cov
        .tracks
        .iter()
        .map(|t| Track {
            points: t.points.iter().map(|[lon, lat]| (*lat, *lon)).collect(),
            class: if t.kind == "unannounced" {
                "track unannounced"
            } else {
                "track"
            },
            label: format!(
                "{} · {}",
                names.user_label(&t.user_id.to_string()),
                c.time(ms_from_time(t.started_at))
            ),
        })
        .collect();
    let zone_name = names.zone_label(&zone_id.to_string(), c.lang);
    let map_title = c.ta(
        "console-coverage-map",
        &[("zone", &zone_name), ("month", month)],
    );
    let body = html! {
        form.filters method="get" action="/console/coverage" {
            div {
                label for="cov-zone" { (c.t("console-intake-zone")) }
                select #cov-zone name="zone" {
                    @for z in zones {
                        option value=(z.id) selected[z.id == zone_id] { (z.code) " " (z.translations.pick(c.lang, &z.name)) }
                    }
                }
            }
            div {
                label for="cov-month" { (c.t("console-coverage-month")) }
                input #cov-month type="month" name="month" value=(month);
            }
            button type="submit" { (c.t("console-coverage-show")) }
        }
        p.coverage-share #coverage-share {
            strong {
                (c.ta("console-coverage-share", &[
                    ("covered", &cov.cells_covered.to_string()),
                    ("cells", &cov.cells.to_string()),
                    ("percent", &format!("{:.1}", cov.percent)),
                ]))
            }
            " "
            span.muted { (c.ta("console-coverage-how", &[("cell", &format!("{:.0}", cov.cell_m))])) }
        }
        p.bar {
            span.legend.track { (c.t("console-coverage-track")) }
            span.legend.track-unannounced { (c.t("console-plans-kind-unannounced")) }
            span.hint { (c.ta("console-coverage-rounds", &[("count", &cov.tracks.len().to_string())])) }
        }
        div.mapbox {
            (svg_with_tracks(c, zone, &tracks, &[], 720.0, &map_title, state.config.console.map_tiles.as_ref()))
        }
        (super::map::attribution(state))
        @if !cov.tracks.is_empty() {
            table {
                thead { tr {
                    th { (c.t("console-plans-starts")) }
                    th { (c.t("console-coverage-inspector")) }
                    th { (c.t("console-plans-kind")) }
                    th.num { (c.t("console-coverage-points")) }
                } }
                tbody {
                    @for t in &cov.tracks {
                        tr {
                            td { (c.time(ms_from_time(t.started_at))) }
                            td { (names.user_label(&t.user_id.to_string())) }
                            td {
                                @if t.kind == "unannounced" { (kind_badge(c, RoundKind::Unannounced)) }
                                @else if t.kind == "periodic" { (kind_badge(c, RoundKind::Periodic)) }
                                @else { (c.t("console-coverage-routine")) }
                            }
                            td.num { (t.points.len()) }
                        }
                    }
                }
            }
        }
    };
    plans_layout(c, "/console/coverage", &title, body)
}
