//! Inspection plans in the console: the plans the reader may see and a plan's page (its
//! occurrences of a month, the rounds made, cancel and reveal, a sealed plan's proof), with what
//! the other plan pages share (the tabs, badges, recurrence in words, month navigation). The
//! editor is in `plan_editor`, the calendar and coverage map in `calendar`. The work is
//! `crate::plans`' and `crate::coverage`'s, called as the signed-in user, so an unannounced
//! plan and its rounds stay hidden here exactly as in the API.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gridline_sync::ops::RoundKind;
use gridline_sync::plan::PlanView;
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{failure, page, Console, Section};
use crate::error::{ApiError, ApiResult};
use crate::exports::Names;
use crate::i18n::Lang;
use crate::localtime;
use crate::plans::{self, OccurrenceStatus, OccurrenceView};
use crate::seal::{SealProblem, SealProof};
use crate::state::AppState;
use crate::store::ms_from_time;

/// The weekdays as RRULE writes them, Monday first.
pub(super) const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// Whether the navigation shows the plans to the signed-in user: planners, and inspectors
/// with a plan assigned to them.
pub fn shows_plans(c: &Console) -> bool {
    c.plans_assigned || plans::is_planner(&c.session.user)
}

pub(super) fn plans_layout(c: &Console, here: &str, title: &str, body: Markup) -> Markup {
    let mut tabs = vec![
        ("/console/plans", "console-plans-list"),
        ("/console/calendar", "console-plans-calendar"),
        ("/console/coverage", "console-coverage"),
    ];
    if plans::is_planner(&c.session.user) {
        tabs.push(("/console/plans/new", "console-plans-new"));
    }
    super::tabbed_layout(
        c,
        Section::Plans,
        "console-nav-plans",
        &tabs,
        here,
        title,
        body,
    )
}

pub(super) fn answer(c: &Console, headers: &HeaderMap, rendered: ApiResult<Markup>) -> Response {
    match rendered {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(c, headers, e),
    }
}

pub(super) fn kind_badge(c: &Console, kind: RoundKind) -> Markup {
    html! {
        @if kind == RoundKind::Unannounced {
            span.badge.warn { (c.t("console-plans-kind-unannounced")) }
        } @else {
            span.badge { (c.t("console-plans-kind-periodic")) }
        }
    }
}

fn status_badges(c: &Console, p: &PlanView) -> Markup {
    html! {
        @if p.cancelled_at.is_some() {
            span.badge.flag { (c.t("console-plans-cancelled")) } " "
        }
        @if p.kind == RoundKind::Unannounced {
            @if p.revealed_at.is_some() {
                span.badge.ok { (c.t("console-plans-revealed")) }
            } @else {
                span.badge { (c.t("console-plans-confidential")) }
            }
        } @else if p.cancelled_at.is_none() {
            span.badge.ok { (c.t("console-plans-active")) }
        }
    }
}

/// A recurrence in words, for the shapes the editor's presets make; `None` for any other rule
/// (the raw rule is always shown beside it).
fn rule_in_words(c: &Console, rrule: &str, dtstart: &str) -> Option<String> {
    let time = dtstart.split_once('T').map_or("", |(_, t)| t);
    let mut parts: BTreeMap<String, String> = BTreeMap::new();
    for part in rrule.split(';') {
        let (k, v) = part.split_once('=')?;
        parts.insert(k.trim().to_ascii_uppercase(), v.trim().to_ascii_uppercase());
    }
    if parts.get("INTERVAL").is_some_and(|i| i != "1") {
        return None;
    }
    parts.remove("INTERVAL");
    let freq = parts.remove("FREQ")?;
    match (freq.as_str(), parts.len()) {
        ("DAILY", 0) => Some(c.ta("console-plans-rule-daily", &[("time", time)])),
        ("WEEKLY", 1) => {
            let days = parts.get("BYDAY")?;
            let names: Option<Vec<String>> = days
                .split(',')
                .map(|d| {
                    WEEKDAYS
                        .contains(&d)
                        .then(|| c.t(&format!("console-weekday-{}", d.to_ascii_lowercase())))
                })
                .collect();
            let sep = if c.lang == Lang::ZhCn { "、" } else { ", " };
            Some(c.ta(
                "console-plans-rule-weekly",
                &[("days", &names?.join(sep)), ("time", time)],
            ))
        }
        ("MONTHLY", 1) => {
            let day: u8 = parts.get("BYMONTHDAY")?.parse().ok()?;
            Some(c.ta(
                "console-plans-rule-monthly",
                &[("day", &day.to_string()), ("time", time)],
            ))
        }
        _ => None,
    }
}

fn recurrence_cell(c: &Console, p: &PlanView) -> Markup {
    html! {
        @if let Some(words) = rule_in_words(c, &p.rrule, &p.dtstart) { (words) br; }
        code { (p.rrule) }
    }
}

fn window_text(c: &Console, minutes: u32) -> String {
    if minutes % 60 == 0 {
        c.ta("console-plans-hours", &[("n", &(minutes / 60).to_string())])
    } else {
        c.ta("console-plans-minutes", &[("n", &minutes.to_string())])
    }
}

// ---- the list ---------------------------------------------------------------------------------

/// `GET /console/plans`: the plans the reader may see.
pub async fn list(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    answer(&c, &headers, list_page(&state, &c).await)
}

async fn list_page(state: &AppState, c: &Console) -> ApiResult<Markup> {
    let all = plans::list(&state.db, &c.session.user).await?;
    let names = Names::load(&state.db).await?;
    Ok(list_markup(c, &names, &all))
}

/// The plans, each with its kind, recurrence, zones, people, next start and status.
fn list_markup(c: &Console, names: &Names, all: &[PlanView]) -> Markup {
    let title = c.t("console-plans-title");
    let body = html! {
        @if all.is_empty() {
            p.muted { (c.t("console-plans-none")) }
        } @else {
            table {
                thead { tr {
                    th { (c.t("console-plans-name")) }
                    th { (c.t("console-plans-kind")) }
                    th { (c.t("console-plans-recurrence")) }
                    th { (c.t("console-plans-zones")) }
                    th { (c.t("console-plans-assignees")) }
                    th { (c.t("console-plans-next")) }
                    th { (c.t("console-plans-status")) }
                } }
                tbody {
                    @for p in all {
                        tr {
                            td { a href={"/console/plans/" (p.id)} { (p.name) } }
                            td { (kind_badge(c, p.kind)) }
                            td { (recurrence_cell(c, p)) }
                            td { (zone_names(c, names, &p.zones)) }
                            td { (user_names(names, &p.assignees)) }
                            td {
                                @if let Some(o) = p.upcoming.first() {
                                    (c.time(ms_from_time(o.starts_at)))
                                } @else {
                                    span.muted { "—" }
                                }
                            }
                            td { (status_badges(c, p)) }
                        }
                    }
                }
            }
        }
    };
    plans_layout(c, "/console/plans", &title, body)
}

pub(super) fn zone_names(c: &Console, names: &Names, zones: &[Uuid]) -> String {
    let sep = if c.lang == Lang::ZhCn { "、" } else { ", " };
    zones
        .iter()
        .map(|z| names.zone_label(&z.to_string(), c.lang))
        .collect::<Vec<_>>()
        .join(sep)
}

pub(super) fn user_names(names: &Names, users: &[Uuid]) -> String {
    users
        .iter()
        .map(|u| names.user_label(&u.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- a plan's page ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct MonthQuery {
    pub(super) month: Option<String>,
    created: Option<String>,
}

/// The month asked for (`YYYY-MM`), or the current one, with its bounds.
pub(super) fn month_of_query(
    c: &Console,
    month: Option<&str>,
) -> ApiResult<(String, OffsetDateTime, OffsetDateTime)> {
    let month = month
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| localtime::month_of(&c.tz, OffsetDateTime::now_utc()));
    let (from, to) = localtime::month_span(&c.tz, &month)
        .ok_or_else(|| ApiError::invalid("month", "a month written YYYY-MM"))?;
    Ok((month, from, to))
}

/// The months before and after `month` (`YYYY-MM`).
fn neighbours(month: &str) -> (String, String) {
    let (y, m) = month.split_once('-').unwrap_or(("1970", "01"));
    let (y, m): (i32, i32) = (y.parse().unwrap_or(1970), m.parse().unwrap_or(1));
    let index = y * 12 + (m - 1);
    let fmt = |i: i32| format!("{:04}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1);
    (fmt(index - 1), fmt(index + 1))
}

pub(super) fn month_nav(c: &Console, base: &str, month: &str) -> Markup {
    let (prev, next) = neighbours(month);
    let join = if base.contains('?') { '&' } else { '?' };
    html! {
        p.bar.month-nav {
            a href={(base) (join) "month=" (prev)} rel="prev" { "← " (c.t("console-plans-prev-month")) }
            strong { (month) }
            a href={(base) (join) "month=" (next)} rel="next" { (c.t("console-plans-next-month")) " →" }
        }
    }
}

fn occurrence_status(c: &Console, s: OccurrenceStatus) -> Markup {
    match s {
        OccurrenceStatus::Upcoming => html! { span.badge { (c.t("console-occ-upcoming")) } },
        OccurrenceStatus::Open => html! { span.badge.warn { (c.t("console-occ-open")) } },
        OccurrenceStatus::Done => html! { span.badge.ok { (c.t("console-occ-done")) } },
        OccurrenceStatus::Missed => {
            html! { span.badge.flag { "⚠ " (c.t("console-occ-missed")) } }
        }
    }
}

pub(super) fn status_class(s: OccurrenceStatus) -> &'static str {
    match s {
        OccurrenceStatus::Upcoming => "upcoming",
        OccurrenceStatus::Open => "open",
        OccurrenceStatus::Done => "done",
        OccurrenceStatus::Missed => "missed",
    }
}

fn score_text(permille: Option<i64>) -> String {
    permille.map_or_else(|| "—".to_owned(), |p| format!("{}.{} %", p / 10, p % 10))
}

/// `GET /console/plans/{id}?month=YYYY-MM`.
pub async fn plan_page(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(q): Query<MonthQuery>,
) -> Response {
    let rendered = plan_markup(&state, &c, id, &q).await;
    answer(&c, &headers, rendered)
}

async fn plan_markup(state: &AppState, c: &Console, id: Uuid, q: &MonthQuery) -> ApiResult<Markup> {
    let user = &c.session.user;
    let plan = plans::get(&state.db, user, id).await?;
    let (month, from, to) = month_of_query(c, q.month.as_deref())?;
    let occurrences = plans::occurrences(&state.db, user, id, from, to).await?;
    let names = Names::load(&state.db).await?;
    let seal = if plan.kind == RoundKind::Unannounced {
        let proof = plans::seal_proof(&state.db, user, id).await?;
        let check = plans::check_seal(&state.keys, &proof);
        Some((proof, check))
    } else {
        None
    };
    let shown = PlanPage {
        plan: &plan,
        month: &month,
        occurrences: &occurrences,
        seal: seal.as_ref(),
        created: q.created.is_some(),
    };
    Ok(plan_page_markup(c, &names, shown))
}

/// What a plan's page shows.
struct PlanPage<'a> {
    plan: &'a PlanView,
    /// The month shown (`YYYY-MM`) and the plan's occurrences in it.
    month: &'a str,
    occurrences: &'a [OccurrenceView],
    /// An unannounced plan's seal, and its check with the server's key (see
    /// [`plans::check_seal`]).
    seal: Option<&'a (SealProof, Option<Vec<SealProblem>>)>,
    /// Whether the plan was made just now.
    created: bool,
}

/// A plan's page: its details and checklist, actions for planners, its seal, its occurrences
/// of the month and the rounds made.
fn plan_page_markup(c: &Console, names: &Names, shown: PlanPage<'_>) -> Markup {
    let PlanPage {
        plan,
        month,
        occurrences,
        seal,
        created,
    } = shown;
    let planner = plans::is_planner(&c.session.user);
    let missed = occurrences
        .iter()
        .filter(|o| o.status == OccurrenceStatus::Missed)
        .count();
    let done: Vec<&OccurrenceView> = occurrences
        .iter()
        .filter(|o| o.status == OccurrenceStatus::Done)
        .collect();
    let body = html! {
        @if created {
            div.notice.ok role="status" { (c.t("console-plans-created")) }
        }
        p.bar { (kind_badge(c, plan.kind)) (status_badges(c, plan)) }
        div.grid2 {
            section aria-labelledby="plan-facts-h" {
                h2 #plan-facts-h { (c.t("console-plans-details")) }
                dl.facts {
                    dt { (c.t("console-plans-recurrence")) } dd { (recurrence_cell(c, plan)) }
                    dt { (c.t("console-plans-first-start")) } dd { (plan.dtstart.replace('T', " ")) " (" (plan.time_zone) ")" }
                    dt { (c.t("console-plans-window")) } dd { (window_text(c, plan.window_minutes)) }
                    dt { (c.t("console-plans-zones")) } dd { (zone_names(c, names, &plan.zones)) }
                    dt { (c.t("console-plans-categories")) }
                    dd {
                        @if plan.categories.is_empty() { (c.t("console-plans-every-category")) }
                        @else {
                            (plan.categories.iter().map(|k| names.category_label(k, c.lang)).collect::<Vec<_>>().join(", "))
                        }
                    }
                    dt { (c.t("console-plans-assignees")) } dd { (user_names(names, &plan.assignees)) }
                    dt { (c.t("console-plans-created-by")) }
                    dd { (names.user_label(&plan.created_by.to_string())) " · " (c.time(ms_from_time(plan.created_at))) }
                    @if let Some(at) = plan.cancelled_at {
                        dt { (c.t("console-plans-cancelled")) } dd { (c.time(ms_from_time(at))) }
                    }
                    @if let Some(at) = plan.revealed_at {
                        dt { (c.t("console-plans-revealed")) } dd { (c.time(ms_from_time(at))) }
                    }
                }
                @if planner {
                    div.actions.bar {
                        @if plan.cancelled_at.is_none() {
                            form method="post" action={"/console/plans/" (plan.id) "/cancel"} {
                                input type="hidden" name="csrf" value=(c.session.csrf);
                                button.danger type="submit" { (c.t("console-plans-cancel")) }
                            }
                        }
                        @if plan.kind == RoundKind::Unannounced && plan.revealed_at.is_none() {
                            form method="post" action={"/console/plans/" (plan.id) "/reveal"} {
                                input type="hidden" name="csrf" value=(c.session.csrf);
                                button type="submit" { (c.t("console-plans-reveal")) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="plan-checklist-h" {
                h2 #plan-checklist-h { (c.t("console-plans-checklist")) }
                @if plan.checklist.items.is_empty() {
                    p.muted { (c.t("console-plans-no-checklist")) }
                } @else {
                    table {
                        thead { tr {
                            th { (c.t("console-plans-item-id")) }
                            th { (c.t("console-plans-item-label")) }
                            th.num { (c.t("console-plans-item-weight")) }
                            th { (c.t("console-plans-item-mandatory")) }
                            th { (c.t("console-plans-item-category")) }
                        } }
                        tbody {
                            @for item in &plan.checklist.items {
                                tr {
                                    td { code { (item.id) } }
                                    td { (item.label) }
                                    td.num { (item.weight) }
                                    td { @if item.mandatory { (c.t("console-yes")) } }
                                    td {
                                        @if let Some(k) = &item.category_code { (names.category_label(k, c.lang)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some((proof, check)) = seal {
            section aria-labelledby="plan-seal-h" {
                h2 #plan-seal-h { (c.t("console-plans-seal")) }
                p.muted { (c.t("console-plans-seal-help")) }
                dl.facts {
                    dt { (c.t("console-plans-commitment")) } dd { code.hash { (proof.commitment) } }
                    dt { (c.t("console-plans-receipt")) }
                    dd {
                        (c.ta("console-plans-receipt-text", &[
                            ("size", &proof.receipt.tree_size.to_string()),
                            ("time", &c.time(proof.receipt.timestamp)),
                            ("key", &proof.receipt.key_id),
                        ]))
                        br; code.hash { (proof.receipt.root_hash) }
                    }
                    dt { (c.t("console-plans-seal-check")) }
                    dd {
                        @if plan.revealed_at.is_none() {
                            span.muted { (c.t("console-plans-seal-sealed")) }
                        } @else {
                            @let problems = match check {
                                Some(found) => found.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
                                None => vec![c.t("console-plans-seal-unknown-key")],
                            };
                            @if problems.is_empty() {
                                span.badge.ok #seal-verdict { "✓ " (c.t("console-plans-seal-verifies")) }
                            } @else {
                                span.badge.flag #seal-verdict { "✗ " (c.t("console-plans-seal-fails")) }
                                " " (problems.join(", "))
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="plan-occ-h" {
            h2 #plan-occ-h { (c.t("console-plans-occurrences")) }
            (month_nav(c, &format!("/console/plans/{}", plan.id), month))
            @if missed > 0 {
                p.notice.error { (c.ta("console-plans-missed-count", &[("count", &missed.to_string())])) }
            }
            @if occurrences.is_empty() {
                p.muted { (c.t("console-plans-no-occurrences")) }
            } @else {
                table {
                    thead { tr {
                        th { (c.t("console-plans-starts")) }
                        th { (c.t("console-plans-ends")) }
                        th { (c.t("console-plans-status")) }
                        th.num { (c.t("console-plans-rounds")) }
                        th.num { (c.t("console-plans-score")) }
                        th.num { (c.t("console-plans-failed")) }
                    } }
                    tbody {
                        @for o in occurrences {
                            tr class=(status_class(o.status)) {
                                td { (c.time(ms_from_time(o.starts_at))) }
                                td { (c.time(ms_from_time(o.ends_at))) }
                                td { (occurrence_status(c, o.status)) }
                                td.num { (o.rounds.len()) }
                                td.num { (score_text(o.score_permille)) }
                                td.num { (o.items_failed) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="plan-rounds-h" {
            h2 #plan-rounds-h { (c.t("console-plans-rounds-done")) }
            @if done.is_empty() {
                p.muted { (c.t("console-plans-no-rounds")) }
            } @else {
                table {
                    thead { tr {
                        th { (c.t("console-plans-starts")) }
                        th { (c.t("console-plans-round-ids")) }
                        th.num { (c.t("console-plans-score")) }
                        th.num { (c.t("console-plans-failed")) }
                    } }
                    tbody {
                        @for o in &done {
                            tr {
                                td { (c.time(ms_from_time(o.starts_at))) }
                                td { @for r in &o.rounds { code { (r.to_string()[..8]) } " " } }
                                td.num { (score_text(o.score_permille)) }
                                td.num {
                                    @if o.items_failed > 0 { span.badge.flag { (o.items_failed) } } @else { "0" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    plans_layout(c, "", &plan.name, body)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/plans/{id}/cancel` (planners).
pub async fn cancel(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    match plans::cancel(&state.db, &c.session.user, id).await {
        Ok(_) => Redirect::to(&format!("/console/plans/{id}")).into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

/// `POST /console/plans/{id}/reveal` (planners, unannounced plans).
pub async fn reveal(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    match plans::reveal(&state.db, &c.session.user, id).await {
        Ok(_) => Redirect::to(&format!("/console/plans/{id}")).into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}
