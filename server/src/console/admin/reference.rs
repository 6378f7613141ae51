//! The reference data, for admins: the rulebooks (each version, and a new one written from the
//! one in force) and the taxonomy, through `rulebooks` and `taxonomy` as the API; the working-day
//! calendar on the same page is `calendar`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};

use super::{admin_layout, admin_page, calendar, change, csrf, Fields};
use crate::console::Console;
use crate::error::ApiError;
use crate::exports::Names;
use crate::i18n::{self, Lang};
use crate::model::{Rule, Rulebook, RulebookInput, Source, TaxonomyEntry};
use crate::state::AppState;
use crate::store::{self, now_ms};
use crate::workcalendar::CalendarYear;
use crate::workdays::TimeLimit;

// ---- taxonomy and rulebooks -------------------------------------------------------------------

pub async fn reference(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    admin_page(&c, &headers, reference_page(&state, &c)).await
}

async fn reference_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let taxonomy = store::reference::taxonomy(&state.db.pool).await?;
    let rulebooks = store::reference::rulebooks(&state.db.pool).await?;
    let active = store::reference::active_rulebook(&state.db.pool, now_ms()).await?;
    let reference = Reference {
        names: Names::load(&state.db).await?,
        years: calendar::years(state).await?,
        taxonomy,
        rulebooks,
        active,
    };
    Ok(reference_markup(c, &reference))
}

/// What the reference page shows.
struct Reference {
    taxonomy: Vec<TaxonomyEntry>,
    rulebooks: Vec<Rulebook>,
    /// The rulebook in force now.
    active: Option<Rulebook>,
    names: Names,
    years: Vec<CalendarYear>,
}

/// Every rulebook version (the one in force open), the editors of a new version and of the
/// taxonomy, and the calendar.
fn reference_markup(c: &Console, r: &Reference) -> Markup {
    let Reference {
        taxonomy,
        rulebooks,
        active,
        names,
        years,
    } = r;
    let body = html! {
        p.hint { (c.t("console-reference-hint")) }
        h2 { (c.t("console-rulebooks")) }
        @for b in rulebooks.iter().rev() {
            details open[active.as_ref().is_some_and(|a| a.id == b.id)] {
                summary {
                    (b.translations.pick(c.lang, &b.name)) " · v" (b.version) " · "
                    (c.ta("console-effective-from", &[("at", &c.time(store::ms_from_time(b.effective_from)))]))
                    @if active.as_ref().is_some_and(|a| a.id == b.id) { " " span.badge.ok { (c.t("console-current")) } }
                }
                table {
                    thead { tr {
                        th { (c.t("console-code")) }
                        th { (c.t("col-rule_text")) }
                        th.num { (c.t("col-raw_points")) }
                        th { (c.t("console-sources")) }
                        th { (c.t("col-category_name")) }
                    } }
                    tbody {
                        @for r in &b.rules {
                            tr {
                                td { (r.code) }
                                td { (r.translations.pick(c.lang, &r.description)) }
                                td.num { (r.points) }
                                td { @for (i, s) in r.sources.iter().enumerate() { @if i > 0 { "、" } (i18n::name(c.lang, "source", s.as_str())) } }
                                td {
                                    @if r.taxonomy_codes.is_empty() { span.muted { (c.t("console-any")) } }
                                    @for (i, k) in r.taxonomy_codes.iter().enumerate() { @if i > 0 { "、" } (names.category_label(k, c.lang)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (rulebook_editor(c, active.as_ref(), taxonomy))
        (taxonomy_editor(c, taxonomy))
        (calendar::section(c, years))
    };
    admin_layout(
        c,
        "/console/admin/reference",
        &c.t("console-admin-reference"),
        body,
    )
}

// ---- a new rulebook version ------------------------------------------------------------------

/// Empty rows under the rules of the version in force, for new rules.
const NEW_RULE_ROWS: usize = 3;

/// The form that publishes a new rulebook version, filled with the one in force: a rule is
/// changed in its row, dropped by clearing its code, added in an empty row.
fn rulebook_editor(c: &Console, active: Option<&Rulebook>, taxonomy: &[TaxonomyEntry]) -> Markup {
    let rules: Vec<Option<&Rule>> = active
        .map(|b| b.rules.iter().map(Some).collect())
        .unwrap_or_default();
    let rows = rules
        .into_iter()
        .chain(std::iter::repeat_n(None, NEW_RULE_ROWS));
    html! {
        h2 #new-rulebook { (c.t("console-rulebook-new")) }
        p.hint { (c.t("console-rulebook-new-hint")) }
        form.rule-editor method="post" action="/console/admin/rulebooks" {
            (csrf(c))
            div.filters {
                div {
                    label for="rb-name" { (c.t("console-rulebook-name")) }
                    input #rb-name name="name" required maxlength="200"
                        value=(active.map(|b| b.name.as_str()).unwrap_or(""));
                }
                div {
                    label for="rb-from" { (c.t("console-rulebook-from")) }
                    input #rb-from type="datetime-local" name="effective_from" required
                        value=(crate::localtime::input_value(&c.tz, now_ms()));
                }
            }
            div.scroll {
                table {
                    thead { tr {
                        th { (c.t("console-code")) }
                        th { (c.t("col-rule_text")) }
                        th.num { (c.t("col-raw_points")) }
                        th { (c.t("console-sources")) }
                        th { (c.t("col-category_name")) }
                    } }
                    tbody {
                        @for (i, r) in rows.enumerate() {
                            tr {
                                td {
                                    label.sr-only for={"rule-" (i) "-code"} { (c.t("console-code")) }
                                    input #{"rule-" (i) "-code"} name={"rule-" (i) "-code"} maxlength="64" size="12"
                                        value=(r.map(|r| r.code.as_str()).unwrap_or(""));
                                }
                                td {
                                    label.sr-only for={"rule-" (i) "-text"} { (c.t("col-rule_text")) }
                                    input #{"rule-" (i) "-text"} name={"rule-" (i) "-text"} maxlength="1000" size="36"
                                        value=(r.map(|r| r.description.as_str()).unwrap_or(""));
                                }
                                td.num {
                                    label.sr-only for={"rule-" (i) "-points"} { (c.t("col-raw_points")) }
                                    input #{"rule-" (i) "-points"} name={"rule-" (i) "-points"} type="number"
                                        min="0" max="100" step="0.001" size="5"
                                        value=(r.map(|r| r.points.to_string()).unwrap_or_default());
                                }
                                td {
                                    fieldset.roles {
                                        legend.sr-only { (c.t("console-sources")) }
                                        @for s in Source::ALL {
                                            label {
                                                input type="checkbox" name={"rule-" (i) "-sources"} value=(s.as_str())
                                                    checked[r.is_some_and(|r| r.sources.contains(s))];
                                                (i18n::name(c.lang, "source", s.as_str()))
                                            }
                                        }
                                    }
                                }
                                td {
                                    label.sr-only for={"rule-" (i) "-categories"} { (c.t("col-category_name")) }
                                    select #{"rule-" (i) "-categories"} name={"rule-" (i) "-categories"} multiple size="3"
                                        title=(c.t("console-rulebook-any-category")) {
                                        @for t in taxonomy {
                                            option value=(t.key) selected[r.is_some_and(|r| r.taxonomy_codes.contains(&t.key))] {
                                                (t.code) " " (if c.lang == Lang::ZhCn { &t.name_zh } else { &t.name_en })
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            button type="submit" { (c.t("console-rulebook-publish")) }
        }
    }
}

/// `POST /console/admin/rulebooks`: publishes the edited rulebook as a new version through
/// the same service as `POST /v1/rulebooks`. A rule keeps its translations while its code and
/// published text stay the same; the book keeps its name's while the name does.
pub async fn publish_rulebook(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let active = store::reference::active_rulebook(&state.db.pool, now_ms()).await?;
        let input = rulebook_input(&f, &c.tz, active.as_ref())?;
        crate::rulebooks::publish(&state.db, &c.session.user, &input).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/reference", run).await
}

/// The rulebook a filled editor describes.
fn rulebook_input(
    f: &Fields,
    tz: &jiff::tz::TimeZone,
    active: Option<&Rulebook>,
) -> Result<RulebookInput, ApiError> {
    let name = f.get("name").unwrap_or("").to_owned();
    let effective_from = f
        .get("effective_from")
        .and_then(|v| crate::localtime::parse_local(tz, v))
        .map(store::time_from_ms)
        .ok_or_else(|| ApiError::invalid("effective_from", "a date and time"))?;
    let mut rules = Vec::new();
    for i in 0.. {
        let key = |field: &str| format!("rule-{i}-{field}");
        let Some(code) = f.raw(&key("code")) else {
            break;
        };
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        let description = f.get(&key("text")).unwrap_or("").to_owned();
        let points: f64 = f.get(&key("points")).unwrap_or("").parse().map_err(|_| {
            ApiError::invalid(&format!("rules[{}].points", rules.len()), "a number")
        })?;
        let sources = f
            .all(&key("sources"))
            .map(|s| {
                Source::parse(s).ok_or_else(|| {
                    ApiError::invalid(&format!("rules[{}].sources", rules.len()), "not a source")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let translations = active
            .and_then(|b| b.rules.iter().find(|r| r.code == code))
            .filter(|r| r.description == description)
            .map(|r| r.translations.clone())
            .unwrap_or_default();
        rules.push(Rule {
            code: code.to_owned(),
            description,
            translations,
            points,
            sources,
            taxonomy_codes: f.all(&key("categories")).map(str::to_owned).collect(),
        });
    }
    let translations = active
        .filter(|b| b.name == name)
        .map(|b| b.translations.clone())
        .unwrap_or_default();
    Ok(RulebookInput {
        name,
        translations,
        effective_from,
        rules,
    })
}

// ---- the taxonomy -----------------------------------------------------------------------------

/// Empty rows under the taxonomy, for new entries.
const NEW_TERM_ROWS: usize = 2;

/// The taxonomy as a form: each entry's names, work category and time limit editable in its
/// row, new entries in the empty rows; saving sends them all and only the changed are stored.
fn taxonomy_editor(c: &Console, taxonomy: &[TaxonomyEntry]) -> Markup {
    use crate::model::{TaxonomyKind, WorkCategory};
    let rows = taxonomy
        .iter()
        .map(Some)
        .chain(std::iter::repeat_n(None, NEW_TERM_ROWS));
    html! {
        h2 #taxonomy { (c.t("console-taxonomy")) }
        p.hint { (c.t("console-taxonomy-hint")) }
        form.rule-editor method="post" action="/console/admin/taxonomy" {
            (csrf(c))
            div.scroll {
                table {
                    thead { tr {
                        th { (c.t("console-code")) }
                        th { (c.t("console-name-zh")) }
                        th { (c.t("console-name-en")) }
                        th { (c.t("col-work_category")) }
                        th.num { (c.t("console-time-limit")) }
                    } }
                    tbody {
                        @for (i, t) in rows.enumerate() {
                            tr {
                                td {
                                    @if let Some(t) = t {
                                        input type="hidden" name={"t-" (i) "-kind"} value=(t.kind.as_str());
                                        input type="hidden" name={"t-" (i) "-code"} value=(t.code);
                                        (t.key)
                                    } @else {
                                        label.sr-only for={"t-" (i) "-kind"} { (c.t("console-taxonomy-kind")) }
                                        select #{"t-" (i) "-kind"} name={"t-" (i) "-kind"} {
                                            @for k in [TaxonomyKind::Event, TaxonomyKind::Component] {
                                                option value=(k.as_str()) { (c.t(&format!("console-kind-{}", k.as_str()))) }
                                            }
                                        }
                                        label.sr-only for={"t-" (i) "-code"} { (c.t("console-code")) }
                                        input #{"t-" (i) "-code"} name={"t-" (i) "-code"} size="5" maxlength="4"
                                            pattern="[0-9]{2}([0-9]{2})?" placeholder="2101";
                                    }
                                }
                                td {
                                    label.sr-only for={"t-" (i) "-zh"} { (c.t("console-name-zh")) }
                                    input #{"t-" (i) "-zh"} name={"t-" (i) "-zh"} size="14" maxlength="200"
                                        value=(t.map(|t| t.name_zh.as_str()).unwrap_or(""));
                                }
                                td {
                                    label.sr-only for={"t-" (i) "-en"} { (c.t("console-name-en")) }
                                    input #{"t-" (i) "-en"} name={"t-" (i) "-en"} size="20" maxlength="200"
                                        value=(t.map(|t| t.name_en.as_str()).unwrap_or(""));
                                }
                                td {
                                    label.sr-only for={"t-" (i) "-work"} { (c.t("col-work_category")) }
                                    select #{"t-" (i) "-work"} name={"t-" (i) "-work"} {
                                        @for w in WorkCategory::ALL {
                                            option value=(w.as_str()) selected[t.is_some_and(|t| t.work_category == *w)] {
                                                (i18n::name(c.lang, "work", w.as_str()))
                                            }
                                        }
                                    }
                                }
                                td.num {
                                    label.sr-only for={"t-" (i) "-hours"} { (c.t("console-time-limit")) }
                                    @let limit = t.and_then(|t| t.time_limit());
                                    input #{"t-" (i) "-hours"} name={"t-" (i) "-hours"} type="number" min="1" max="8760" size="5"
                                        placeholder=(crate::review::DEFAULT_TIME_LIMIT_HOURS)
                                        value=(limit.map(|l| l.amount().to_string()).unwrap_or_default());
                                    label.sr-only for={"t-" (i) "-unit"} { (c.t("console-time-limit-unit")) }
                                    select #{"t-" (i) "-unit"} name={"t-" (i) "-unit"} {
                                        @for unit in TimeLimit::UNITS {
                                            option value=(unit) selected[limit.is_some_and(|l| l.unit() == *unit)] {
                                                (c.t(&format!("console-unit-{unit}")))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            button type="submit" { (c.t("console-save")) }
        }
    }
}

/// `POST /console/admin/taxonomy`: the edited taxonomy, through the same service as
/// `PUT /v1/taxonomy`.
pub async fn save_taxonomy(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = Fields::read(&body);
    let run = async {
        let entries = taxonomy_entries(&f)?;
        crate::taxonomy::upsert(&state.db, &c.session.user, entries).await?;
        Ok(())
    };
    change(&c, &headers, &f, "/console/admin/reference#taxonomy", run).await
}

/// The entries a filled taxonomy form describes (rows without a code are left out).
fn taxonomy_entries(f: &Fields) -> Result<Vec<TaxonomyEntry>, ApiError> {
    use crate::model::{TaxonomyKind, WorkCategory};
    let mut entries = Vec::new();
    for i in 0.. {
        let key = |field: &str| format!("t-{i}-{field}");
        let Some(code) = f.raw(&key("code")) else {
            break;
        };
        let code = code.trim();
        if code.is_empty() {
            continue;
        }
        let at = |field: &str| format!("[{}].{field}", entries.len());
        let kind = TaxonomyKind::parse(f.get(&key("kind")).unwrap_or(""))
            .ok_or_else(|| ApiError::invalid(&at("kind"), "component or event"))?;
        let work_category = WorkCategory::parse(f.get(&key("work")).unwrap_or(""))
            .ok_or_else(|| ApiError::invalid(&at("work_category"), "not a work category"))?;
        let amount = f
            .get(&key("hours"))
            .map(|h| {
                h.parse::<i64>().map_err(|_| {
                    ApiError::invalid(&at("time_limit_hours"), "a whole number of hours or days")
                })
            })
            .transpose()?;
        let unit = f.get(&key("unit")).unwrap_or("hours");
        let limit = amount
            .map(|a| {
                TimeLimit::of(unit, a)
                    .ok_or_else(|| ApiError::invalid(&at("time_limit_unit"), "not a unit"))
            })
            .transpose()?;
        entries.push(TaxonomyEntry {
            key: String::new(),
            code: code.to_owned(),
            kind,
            name_zh: f.get(&key("zh")).unwrap_or("").to_owned(),
            name_en: f.get(&key("en")).unwrap_or("").to_owned(),
            work_category,
            time_limit_hours: limit.and_then(TimeLimit::hours),
            time_limit_working_hours: limit.and_then(TimeLimit::working_hours),
            time_limit_working_days: limit.and_then(TimeLimit::working_days),
        });
    }
    Ok(entries)
}
