//! Inspection plans in the console: the plans the reader may see, the planners' editor, a
//! plan's page (its occurrences of a month, the rounds made, cancel and reveal, a sealed plan's
//! proof), the month calendar of every visible plan, and the coverage map of a zone. The work
//! is `crate::plans`' and `crate::coverage`'s, called as the signed-in user, so an unannounced
//! plan and its rounds stay hidden here exactly as in the API.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gridline_sync::ops::RoundKind;
use gridline_sync::plan::{Checklist, ChecklistItem, PlanView};
use gridline_sync::validation::{FieldError, ValidationErrors};
use gridline_sync::Role;
use jiff::civil::Date;
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::map::{svg_with_tracks, Track};
use super::{failure, page, Console, Section};
use crate::error::{ApiError, ApiResult};
use crate::exports::Names;
use crate::i18n::Lang;
use crate::localtime;
use crate::plans::{self, OccurrenceStatus, OccurrenceView, PlanInput};
use crate::state::AppState;
use crate::store::{self, ms_from_time, now_ms};

/// How many blank checklist rows the editor offers beyond those filled in.
const BLANK_ROWS: usize = 3;
/// The weekdays as RRULE writes them, Monday first.
const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// Whether the navigation shows the plans to the signed-in user: planners, and inspectors
/// with a plan assigned to them.
pub fn shows_plans(c: &Console) -> bool {
    c.plans_assigned || plans::is_planner(&c.session.user)
}

fn plans_layout(c: &Console, here: &str, title: &str, body: Markup) -> Markup {
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

fn answer(c: &Console, headers: &HeaderMap, rendered: ApiResult<Markup>) -> Response {
    match rendered {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(c, headers, e),
    }
}

fn kind_badge(c: &Console, kind: RoundKind) -> Markup {
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
                    @for p in &all {
                        tr {
                            td { a href={"/console/plans/" (p.id)} { (p.name) } }
                            td { (kind_badge(c, p.kind)) }
                            td { (recurrence_cell(c, p)) }
                            td { (zone_names(c, &names, &p.zones)) }
                            td { (user_names(&names, &p.assignees)) }
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
    Ok(plans_layout(c, "/console/plans", &title, body))
}

fn zone_names(c: &Console, names: &Names, zones: &[Uuid]) -> String {
    let sep = if c.lang == Lang::ZhCn { "、" } else { ", " };
    zones
        .iter()
        .map(|z| names.zone_label(&z.to_string(), c.lang))
        .collect::<Vec<_>>()
        .join(sep)
}

fn user_names(names: &Names, users: &[Uuid]) -> String {
    users
        .iter()
        .map(|u| names.user_label(&u.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- the editor -------------------------------------------------------------------------------

/// One row of the checklist editor, as typed.
#[derive(Debug, Clone, Default)]
struct ItemRow {
    id: String,
    label: String,
    weight: String,
    mandatory: bool,
    category: String,
}

/// The editor's fields as typed, kept to show them again beside what was wrong.
#[derive(Debug, Clone)]
struct PlanForm {
    name: String,
    kind: String,
    preset: String,
    weekdays: Vec<String>,
    monthday: String,
    rrule: String,
    start_date: String,
    start_time: String,
    window: String,
    window_unit: String,
    zones: Vec<String>,
    categories: Vec<String>,
    assignees: Vec<String>,
    items: Vec<ItemRow>,
}

impl Default for PlanForm {
    fn default() -> Self {
        PlanForm {
            name: String::new(),
            kind: "periodic".into(),
            preset: "weekly".into(),
            weekdays: vec!["MO".into()],
            monthday: "1".into(),
            rrule: String::new(),
            start_date: String::new(),
            start_time: "09:00".into(),
            window: "2".into(),
            window_unit: "hours".into(),
            zones: vec![],
            categories: vec![],
            assignees: vec![],
            items: vec![],
        }
    }
}

impl PlanForm {
    fn read(body: &[u8]) -> (PlanForm, Option<String>) {
        let fields = super::pages::form_fields(body);
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let all = |name: &str| -> Vec<String> {
            fields
                .iter()
                .filter(|(k, v)| k == name && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_owned())
                .collect()
        };
        let rows = fields
            .iter()
            .filter_map(|(k, _)| {
                k.strip_prefix("items[")
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(i, _)| i.parse::<usize>().ok())
            })
            .max()
            .map_or(0, |m| {
                (m + 1).min(gridline_sync::plan::MAX_CHECKLIST_ITEMS + BLANK_ROWS)
            });
        let items = (0..rows)
            .map(|i| ItemRow {
                id: get(&format!("items[{i}].id")),
                label: get(&format!("items[{i}].label")),
                weight: get(&format!("items[{i}].weight")),
                mandatory: !get(&format!("items[{i}].mandatory")).is_empty(),
                category: get(&format!("items[{i}].category")),
            })
            .collect();
        let csrf = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.clone());
        let form = PlanForm {
            name: get("name"),
            kind: get("kind"),
            preset: get("preset"),
            weekdays: all("weekdays"),
            monthday: get("monthday"),
            rrule: get("rrule"),
            start_date: get("start_date"),
            start_time: get("start_time"),
            window: get("window"),
            window_unit: get("window_unit"),
            zones: all("zones"),
            categories: all("categories"),
            assignees: all("assignees"),
            items,
        };
        (form, csrf)
    }

    /// The rows that say something, with their row number in the form (a service error about
    /// `checklist.items[i]` belongs to row `kept[i]`).
    fn kept_rows(&self) -> Vec<usize> {
        (0..self.items.len())
            .filter(|i| {
                let r = &self.items[*i];
                !(r.id.is_empty() && r.label.is_empty() && r.category.is_empty())
            })
            .collect()
    }

    /// The recurrence the preset makes, or the raw rule.
    fn rrule(&self, e: &mut ValidationErrors) -> String {
        match self.preset.as_str() {
            "daily" => "FREQ=DAILY".into(),
            "weekly" => {
                let days: Vec<&str> = WEEKDAYS
                    .iter()
                    .copied()
                    .filter(|d| self.weekdays.iter().any(|w| w == d))
                    .collect();
                if days.is_empty() {
                    e.push("weekdays", "choose at least one weekday");
                }
                format!("FREQ=WEEKLY;BYDAY={}", days.join(","))
            }
            "monthly" => match self.monthday.parse::<u8>() {
                Ok(d) if (1..=31).contains(&d) => format!("FREQ=MONTHLY;BYMONTHDAY={d}"),
                _ => {
                    e.push("monthday", "a day of the month, 1 to 31");
                    String::new()
                }
            },
            _ => self.rrule.clone(),
        }
    }

    /// The service's input, or what is wrong with the form before the service is asked.
    fn input(&self) -> Result<PlanInput, Vec<FieldError>> {
        let mut e = ValidationErrors::new();
        let kind = match self.kind.as_str() {
            "unannounced" => RoundKind::Unannounced,
            _ => RoundKind::Periodic,
        };
        let rrule = self.rrule(&mut e);
        let window_minutes = match self.window.parse::<u32>() {
            Ok(n) if self.window_unit == "hours" => n.saturating_mul(60),
            Ok(n) => n,
            Err(_) => {
                e.push("window_minutes", "a whole number");
                0
            }
        };
        let mut uuids = |field: &str, values: &[String]| -> Vec<Uuid> {
            values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match Uuid::parse_str(v) {
                    Ok(u) => Some(u),
                    Err(_) => {
                        e.push(format!("{field}[{i}]"), "not one of the choices");
                        None
                    }
                })
                .collect()
        };
        let zones = uuids("zones", &self.zones);
        let assignees = uuids("assignees", &self.assignees);
        let mut items = Vec::new();
        for (n, row) in self.kept_rows().into_iter().enumerate() {
            let r = &self.items[row];
            let weight = if r.weight.is_empty() {
                1
            } else {
                r.weight.parse::<u32>().unwrap_or_else(|_| {
                    e.push(format!("checklist.items[{n}].weight"), "a whole number");
                    0
                })
            };
            items.push(ChecklistItem {
                id: r.id.clone(),
                label: r.label.clone(),
                weight,
                mandatory: r.mandatory,
                category_code: (!r.category.is_empty()).then(|| r.category.clone()),
            });
        }
        let errors = e.errors;
        if !errors.is_empty() {
            return Err(self.to_rows(errors));
        }
        Ok(PlanInput {
            name: self.name.clone(),
            kind,
            rrule,
            dtstart: format!("{}T{}", self.start_date, self.start_time),
            window_minutes,
            zones,
            categories: self.categories.clone(),
            assignees,
            checklist: Checklist { items },
        })
    }

    /// Errors about `checklist.items[i]` renamed to the form row they came from.
    fn to_rows(&self, errors: Vec<FieldError>) -> Vec<FieldError> {
        let kept = self.kept_rows();
        errors
            .into_iter()
            .map(|mut err| {
                if let Some(rest) = err.path.strip_prefix("checklist.items[") {
                    if let Some((i, tail)) = rest.split_once(']') {
                        if let Some(row) = i.parse::<usize>().ok().and_then(|i| kept.get(i)) {
                            err.path = format!("items[{row}]{tail}");
                        }
                    }
                }
                err
            })
            .collect()
    }
}

/// The errors of a form, looked up by the field they name.
struct Problems(Vec<FieldError>);

impl Problems {
    /// The problems of `field` and its parts (`zones` also takes `zones[2]`).
    fn about(&self, field: &str) -> Vec<&FieldError> {
        self.0
            .iter()
            .filter(|e| {
                e.path == field
                    || e.path.starts_with(&format!("{field}["))
                    || e.path.starts_with(&format!("{field}."))
            })
            .collect()
    }
    fn has(&self, field: &str) -> bool {
        !self.about(field).is_empty()
    }
    /// The field's messages under it, tied to it by `id` for assistive technology.
    fn show(&self, c: &Console, field: &str, id: &str) -> Markup {
        let mut found: Vec<String> = self
            .about(field)
            .into_iter()
            .map(|e| problem_text(c, e))
            .collect();
        found.dedup();
        html! {
            @if !found.is_empty() {
                p.field-error id=(id) {
                    (c.t("console-plans-field-problem")) " "
                    @for (i, m) in found.iter().enumerate() {
                        @if i > 0 { "; " }
                        (m)
                    }
                }
            }
        }
    }
}

/// A problem in the reader's language: the catalogue's explanation of the field
/// (`console-plans-problem-*`), with the service's own words where they name what the rule
/// parser refused; the service's words alone for a field the catalogue does not know.
fn problem_text(c: &Console, e: &FieldError) -> String {
    // `zones[2]` → `zones`, `items[1].weight` → `item-weight`.
    let last = e.path.rsplit('.').next().unwrap_or(&e.path);
    let field = last.split('[').next().unwrap_or(last);
    let key = if e.path.starts_with("items[") || e.path.starts_with("checklist.") {
        format!("console-plans-problem-item-{}", field.replace('_', "-"))
    } else {
        format!("console-plans-problem-{}", field.replace('_', "-"))
    };
    match crate::i18n::lookup(c.lang, &key, &[]) {
        Some(text) if field == "rrule" => format!("{text} ({})", e.message),
        Some(text) => text,
        None => e.message.clone(),
    }
}

/// `GET /console/plans/new`: the editor (planners).
pub async fn new(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    if !plans::is_planner(&c.session.user) {
        return failure(&c, &headers, forbidden());
    }
    let mut form = PlanForm {
        start_date: localtime::civil(&c.tz, now_ms() + 86_400_000)
            .date()
            .to_string(),
        ..PlanForm::default()
    };
    form.items = vec![ItemRow::default(); BLANK_ROWS];
    let rendered = editor_page(&state, &c, &form, &Problems(vec![])).await;
    answer(&c, &headers, rendered)
}

fn forbidden() -> ApiError {
    ApiError::forbidden("planning inspections needs the admin or supervisor role")
}

/// `POST /console/plans`: makes the plan and opens its page, or shows the form again with
/// each problem beside its field.
pub async fn create(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (form, csrf) = PlanForm::read(&body);
    if let Some(r) = c.csrf_refusal(&headers, csrf.as_deref()) {
        return r;
    }
    if !plans::is_planner(&c.session.user) {
        return failure(&c, &headers, forbidden());
    }
    let problems = match form.input() {
        Err(problems) => problems,
        Ok(input) => {
            match plans::create(
                &state.db,
                state.keys.as_ref(),
                &state.config.site.time_zone,
                &c.session.user,
                &input,
            )
            .await
            {
                Ok(plan) => {
                    return Redirect::to(&format!("/console/plans/{}?created=1", plan.id))
                        .into_response()
                }
                Err(e) => match serde_json::from_value::<Vec<FieldError>>(
                    e.details.get("errors").cloned().unwrap_or_default(),
                ) {
                    Ok(errors) if !errors.is_empty() => form.to_rows(errors),
                    _ => return failure(&c, &headers, e),
                },
            }
        }
    };
    let mut form = form;
    let filled = form.kept_rows().last().map_or(0, |r| r + 1);
    form.items.resize(filled + BLANK_ROWS, ItemRow::default());
    match editor_page(&state, &c, &form, &Problems(problems)).await {
        Ok(m) => page(StatusCode::UNPROCESSABLE_ENTITY, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn editor_page(
    state: &AppState,
    c: &Console,
    form: &PlanForm,
    problems: &Problems,
) -> ApiResult<Markup> {
    let user = &c.session.user;
    let scope = user.scope(&state.db).await?;
    let zones = store::reference::zones(&state.db.pool, scope.zones()).await?;
    let taxonomy = store::reference::taxonomy(&state.db.pool).await?;
    let inspectors: Vec<_> = store::users::list(&state.db.pool)
        .await?
        .into_iter()
        .filter(|u| u.disabled_at.is_none() && u.roles.contains(&Role::Inspector))
        .collect();
    let title = c.t("console-plans-new");
    let invalid = |f: &str| problems.has(f).then_some("true");
    let described = |f: &str, id: &str| problems.has(f).then(|| id.to_owned());
    let selected = |list: &[String], v: &str| list.iter().any(|x| x == v);
    let body = html! {
        @if !problems.0.is_empty() {
            div.notice.error role="alert" {
                (c.ta("console-plans-not-made", &[("count", &problems.0.len().to_string())]))
            }
        }
        form.intake.plan-editor method="post" action="/console/plans" novalidate {
            input type="hidden" name="csrf" value=(c.session.csrf);
            fieldset {
                legend { (c.t("console-plans-what")) }
                div {
                    label for="pl-name" { (c.t("console-plans-name")) }
                    input #pl-name name="name" value=(form.name) maxlength="100" required
                        aria-invalid=[invalid("name")] aria-describedby=[described("name", "pl-name-err")];
                    (problems.show(c, "name", "pl-name-err"))
                }
                div {
                    label for="pl-kind" { (c.t("console-plans-kind")) }
                    select #pl-kind name="kind" {
                        option value="periodic" selected[form.kind == "periodic"] { (c.t("console-plans-kind-periodic")) }
                        option value="unannounced" selected[form.kind == "unannounced"] { (c.t("console-plans-kind-unannounced")) }
                    }
                    (problems.show(c, "kind", "pl-kind-err"))
                }
                p.muted.wide { (c.t("console-plans-kind-help")) }
            }
            fieldset {
                legend { (c.t("console-plans-recurrence")) }
                div {
                    label for="pl-preset" { (c.t("console-plans-preset")) }
                    select #pl-preset name="preset" {
                        @for (v, key) in [("daily", "console-plans-preset-daily"), ("weekly", "console-plans-preset-weekly"), ("monthly", "console-plans-preset-monthly"), ("custom", "console-plans-preset-custom")] {
                            option value=(v) selected[form.preset == v] { (c.t(key)) }
                        }
                    }
                }
                fieldset.roles.wide aria-describedby=[described("weekdays", "pl-weekdays-err")] {
                    legend { (c.t("console-plans-weekdays")) }
                    @for d in WEEKDAYS {
                        label {
                            input type="checkbox" name="weekdays" value=(d) checked[selected(&form.weekdays, d)];
                            (c.t(&format!("console-weekday-{}", d.to_ascii_lowercase())))
                        }
                    }
                    (problems.show(c, "weekdays", "pl-weekdays-err"))
                }
                div {
                    label for="pl-monthday" { (c.t("console-plans-monthday")) }
                    input #pl-monthday name="monthday" type="number" min="1" max="31" value=(form.monthday)
                        aria-invalid=[invalid("monthday")] aria-describedby=[described("monthday", "pl-monthday-err")];
                    (problems.show(c, "monthday", "pl-monthday-err"))
                }
                div.wide {
                    label for="pl-rrule" { (c.t("console-plans-rrule")) }
                    input #pl-rrule name="rrule" value=(form.rrule) maxlength="500" placeholder="FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"
                        aria-invalid=[invalid("rrule")] aria-describedby={"pl-rrule-help" @if problems.has("rrule") { " pl-rrule-err" }};
                    p.muted #pl-rrule-help { (c.t("console-plans-rrule-help")) }
                    (problems.show(c, "rrule", "pl-rrule-err"))
                }
                div {
                    label for="pl-date" { (c.t("console-plans-start-date")) }
                    input #pl-date name="start_date" type="date" value=(form.start_date) required
                        aria-invalid=[invalid("dtstart")] aria-describedby=[described("dtstart", "pl-dtstart-err")];
                    (problems.show(c, "dtstart", "pl-dtstart-err"))
                }
                div {
                    label for="pl-time" { (c.t("console-plans-start-time")) }
                    input #pl-time name="start_time" type="time" value=(form.start_time) required;
                    p.muted { (c.ta("console-plans-site-zone", &[("zone", &state.config.site.time_zone)])) }
                }
                div {
                    label for="pl-window" { (c.t("console-plans-window")) }
                    input #pl-window name="window" type="number" min="1" value=(form.window)
                        aria-invalid=[invalid("window_minutes")] aria-describedby=[described("window_minutes", "pl-window-err")];
                    (problems.show(c, "window_minutes", "pl-window-err"))
                }
                div {
                    label for="pl-unit" { (c.t("console-plans-window-unit")) }
                    select #pl-unit name="window_unit" {
                        option value="hours" selected[form.window_unit != "minutes"] { (c.t("console-plans-unit-hours")) }
                        option value="minutes" selected[form.window_unit == "minutes"] { (c.t("console-plans-unit-minutes")) }
                    }
                }
            }
            fieldset {
                legend { (c.t("console-plans-scope")) }
                div {
                    label for="pl-zones" { (c.t("console-plans-zones")) }
                    select #pl-zones name="zones" multiple size="6"
                        aria-invalid=[invalid("zones")] aria-describedby=[described("zones", "pl-zones-err")] {
                        @for z in &zones {
                            option value=(z.id) selected[selected(&form.zones, &z.id.to_string())] {
                                (z.code) " " (z.translations.pick(c.lang, &z.name))
                            }
                        }
                    }
                    (problems.show(c, "zones", "pl-zones-err"))
                }
                div {
                    label for="pl-categories" { (c.t("console-plans-categories")) }
                    select #pl-categories name="categories" multiple size="6"
                        aria-invalid=[invalid("categories")] aria-describedby=[described("categories", "pl-categories-err")] {
                        @for t in &taxonomy {
                            option value=(t.key) selected[selected(&form.categories, &t.key)] {
                                (t.code) " " (if c.lang == Lang::ZhCn { &t.name_zh } else { &t.name_en })
                            }
                        }
                    }
                    p.muted { (c.t("console-plans-categories-help")) }
                    (problems.show(c, "categories", "pl-categories-err"))
                }
                div {
                    label for="pl-assignees" { (c.t("console-plans-assignees")) }
                    select #pl-assignees name="assignees" multiple size="6"
                        aria-invalid=[invalid("assignees")] aria-describedby=[described("assignees", "pl-assignees-err")] {
                        @for u in &inspectors {
                            option value=(u.id) selected[selected(&form.assignees, &u.id.to_string())] {
                                (u.display_name) " (" (u.username) ")"
                            }
                        }
                    }
                    (problems.show(c, "assignees", "pl-assignees-err"))
                }
            }
            fieldset.checklist-editor {
                legend { (c.t("console-plans-checklist")) }
                p.muted.wide { (c.t("console-plans-checklist-help")) }
                div.wide {
                    table {
                        thead { tr {
                            th { (c.t("console-plans-item-id")) }
                            th { (c.t("console-plans-item-label")) }
                            th.num { (c.t("console-plans-item-weight")) }
                            th { (c.t("console-plans-item-mandatory")) }
                            th { (c.t("console-plans-item-category")) }
                        } }
                        tbody {
                            @for (i, row) in form.items.iter().enumerate() {
                                @let p = format!("items[{i}]");
                                @let err_id = format!("pl-item-{i}-err");
                                tr {
                                    td {
                                        input name={(p) ".id"} value=(row.id) size="10" maxlength="32"
                                            aria-label={(c.t("console-plans-item-id")) " " (i + 1)}
                                            aria-invalid=[invalid(&format!("{p}.id"))];
                                    }
                                    td {
                                        input name={(p) ".label"} value=(row.label) size="28" maxlength="200"
                                            aria-label={(c.t("console-plans-item-label")) " " (i + 1)}
                                            aria-invalid=[invalid(&format!("{p}.label"))];
                                    }
                                    td.num {
                                        input name={(p) ".weight"} value=(row.weight) size="3" inputmode="numeric"
                                            aria-label={(c.t("console-plans-item-weight")) " " (i + 1)}
                                            aria-invalid=[invalid(&format!("{p}.weight"))];
                                    }
                                    td {
                                        input type="checkbox" name={(p) ".mandatory"} value="1" checked[row.mandatory]
                                            aria-label={(c.t("console-plans-item-mandatory")) " " (i + 1)};
                                    }
                                    td {
                                        input name={(p) ".category"} value=(row.category) size="14" placeholder="event:0102"
                                            aria-label={(c.t("console-plans-item-category")) " " (i + 1)}
                                            aria-invalid=[invalid(&format!("{p}.category_code"))]
                                            aria-describedby=[described(&p, &err_id)];
                                        (problems.show(c, &p, &err_id))
                                    }
                                }
                            }
                        }
                    }
                    (problems.show(c, "checklist", "pl-checklist-err"))
                }
            }
            button type="submit" { (c.t("console-plans-submit")) }
        }
    };
    Ok(plans_layout(c, "/console/plans/new", &title, body))
}

// ---- a plan's page ----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
    created: Option<String>,
}

/// The month asked for (`YYYY-MM`), or the current one, with its bounds.
fn month_of_query(
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

fn month_nav(c: &Console, base: &str, month: &str) -> Markup {
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

fn status_class(s: OccurrenceStatus) -> &'static str {
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
    let planner = plans::is_planner(user);
    let seal = if plan.kind == RoundKind::Unannounced {
        Some(plans::seal_proof(&state.db, user, id).await?)
    } else {
        None
    };
    let missed = occurrences
        .iter()
        .filter(|o| o.status == OccurrenceStatus::Missed)
        .count();
    let done: Vec<&OccurrenceView> = occurrences
        .iter()
        .filter(|o| o.status == OccurrenceStatus::Done)
        .collect();
    let body = html! {
        @if q.created.is_some() {
            div.notice.ok role="status" { (c.t("console-plans-created")) }
        }
        p.bar { (kind_badge(c, plan.kind)) (status_badges(c, &plan)) }
        div.grid2 {
            section aria-labelledby="plan-facts-h" {
                h2 #plan-facts-h { (c.t("console-plans-details")) }
                dl.facts {
                    dt { (c.t("console-plans-recurrence")) } dd { (recurrence_cell(c, &plan)) }
                    dt { (c.t("console-plans-first-start")) } dd { (plan.dtstart.replace('T', " ")) " (" (plan.time_zone) ")" }
                    dt { (c.t("console-plans-window")) } dd { (window_text(c, plan.window_minutes)) }
                    dt { (c.t("console-plans-zones")) } dd { (zone_names(c, &names, &plan.zones)) }
                    dt { (c.t("console-plans-categories")) }
                    dd {
                        @if plan.categories.is_empty() { (c.t("console-plans-every-category")) }
                        @else {
                            (plan.categories.iter().map(|k| names.category_label(k, c.lang)).collect::<Vec<_>>().join(", "))
                        }
                    }
                    dt { (c.t("console-plans-assignees")) } dd { (user_names(&names, &plan.assignees)) }
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
        @if let Some(proof) = &seal {
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
                            @let problems = match state.keys.verifying_key(&proof.receipt.key_id) {
                                Some(key) => crate::seal::verify(proof, key).iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
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
            (month_nav(c, &format!("/console/plans/{}", plan.id), &month))
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
                        @for o in &occurrences {
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
    Ok(plans_layout(c, "", &plan.name, body))
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
    let first = localtime::civil(&c.tz, ms_from_time(from)).date();
    let days = first.days_in_month();
    let lead = usize::try_from(first.weekday().to_monday_zero_offset()).unwrap_or(0);
    let mut by_day: BTreeMap<i8, Vec<&OccurrenceView>> = BTreeMap::new();
    for o in &occurrences {
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
        (month_nav(c, "/console/calendar", &month))
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
    Ok(plans_layout(c, "/console/calendar", &title, body))
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
        &[("zone", &zone_name), ("month", &month)],
    );
    let body = html! {
        form.filters method="get" action="/console/coverage" {
            div {
                label for="cov-zone" { (c.t("console-intake-zone")) }
                select #cov-zone name="zone" {
                    @for z in &zones {
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
            (svg_with_tracks(c, &zone, &tracks, &[], 720.0, &map_title, state.config.console.map_tiles.as_ref()))
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
    Ok(plans_layout(c, "/console/coverage", &title, body))
}
