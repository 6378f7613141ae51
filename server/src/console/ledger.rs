//! The ledger and the periods in the console: entries with their case and note, reversal with
//! a reason, the chain's verification; periods with the close step and its pre-checks, each
//! period's ranking with drill-down to its entries, and the exports one click away.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{failure, layout, page, Console, Section};
use crate::error::ApiError;
use crate::exports::{self, Names, Reader};
use crate::i18n;
use crate::ledger::book::Book;
use crate::ledger::closing::CloseChecks;
use crate::ledger::preview::Consequence;
use crate::ledger::proposals::{self, FindingInput};
use crate::ledger::views::{CloseInput, ReversalCause, ReversalInput};
use crate::model::{Milli, PeriodStatus, Rule, Zone};
use crate::state::AppState;
use crate::store::ledger::ProposalRow;
use crate::store::{self, now_ms};

#[derive(Debug, Default, Deserialize)]
pub struct LedgerParams {
    period_id: Option<Uuid>,
    zone_id: Option<Uuid>,
}

pub async fn ledger(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Query(q): Query<LedgerParams>,
) -> Response {
    match ledger_page(&state, &c, &q).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

/// At most this many entries on one page (the newest); the exports have them all.
const PAGE: usize = 300;

async fn ledger_page(state: &AppState, c: &Console, q: &LedgerParams) -> Result<Markup, ApiError> {
    let book =
        crate::ledger::book::read(&state.db, &c.session.user, q.period_id, q.zone_id).await?;
    let names = Names::load(&state.db).await?;
    Ok(ledger_markup(c, q, &book, &names))
}

/// The ledger's newest entries, each deduction with its reversal form for supervisors.
fn ledger_markup(c: &Console, q: &LedgerParams, book: &Book, names: &Names) -> Markup {
    let Book {
        entries,
        reversed,
        checked,
        broken,
    } = book;
    let filter = format!(
        "{}{}",
        q.period_id
            .map(|p| format!("&period_id={p}"))
            .unwrap_or_default(),
        q.zone_id
            .map(|z| format!("&zone_id={z}"))
            .unwrap_or_default()
    );
    let supervisor = c.session.user.is_supervisor_level();
    let body = html! {
        h1 { (c.t("console-ledger-title")) }
        @match broken {
            None => p.notice.ok role="status" { (c.ta("console-chain-ok", &[("count", &checked.to_string())])) },
            Some(_) => p.notice.error role="alert" { (c.ta("console-chain-broken", &[("count", &checked.to_string())])) },
        }
        p.bar {
            a.button href={"/console/exports/ledger.csv?" (filter)} { (c.t("console-export-csv")) }
            a.button href={"/console/exports/ledger.xlsx?" (filter)} { (c.t("console-export-xlsx")) }
        }
        @if entries.is_empty() {
            p.muted { (c.t("console-no-entries")) }
        } @else {
            table {
                thead { tr {
                    th.num { (c.t("col-seq")) }
                    th { (c.t("col-approved_at")) }
                    th { (c.t("col-zone_name")) }
                    th { (c.t("col-rule_text")) }
                    th.num { (c.t("col-weighted_points")) }
                    th { (c.t("col-note")) }
                    th { (c.t("console-actions")) }
                } }
                tbody {
                    @for x in entries.iter().rev().take(PAGE) {
                        @let e = &x.entry;
                        tr #{"entry-" (e.seq)} {
                            td.num { (e.seq) }
                            td { (c.time(e.approved_at)) }
                            td { (names.zone_label(&e.zone_id, c.lang)) }
                            td {
                                @if e.kind == "reversal" { span.badge.warn { (i18n::name(c.lang, "entry", "reversal")) } " " }
                                (e.rule_code) " · " (i18n::name(c.lang, "source", &e.source))
                                @if let Some(case) = &e.case_id {
                                    br; a href={"/console/cases/" (case)} { (x.case_description.clone().unwrap_or_default()) }
                                }
                            }
                            td.num { (Milli::to_f64(e.weighted_points_milli)) }
                            td { (x.note.clone().or_else(|| e.reason.clone()).unwrap_or_default()) }
                            td.actions {
                                @if supervisor && e.kind == "deduction" && !reversed.contains(&e.id) {
                                    form method="post" hx-boost="true" action={"/console/ledger/" (e.id) "/reverse"} {
                                        input type="hidden" name="csrf" value=(c.session.csrf);
                                        label.sr-only for={"cause-" (e.seq)} { (c.t("console-reversal-cause")) }
                                        select #{"cause-" (e.seq)} name="cause" {
                                            option value="correction" { (c.t("console-cause-correction")) }
                                            option value="appeal_upheld" { (c.t("console-cause-appeal")) }
                                        }
                                        label.sr-only for={"why-" (e.seq)} { (c.t("console-reason")) }
                                        input #{"why-" (e.seq)} name="reason" required size="12" placeholder=(c.t("console-reason"));
                                        button.danger type="submit" { (c.t("console-reverse")) }
                                    }
                                } @else if reversed.contains(&e.id) {
                                    span.muted { (c.t("console-reversed")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(c, Section::Ledger, &c.t("console-ledger-title"), body)
}

#[derive(Debug, Deserialize)]
pub struct ReverseForm {
    csrf: Option<String>,
    cause: ReversalCause,
    reason: String,
}

pub async fn reverse(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<ReverseForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let input = ReversalInput {
        cause: form.cause,
        reason: form.reason,
    };
    let svc = state.ledger_service();
    match crate::ledger::posting::reverse(&svc, &c.session.user, id, &input).await {
        Ok(_) => Redirect::to("/console/ledger").into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

// ---- periods ----------------------------------------------------------------------------------

pub async fn periods(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match periods_page(&state, &c).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn periods_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let periods = crate::ledger::closing::close_checks(&state.db).await?;
    Ok(periods_markup(c, &periods))
}

/// The periods, each open one with its close checks and, when the reader may, the close form.
fn periods_markup(c: &Console, periods: &[CloseChecks]) -> Markup {
    let body = html! {
        h1 { (c.t("console-periods-title")) }
        table {
            thead { tr {
                th { (c.t("col-period")) }
                th { (c.t("console-span")) }
                th { (c.t("col-state_name")) }
                th { (c.t("console-close-checks")) }
                th { (c.t("console-actions")) }
            } }
            tbody {
                @for checks in periods {
                    @let CloseChecks { period: p, ended, pending } = checks;
                    @let ends = p.ends_at.unix_timestamp() * 1000;
                    tr {
                        td { a href={"/console/periods/" (p.id)} { (p.code) } }
                        td { (c.time(p.starts_at.unix_timestamp() * 1000)) " – " (c.time(ends)) }
                        td {
                            @if p.status == PeriodStatus::Closed {
                                span.badge { (c.t("console-closed")) }
                            } @else {
                                span.badge.ok { (c.t("console-open")) }
                            }
                        }
                        td {
                            @if p.status == PeriodStatus::Open {
                                ul {
                                    li { @if *ended { "✓ " (c.t("console-check-ended")) } @else { "✗ " (c.t("console-check-not-ended")) } }
                                    li { @if *pending == 0 { "✓ " (c.t("console-check-no-pending")) } @else { "✗ " (c.ta("console-check-pending", &[("count", &pending.to_string())])) } }
                                }
                            }
                        }
                        td.actions {
                            @if checks.closable_by(&c.session.user) {
                                form method="post" hx-boost="true" action={"/console/periods/" (p.id) "/close"} {
                                    input type="hidden" name="csrf" value=(c.session.csrf);
                                    @if !*ended { input type="hidden" name="early" value="true"; }
                                    button #{"close-" (p.code)} type="submit" {
                                        @if *ended { (c.t("console-close")) } @else { (c.t("console-close-early")) }
                                    }
                                }
                            }
                            a href={"/console/exports/ranking.xlsx?period_id=" (p.id)} { (c.t("console-ranking-xlsx")) }
                        }
                    }
                }
            }
        }
    };
    layout(c, Section::Periods, &c.t("console-periods-title"), body)
}

pub async fn period(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Response {
    let result = async {
        let p = store::reference::period(&state.db.pool, id)
            .await?
            .ok_or_else(|| ApiError::not_found("period"))?;
        let ranking = crate::ledger::closing::visible_ranking(&state.db, &state.rankings, &c.session.user, &p).await?;
        let names = Names::load(&state.db).await?;
        Ok::<_, ApiError>(layout(
            &c,
            Section::Periods,
            &p.code,
            html! {
                h1 { (c.t("console-ranking-of")) " " (p.code) }
                p.bar {
                    a.button href={"/console/exports/ranking.csv?period_id=" (p.id)} { (c.t("console-ranking-csv")) }
                    a.button href={"/console/exports/ranking.xlsx?period_id=" (p.id)} { (c.t("console-ranking-xlsx")) }
                    a.button href={"/console/exports/report.xlsx?period_id=" (p.id)} { (c.t("console-report")) }
                }
                (super::ranking_table(&c, &names, &ranking, p.id))
            },
        ))
    }
    .await;
    match result {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CloseForm {
    csrf: Option<String>,
    early: Option<String>,
}

pub async fn close(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<CloseForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let input = CloseInput {
        early: form.early.as_deref() == Some("true"),
        decisions: Vec::new(),
        next: None,
    };
    let svc = state.ledger_service();
    match crate::ledger::closing::close_period(&svc, &c.session.user, id, &input).await {
        Ok(_) => Redirect::to("/console/periods").into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

// ---- exports ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    period_id: Option<Uuid>,
    zone_id: Option<Uuid>,
}

/// The API's exports, for the signed-in reader: `ledger.csv`, `ledger.xlsx`, `ranking.csv`,
/// `ranking.xlsx`, `report.xlsx`.
pub async fn export(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ExportParams>,
) -> Response {
    match export_file(&state, &c, &name, &q).await {
        Ok((bytes, mime, file)) => {
            let mut r = bytes.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                crate::download::attachment(&file),
            );
            r
        }
        Err(e) => failure(&c, &headers, e),
    }
}

/// The bytes, content type and file name of export `name`.
async fn export_file(
    state: &AppState,
    c: &Console,
    name: &str,
    q: &ExportParams,
) -> Result<(Vec<u8>, &'static str, String), ApiError> {
    let reader = Reader {
        lang: c.lang,
        tz: c.tz.clone(),
    };
    let user = &c.session.user;
    let period = q
        .period_id
        .ok_or_else(|| ApiError::invalid("period_id", "is required"));
    let xlsx = name.ends_with(".xlsx");
    match name {
        "ledger.csv" | "ledger.xlsx" => {
            let t = exports::ledger(&state.db, user, &reader, q.period_id, q.zone_id).await?;
            t.encode(xlsx, "ledger")
        }
        "ranking.csv" | "ranking.xlsx" => {
            let (t, code) =
                exports::ranking(&state.db, &state.rankings, user, &reader, period?).await?;
            t.encode(xlsx, &format!("ranking-{code}"))
        }
        "report.xlsx" => {
            let (bytes, code) = exports::report::period_report(
                &state.db,
                &state.rankings,
                &state.blobs,
                user,
                &reader,
                period?,
            )
            .await?;
            Ok((bytes, exports::table::XLSX, format!("report-{code}.xlsx")))
        }
        _ => Err(ApiError::not_found("export")),
    }
}

// ---- decisions: proposals waiting, and findings with no case ------------------------------

pub async fn decisions(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match decisions_page(&state, &c).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn decisions_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let user = &c.session.user;
    let waiting = crate::ledger::preview::waiting(&state.ledger_service(), user, 200).await?;
    let names = Names::load(&state.db).await?;
    let rules = proposals::finding_rules(&state.db).await?;
    let zones = crate::ledger::closing::scoped_zones(&state.db, user, None).await?;
    let zones = store::reference::zones(&state.db.pool, zones.as_deref()).await?;
    Ok(decisions_markup(c, &waiting, &names, &rules, &zones))
}

/// The proposals waiting, each with what approving it would do and the forms that decide it,
/// and the form that proposes a finding with no case.
fn decisions_markup(
    c: &Console,
    rows: &[(ProposalRow, Consequence)],
    names: &Names,
    rules: &[Rule],
    all_zones: &[Zone],
) -> Markup {
    let today = crate::localtime::civil(&c.tz, now_ms()).date().to_string();
    let body = html! {
        h1 { (c.t("console-decisions-title")) }
        @if rows.is_empty() {
            p.muted { (c.t("console-no-pending")) }
        } @else {
            table {
                thead { tr {
                    th { (c.t("col-zone_name")) }
                    th { (c.t("col-source_name")) }
                    th { (c.t("col-rule")) }
                    th { (c.t("col-note")) }
                    th { (c.t("console-consequence")) }
                    th { (c.t("console-actions")) }
                } }
                tbody {
                    @for (p, k) in rows {
                        tr #{"proposal-" (p.id)} {
                            td { (names.zone_label(&p.zone_id.to_string(), c.lang)) }
                            td { (i18n::name(c.lang, "source", &p.source)) }
                            td {
                                (p.rule_code)
                                @if let Some(case) = p.case_id {
                                    br; a href={"/console/cases/" (case)} { (c.t("console-open-case")) }
                                }
                            }
                            td { (p.note) }
                            td {
                                (k.raw_points) " × " (k.coefficient.map(|x| x.to_string()).unwrap_or_else(|| "?".into()))
                                " = " strong { (k.weighted_points.map(|x| x.to_string()).unwrap_or_else(|| "?".into())) }
                                @if let (Some((s0, r0)), Some((s1, r1))) = (k.before, k.after) {
                                    br; span.muted { (s0) " (" (r0) ") → " (s1) " (" (r1) ")" }
                                }
                                @for b in &k.blockers {
                                    br; span.badge.warn { (i18n::error_message(c.lang, *b, "", &serde_json::Value::Null)) }
                                }
                            }
                            td.actions {
                                form method="post" hx-boost="true" action={"/console/deductions/" (p.id) "/approve"} {
                                    input type="hidden" name="csrf" value=(c.session.csrf);
                                    input type="hidden" name="back" value="decisions";
                                    button type="submit" disabled[!k.blockers.is_empty()] { (c.t("console-approve")) }
                                }
                                form method="post" hx-boost="true" action={"/console/deductions/" (p.id) "/reject"} {
                                    input type="hidden" name="csrf" value=(c.session.csrf);
                                    input type="hidden" name="back" value="decisions";
                                    label.sr-only for={"why-" (p.id)} { (c.t("console-reason")) }
                                    input #{"why-" (p.id)} name="reason" required size="10" placeholder=(c.t("console-reason"));
                                    button.danger type="submit" { (c.t("console-reject-deduction")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (c.t("console-direct-title")) }
        p.hint { (c.t("console-direct-hint")) }
        form method="post" hx-boost="true" action="/console/deductions/direct" {
            input type="hidden" name="csrf" value=(c.session.csrf);
            div.filters {
                div {
                    label for="d-zone" { (c.t("col-zone_name")) }
                    select #d-zone name="zone_id" required {
                        @for z in all_zones {
                            option value=(z.id) { (z.code) " " (z.translations.pick(c.lang, &z.name)) }
                        }
                    }
                }
                div {
                    label for="d-source" { (c.t("col-source_name")) }
                    select #d-source name="source" {
                        @for s in proposals::FINDING_SOURCES {
                            option value=(s.as_str()) { (i18n::name(c.lang, "source", s.as_str())) }
                        }
                    }
                }
                div {
                    label for="d-rule" { (c.t("col-rule_text")) }
                    select #d-rule name="rule_code" {
                        @for r in rules {
                            option value=(r.code) { (r.translations.pick(c.lang, &r.description)) " (" (r.points) ")" }
                        }
                    }
                }
                div {
                    label for="d-found" { (c.t("col-found_at")) }
                    input #d-found type="date" name="found_on" value=(today) required;
                }
                div {
                    label for="d-note" { (c.t("col-note")) }
                    input #d-note name="note" required size="30";
                }
                button #propose-direct type="submit" { (c.t("console-propose")) }
            }
        }
    };
    layout(c, Section::Decisions, &c.t("console-decisions-title"), body)
}

#[derive(Debug, Deserialize)]
pub struct DirectForm {
    csrf: Option<String>,
    zone_id: Uuid,
    source: String,
    rule_code: String,
    /// A local date (`YYYY-MM-DD`): the finding is taken to be at noon that day.
    found_on: String,
    note: String,
}

/// A finding with no case (a media report, a leader's criticism, a complaint) proposed as a
/// deduction, to be approved on the decisions page like any other.
pub async fn propose_direct(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Form(form): Form<DirectForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let result = async {
        let finding = FindingInput {
            source: proposals::finding_source(&form.source)?,
            found_on: form
                .found_on
                .parse()
                .map_err(|_| ApiError::invalid("found_on", "a date written YYYY-MM-DD"))?,
            zone_id: form.zone_id,
            rule_code: form.rule_code,
            note: form.note,
        };
        proposals::propose_finding(&state.ledger_service(), &c.session.user, finding).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/console/decisions").into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}
