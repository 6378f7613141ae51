//! The overview: what waits in the reader's scope (`review::overview`), who is behind, and the
//! current period's ranking so far.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::{failure, layout, page, Console, Section};
use crate::error::ApiError;
use crate::exports::Names;
use crate::i18n;
use crate::ledger::scoring::Ranking;
use crate::model::Period;
use crate::review::overview::Overview;
use crate::state::AppState;
use crate::store::now_ms;

pub async fn overview(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match overview_page(&state, &c).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn overview_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let user = &c.session.user;
    let overview = crate::review::overview::overview(&state.db, user, now_ms()).await?;
    let names = Names::load(&state.db).await?;
    let now = time::OffsetDateTime::now_utc();
    let current =
        crate::ledger::closing::current_ranking(&state.db, &state.rankings, user, now).await?;
    let (period, ranking) = match current {
        Some((p, r)) => (Some(p), r),
        None => (None, None),
    };
    Ok(overview_markup(
        c,
        &names,
        &overview,
        period.as_ref(),
        ranking.as_ref(),
    ))
}

/// The overview page: the counts as cards leading to the queue, the overdue cases per zone
/// and per person, and the ranking of `period` when the reader may see one.
fn overview_markup(
    c: &Console,
    names: &Names,
    overview: &Overview,
    period: Option<&Period>,
    ranking: Option<&Ranking>,
) -> Markup {
    let counts = &overview.counts;
    let cards = [
        (
            "console-awaiting",
            counts.awaiting,
            "/console/queue".to_owned(),
        ),
        (
            "console-incomplete",
            counts.incomplete,
            "/console/queue?evidence=incomplete".to_owned(),
        ),
        (
            "console-flagged",
            counts.flagged,
            "/console/queue?state=any&flagged=true".to_owned(),
        ),
        (
            "console-overdue",
            counts.overdue,
            "/console/queue?state=dispatched,in_progress&overdue=true".to_owned(),
        ),
    ];
    let body = html! {
        h1 { (c.t("console-overview-title")) }
        div.cards {
            @for (key, n, href) in &cards {
                div.card {
                    a href=(href) {
                        span.n { (n) }
                        span { (c.t(key)) }
                    }
                }
            }
        }
        @if !overview.overdue_by_zone.is_empty() {
            div.split {
                section {
                    h2 { (c.t("console-overdue-by-zone")) }
                    table {
                        thead { tr { th { (c.t("col-zone_name")) } th.num { (c.t("console-overdue")) } } }
                        tbody {
                            @for (zone, n) in &overview.overdue_by_zone {
                                tr {
                                    td { (names.zone_label(&zone.to_string(), c.lang)) }
                                    td.num { a href={"/console/queue?zone_id=" (zone) "&state=dispatched,in_progress&overdue=true"} { (n) } }
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { (c.t("console-overdue-by-person")) }
                    @if overview.overdue_by_person.is_empty() {
                        p.muted { (c.t("console-nobody-rostered")) }
                    } @else {
                        table {
                            thead { tr {
                                th { (c.t("console-person")) }
                                th { (c.t("console-role")) }
                                th { (c.t("console-zones")) }
                                th.num { (c.t("console-overdue")) }
                            } }
                            tbody {
                                @for p in &overview.overdue_by_person {
                                    tr {
                                        td { (names.user_label(&p.user_id.to_string())) }
                                        td { (i18n::name(c.lang, "role", p.role.as_str())) }
                                        td {
                                            @for (i, (zone, n)) in p.zones.iter().enumerate() {
                                                @if i > 0 { "、" }
                                                a href={"/console/queue?zone_id=" (zone) "&state=dispatched,in_progress&overdue=true"} {
                                                    (names.zone_label(&zone.to_string(), c.lang)) " (" (n) ")"
                                                }
                                            }
                                        }
                                        td.num { (p.overdue) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 {
            (c.t("console-ranking-title"))
            @if let Some(p) = period { " · " (p.code) }
        }
        @match (ranking, period) {
            (Some(r), Some(p)) => { (super::ranking_table(c, names, r, p.id)) }
            _ => { p.muted { (c.t("console-no-ranking")) } }
        }
    };
    layout(c, Section::Overview, &c.t("console-overview-title"), body)
}
