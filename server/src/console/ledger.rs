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
use crate::ledger::views::{CloseInput, ReversalCause, ReversalInput};
use crate::model::{Milli, PeriodStatus, Source};
use crate::state::AppState;
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
    let user = &c.session.user;
    let zones = crate::ledger::closing::scoped_zones(&state.db, user, q.zone_id).await?;
    let names = Names::load(&state.db).await?;
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store::ledger::export_entries(
            &state.db.pool,
            q.period_id,
            zones.as_deref(),
            after,
            1000,
        )
        .await?;
        let Some(last) = page.last() else { break };
        after = last.entry.seq;
        entries.extend(page);
    }
    let reversed: std::collections::HashSet<String> = entries
        .iter()
        .filter_map(|x| x.entry.reverses_id.clone())
        .collect();
    let (checked, broken) = store::ledger::verify_chain(&state.db.pool).await?;
    let filter = format!(
        "{}{}",
        q.period_id
            .map(|p| format!("&period_id={p}"))
            .unwrap_or_default(),
        q.zone_id
            .map(|z| format!("&zone_id={z}"))
            .unwrap_or_default()
    );
    let supervisor = user.is_supervisor_level();
    let body = html! {
        h1 { (c.t("console-ledger-title")) }
        @match &broken {
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
    Ok(layout(
        c,
        Section::Ledger,
        &c.t("console-ledger-title"),
        body,
    ))
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
    let periods = store::reference::periods(&state.db.pool).await?;
    let now = now_ms();
    let mut rows = Vec::new();
    for p in periods.iter().rev() {
        let pending = if p.status == PeriodStatus::Open {
            let mut conn = state.db.pool.acquire().await?;
            store::ledger::pending_proposals(&mut conn, p.id)
                .await?
                .len()
        } else {
            0
        };
        rows.push((p, pending));
    }
    let admin = c.session.user.is_admin();
    let supervisor = c.session.user.is_supervisor_level();
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
                @for (p, pending) in &rows {
                    @let ends = p.ends_at.unix_timestamp() * 1000;
                    @let ended = ends <= now;
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
                                    li { @if ended { "✓ " (c.t("console-check-ended")) } @else { "✗ " (c.t("console-check-not-ended")) } }
                                    li { @if *pending == 0 { "✓ " (c.t("console-check-no-pending")) } @else { "✗ " (c.ta("console-check-pending", &[("count", &pending.to_string())])) } }
                                }
                            }
                        }
                        td.actions {
                            @if p.status == PeriodStatus::Open && supervisor && *pending == 0 && (ended || admin) {
                                form method="post" hx-boost="true" action={"/console/periods/" (p.id) "/close"} {
                                    input type="hidden" name="csrf" value=(c.session.csrf);
                                    @if !ended { input type="hidden" name="early" value="true"; }
                                    button #{"close-" (p.code)} type="submit" {
                                        @if ended { (c.t("console-close")) } @else { (c.t("console-close-early")) }
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
    Ok(layout(
        c,
        Section::Periods,
        &c.t("console-periods-title"),
        body,
    ))
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
    let reader = Reader {
        lang: c.lang,
        tz: c.tz.clone(),
    };
    let user = &c.session.user;
    let result = async {
        let need_period = || {
            q.period_id
                .ok_or_else(|| ApiError::invalid("period_id", "is required"))
        };
        let (bytes, mime, file) = match name.as_str() {
            "ledger.csv" | "ledger.xlsx" => {
                let t = exports::ledger(&state.db, user, &reader, q.period_id, q.zone_id).await?;
                t.encode(name.ends_with(".xlsx"), "ledger")?
            }
            "ranking.csv" | "ranking.xlsx" => {
                let (t, code) =
                    exports::ranking(&state.db, &state.rankings, user, &reader, need_period()?)
                        .await?;
                t.encode(name.ends_with(".xlsx"), &format!("ranking-{code}"))?
            }
            "report.xlsx" => {
                let (bytes, code) = exports::report::period_report(
                    &state.db,
                    &state.rankings,
                    &state.blobs,
                    user,
                    &reader,
                    need_period()?,
                )
                .await?;
                (bytes, exports::table::XLSX, format!("report-{code}.xlsx"))
            }
            _ => return Err(ApiError::not_found("export")),
        };
        Ok::<_, ApiError>((bytes, mime, file))
    }
    .await;
    match result {
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

// ---- decisions: proposals waiting, and findings with no case ------------------------------

/// Sources a finding with no case comes from.
const DIRECT_SOURCES: [Source; 3] = [
    Source::Media,
    Source::LeaderCriticism,
    Source::PublicComplaint,
];

pub async fn decisions(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match decisions_page(&state, &c).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn decisions_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let user = &c.session.user;
    user.require_any(&[gridline_sync::Role::Supervisor])?;
    let zones = crate::ledger::closing::scoped_zones(&state.db, user, None).await?;
    let pending =
        store::ledger::proposals(&state.db.pool, zones.as_deref(), Some("proposed"), 200).await?;
    let names = Names::load(&state.db).await?;
    let svc = state.ledger_service();
    let mut rows = Vec::new();
    for p in pending {
        let k = crate::ledger::preview::consequence(&svc, user, p.id).await?;
        rows.push((p, k));
    }
    let rules: Vec<crate::model::Rule> =
        store::reference::active_rulebook(&state.db.pool, now_ms())
            .await?
            .map(|b| b.rules)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.sources.iter().any(|s| DIRECT_SOURCES.contains(s)))
            .collect();
    let all_zones = store::reference::zones(&state.db.pool, zones.as_deref()).await?;
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
                    @for (p, k) in &rows {
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
                        @for z in &all_zones {
                            option value=(z.id) { (z.code) " " (z.translations.pick(c.lang, &z.name)) }
                        }
                    }
                }
                div {
                    label for="d-source" { (c.t("col-source_name")) }
                    select #d-source name="source" {
                        @for s in DIRECT_SOURCES {
                            option value=(s.as_str()) { (i18n::name(c.lang, "source", s.as_str())) }
                        }
                    }
                }
                div {
                    label for="d-rule" { (c.t("col-rule_text")) }
                    select #d-rule name="rule_code" {
                        @for r in &rules {
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
    Ok(layout(
        c,
        Section::Decisions,
        &c.t("console-decisions-title"),
        body,
    ))
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
        let source = Source::parse(&form.source)
            .filter(|s| DIRECT_SOURCES.contains(s))
            .ok_or_else(|| {
                ApiError::invalid("source", "media, leader_criticism or public_complaint")
            })?;
        let date: jiff::civil::Date = form
            .found_on
            .parse()
            .map_err(|_| ApiError::invalid("found_on", "a date written YYYY-MM-DD"))?;
        let noon = date
            .at(12, 0, 0, 0)
            .to_zoned_datetime(c.tz.clone())
            .map_err(|_| ApiError::invalid("found_on", "not a day of the site's calendar"))?;
        let found_at = time::OffsetDateTime::from_unix_timestamp(noon.timestamp().as_second())
            .map_err(|_| ApiError::invalid("found_on", "out of range"))?;
        let input = crate::ledger::views::ProposalInput {
            proposal_id: None,
            case_id: None,
            zone_id: Some(form.zone_id),
            source: Some(source),
            rule_code: form.rule_code.clone(),
            category_code: None,
            found_at: Some(found_at),
            note: form.note.clone(),
            basis: crate::model::Basis::Finding,
        };
        crate::ledger::proposals::propose(&state.ledger_service(), &c.session.user, input).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to("/console/decisions").into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}
