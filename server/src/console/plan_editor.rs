//! The planners' editor of inspection plans: the form, kept as typed when something is wrong
//! with each problem shown beside its field, and the plan made through `plans::create`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gridline_sync::ops::RoundKind;
use gridline_sync::plan::{Checklist, ChecklistItem};
use gridline_sync::validation::{FieldError, ValidationErrors};
use maud::{html, Markup};
use uuid::Uuid;

use super::plans::{answer, plans_layout, WEEKDAYS};
use super::{failure, page, Console};
use crate::error::ApiResult;
use crate::i18n::Lang;
use crate::localtime;
use crate::plans::{self, PlanChoices, PlanInput};
use crate::state::AppState;
use crate::store::now_ms;

/// How many blank checklist rows the editor offers beyond those filled in.
const BLANK_ROWS: usize = 3;

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
        let fields = super::form_fields(body);
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
    if let Err(e) = plans::require_planner(&c.session.user) {
        return failure(&c, &headers, e);
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

/// `POST /console/plans`: makes the plan and opens its page, or shows the form again with
/// each problem beside its field.
pub async fn create(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (mut form, csrf) = PlanForm::read(&body);
    if let Some(r) = c.csrf_refusal(&headers, csrf.as_deref()) {
        return r;
    }
    let problems = match make_plan(&state, &c, &form).await {
        Ok(Ok(id)) => {
            return Redirect::to(&format!("/console/plans/{id}?created=1")).into_response()
        }
        Ok(Err(problems)) => problems,
        Err(e) => return failure(&c, &headers, e),
    };
    let filled = form.kept_rows().last().map_or(0, |r| r + 1);
    form.items.resize(filled + BLANK_ROWS, ItemRow::default());
    match editor_page(&state, &c, &form, &Problems(problems)).await {
        Ok(m) => page(StatusCode::UNPROCESSABLE_ENTITY, m),
        Err(e) => failure(&c, &headers, e),
    }
}

/// The plan `form` describes, made by the signed-in planner: its id, or the problems to show
/// beside the form's fields (what the form itself or the service refused).
async fn make_plan(
    state: &AppState,
    c: &Console,
    form: &PlanForm,
) -> ApiResult<Result<Uuid, Vec<FieldError>>> {
    plans::require_planner(&c.session.user)?;
    let input = match form.input() {
        Ok(input) => input,
        Err(problems) => return Ok(Err(problems)),
    };
    let zone = &state.config.site.time_zone;
    match plans::create(
        &state.db,
        state.keys.as_ref(),
        zone,
        &c.session.user,
        &input,
    )
    .await
    {
        Ok(plan) => Ok(Ok(plan.id)),
        Err(e) => match serde_json::from_value::<Vec<FieldError>>(
            e.details.get("errors").cloned().unwrap_or_default(),
        ) {
            Ok(errors) if !errors.is_empty() => Ok(Err(form.to_rows(errors))),
            _ => Err(e),
        },
    }
}

async fn editor_page(
    state: &AppState,
    c: &Console,
    form: &PlanForm,
    problems: &Problems,
) -> ApiResult<Markup> {
    let choices = plans::choices(&state.db, &c.session.user).await?;
    let zone = &state.config.site.time_zone;
    Ok(editor_markup(c, &choices, zone, form, problems))
}

/// The editor: `form` as typed, each of `problems` beside its field, the choices offered, and
/// `time_zone`, the site's, in which the start is read.
fn editor_markup(
    c: &Console,
    choices: &PlanChoices,
    time_zone: &str,
    form: &PlanForm,
    problems: &Problems,
) -> Markup {
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
                    p.muted { (c.ta("console-plans-site-zone", &[("zone", time_zone)])) }
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
                        @for z in &choices.zones {
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
                        @for t in &choices.taxonomy {
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
                        @for u in &choices.inspectors {
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
    plans_layout(c, "/console/plans/new", &title, body)
}
