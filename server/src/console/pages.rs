//! The console's pages and the requests they send: sign-in and sign-out, the overview, the
//! review queue (with thumbnails, keyboard triage and bulk actions) and the case page.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use futures::TryStreamExt;
use gridline_sync::case::CaseState;
use gridline_sync::workflow::{WorkflowAction, WorkflowActor, WorkflowInput};
use gridline_sync::Role;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    error_page, failure, fragment, head, layout, page, Console, Section, LANG_COOKIE,
    SESSION_COOKIE,
};
use crate::auth::throttle::{self, ClientAddr};
use crate::error::ApiError;
use crate::exports::Names;
use crate::i18n::{self, Lang};
use crate::model::CaseView;
use crate::review::queue::{EvidenceFilter, QueueItem, QueueQuery};
use crate::review::TransitionRequest;
use crate::state::AppState;
use crate::store::{self, now_ms};

// ---- sign-in ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a console path: never another site after sign-in.
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

fn login_page(lang: Lang, next: &str, error: Option<&str>, username: &str) -> Markup {
    let other = if lang == Lang::ZhCn {
        Lang::En
    } else {
        Lang::ZhCn
    };
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            (head(lang, &i18n::text(lang, "console-sign-in"), None))
            body {
                main #main.login {
                    h1 { (i18n::text(lang, "console-brand")) }
                    @if let Some(e) = error {
                        p.notice.error role="alert" { (e) }
                    }
                    form method="post" action="/console/login" {
                        input type="hidden" name="next" value=(next);
                        div {
                            label for="username" { (i18n::text(lang, "console-username")) }
                            input #username name="username" autocomplete="username" required value=(username) autofocus;
                        }
                        div {
                            label for="password" { (i18n::text(lang, "console-password")) }
                            input #password name="password" type="password" autocomplete="current-password" required;
                        }
                        button type="submit" { (i18n::text(lang, "console-sign-in")) }
                    }
                    p {
                        a href={"/console/lang?set=" (other.tag())} lang=(other.tag()) {
                            (i18n::text(other, "console-language-name"))
                        }
                    }
                }
            }
        }
    }
}

pub async fn login_form(
    axum::Extension(lang): axum::Extension<Lang>,
    Query(q): Query<NextQuery>,
) -> Response {
    page(
        StatusCode::OK,
        login_page(lang, &local_next(q.next.as_deref()), None, ""),
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.console.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub async fn login(
    State(state): State<AppState>,
    axum::Extension(lang): axum::Extension<Lang>,
    client: ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_next(form.next.as_deref());
    if !super::same_origin(&headers) {
        return error_page(
            lang,
            StatusCode::FORBIDDEN,
            &i18n::text(lang, "console-csrf"),
        );
    }
    let keys = throttle::keys(&state.config.auth, &form.username, client);
    let refused = |e: ApiError| {
        let message = i18n::error_message(lang, e.code, &e.message, &e.details);
        page(
            e.status(),
            login_page(lang, &next, Some(&message), &form.username),
        )
    };
    let user = match crate::accounts::authenticate(
        &state.db,
        &state.config.auth,
        &form.username,
        &form.password,
        &keys,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => return refused(e),
    };
    // The console is the office's: phones are for inspectors and squads.
    let office = [
        Role::Admin,
        Role::Supervisor,
        Role::ZoneChief,
        Role::RoadChief,
        Role::SectionChief,
        Role::HotlineOperator,
    ];
    if !user.roles.iter().any(|r| office.contains(r)) {
        return page(
            StatusCode::FORBIDDEN,
            login_page(
                lang,
                &next,
                Some(&i18n::text(lang, "console-not-for-you")),
                &form.username,
            ),
        );
    }
    let token = match crate::accounts::open_session(&state.db, &state.config.console, &user).await {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &token, state.config.console.session_max_secs),
    );
    r
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    if let Some(token) = super::cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = crate::accounts::end_session(&state.db, &token).await {
            return failure(&c, &headers, e);
        }
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    r
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    set: String,
}

/// Switches the language (a cookie, kept a year) and goes back to the page it came from.
pub async fn switch_language(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let lang = Lang::parse(&q.set).unwrap_or(Lang::ZhCn);
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console").map(|i| r[i..].to_owned()));
    let mut r = Redirect::to(&local_next(back.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
        lang.tag()
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---- overview ---------------------------------------------------------------------------------

pub async fn overview(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match overview_page(&state, &c).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn overview_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let user = &c.session.user;
    let overview = crate::review::overview::overview(&state.db, user, now_ms()).await?;
    let counts = overview.counts;
    let names = Names::load(&state.db).await?;
    let now = time::OffsetDateTime::now_utc();
    let period = store::reference::periods(&state.db.pool)
        .await?
        .into_iter()
        .find(|p| p.starts_at <= now && now < p.ends_at);
    let ranking = match &period {
        Some(p) => crate::ledger::closing::visible_ranking(&state.db, &state.rankings, user, p)
            .await
            .ok(),
        None => None,
    };
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
            @if let Some(p) = &period { " · " (p.code) }
        }
        @match (&ranking, &period) {
            (Some(r), Some(p)) => { (super::ranking_table(c, &names, r, p.id)) }
            _ => { p.muted { (c.t("console-no-ranking")) } }
        }
    };
    Ok(layout(
        c,
        Section::Overview,
        &c.t("console-overview-title"),
        body,
    ))
}

// ---- the review queue -------------------------------------------------------------------------

/// The queue's filters as a form sends them: empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct QueueParams {
    zone_id: Option<String>,
    category: Option<String>,
    work_category: Option<String>,
    source: Option<String>,
    state: Option<String>,
    evidence: Option<String>,
    flagged: Option<String>,
    overdue: Option<String>,
    after: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl QueueParams {
    /// These filters, as a query string, with the cursor of the page after.
    fn with_cursor(&self, after: &str) -> String {
        let fields = [
            ("zone_id", &self.zone_id),
            ("category", &self.category),
            ("work_category", &self.work_category),
            ("source", &self.source),
            ("state", &self.state),
            ("evidence", &self.evidence),
            ("flagged", &self.flagged),
            ("overdue", &self.overdue),
        ];
        let enc = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        fields
            .into_iter()
            .filter_map(|(k, v)| non_empty(v).map(|v| format!("{k}={}&", enc(v))))
            .chain([format!("after={}", enc(after))])
            .collect()
    }

    fn query(&self) -> Result<QueueQuery, ApiError> {
        let flag = |name: &str, v: &Option<String>| match non_empty(v) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        };
        Ok(QueueQuery {
            zone_id: match non_empty(&self.zone_id) {
                Some(z) => Some(
                    Uuid::parse_str(z).map_err(|_| ApiError::invalid("zone_id", "not a zone"))?,
                ),
                None => None,
            },
            category: non_empty(&self.category).map(str::to_owned),
            work_category: match non_empty(&self.work_category) {
                Some(w) => Some(
                    crate::model::WorkCategory::parse(w)
                        .ok_or_else(|| ApiError::invalid("work_category", "not a work category"))?,
                ),
                None => None,
            },
            source: non_empty(&self.source).map(str::to_owned),
            state: non_empty(&self.state).map(str::to_owned),
            evidence: match non_empty(&self.evidence) {
                Some("complete") => Some(EvidenceFilter::Complete),
                Some("incomplete") => Some(EvidenceFilter::Incomplete),
                Some(_) => return Err(ApiError::invalid("evidence", "complete or incomplete")),
                None => None,
            },
            flag: None,
            flagged: flag("flagged", &self.flagged)?,
            overdue: flag("overdue", &self.overdue)?,
            after: non_empty(&self.after).map(str::to_owned),
            limit: Some(50),
        })
    }
}

pub async fn queue(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Query(params): Query<QueueParams>,
) -> Response {
    match queue_page(&state, &c, &params).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn queue_page(
    state: &AppState,
    c: &Console,
    params: &QueueParams,
) -> Result<Markup, ApiError> {
    let q = params.query()?;
    let items = crate::review::queue::queue(&state.db, &c.session.user, &q).await?;
    let names = Names::load(&state.db).await?;
    let zones = store::reference::zones(&state.db.pool, None).await?;
    let taxonomy = store::reference::taxonomy(&state.db.pool).await?;
    let states = [
        ("", "console-waiting"),
        ("any", "console-any"),
        ("reported", "state-reported"),
        ("pending_verification", "state-pending_verification"),
        ("filed", "state-filed"),
        ("dispatched,in_progress", "state-dispatched"),
        ("closed", "state-closed"),
    ];
    let selected = |v: &Option<String>, want: &str| non_empty(v).unwrap_or("") == want;
    let body = html! {
        h1 { (c.t("console-queue-title")) }
        form.filters method="get" action="/console/queue" {
            div {
                label for="f-zone" { (c.t("col-zone_name")) }
                select #f-zone name="zone_id" {
                    option value="" { (c.t("console-any")) }
                    @for z in &zones {
                        option value=(z.id) selected[selected(&params.zone_id, &z.id.to_string())] {
                            (z.code) " " (z.translations.pick(c.lang, &z.name))
                        }
                    }
                }
            }
            div {
                label for="f-category" { (c.t("col-category_name")) }
                select #f-category name="category" {
                    option value="" { (c.t("console-any")) }
                    @for w in crate::model::WorkCategory::ALL {
                        optgroup label=(i18n::name(c.lang, "work", w.as_str())) {
                            @for t in taxonomy.iter().filter(|t| t.work_category == *w) {
                                option value=(t.key) selected[selected(&params.category, &t.key)] {
                                    (t.code) " " (if c.lang == Lang::ZhCn { &t.name_zh } else { &t.name_en })
                                }
                            }
                        }
                    }
                }
            }
            div {
                label for="f-work" { (c.t("col-work_category")) }
                select #f-work name="work_category" {
                    option value="" { (c.t("console-any")) }
                    @for w in crate::model::WorkCategory::ALL {
                        option value=(w.as_str()) selected[selected(&params.work_category, w.as_str())] {
                            (i18n::name(c.lang, "work", w.as_str()))
                        }
                    }
                }
            }
            div {
                label for="f-source" { (c.t("col-source_name")) }
                select #f-source name="source" {
                    option value="" { (c.t("console-any")) }
                    @for src in crate::model::Source::ALL {
                        option value=(src.as_str()) selected[selected(&params.source, src.as_str())] {
                            (i18n::name(c.lang, "source", src.as_str()))
                        }
                    }
                }
            }
            div {
                label for="f-state" { (c.t("col-state_name")) }
                select #f-state name="state" {
                    @for (value, key) in states {
                        option value=(value) selected[selected(&params.state, value)] { (c.t(key)) }
                    }
                }
            }
            div {
                label for="f-evidence" { (c.t("console-evidence")) }
                select #f-evidence name="evidence" {
                    option value="" { (c.t("console-any")) }
                    option value="complete" selected[selected(&params.evidence, "complete")] { (c.t("console-evidence-complete")) }
                    option value="incomplete" selected[selected(&params.evidence, "incomplete")] { (c.t("console-evidence-incomplete")) }
                }
            }
            div {
                label for="f-flagged" { (c.t("col-flags")) }
                select #f-flagged name="flagged" {
                    option value="" { (c.t("console-any")) }
                    option value="true" selected[selected(&params.flagged, "true")] { (c.t("console-flagged-only")) }
                    option value="false" selected[selected(&params.flagged, "false")] { (c.t("console-unflagged-only")) }
                }
            }
            div {
                label for="f-overdue" { (c.t("console-overdue-filter")) }
                select #f-overdue name="overdue" {
                    option value="" { (c.t("console-any")) }
                    option value="true" selected[selected(&params.overdue, "true")] { (c.t("yes")) }
                    option value="false" selected[selected(&params.overdue, "false")] { (c.t("no")) }
                }
            }
            button type="submit" { (c.t("console-apply")) }
        }
        p.hint { (c.t("console-keyboard-hint")) }
        @if items.items.is_empty() {
            p.notice { (c.t("console-empty-queue")) }
        } @else {
            form #bulk method="post" action="/console/queue/bulk" {
                input type="hidden" name="csrf" value=(c.session.csrf);
                div.bar {
                    label.sr-only for="bulk-action" { (c.t("console-bulk-action")) }
                    select #bulk-action name="action" {
                        option value="file" { (c.t("action-file")) }
                        option value="dispatch" { (c.t("action-dispatch")) }
                        option value="reject" { (c.t("action-reject")) }
                    }
                    label.sr-only for="bulk-comment" { (c.t("console-reason")) }
                    input #bulk-comment name="comment" placeholder=(c.t("console-reason-for-reject"));
                    button type="submit" { (c.t("console-bulk-apply")) }
                }
            }
            table {
                caption.sr-only { (c.t("console-queue-title")) }
                thead { tr {
                    th { span.sr-only { (c.t("console-select")) } }
                    th { (c.t("console-photos")) }
                    th { (c.t("col-category_name")) }
                    th { (c.t("col-zone_name")) }
                    th { (c.t("col-state_name")) }
                    th { (c.t("col-captured_at")) }
                    th { (c.t("console-evidence")) }
                    th { (c.t("console-actions")) }
                } }
                tbody {
                    @for item in &items.items {
                        (queue_row(c, &names, item, &originals_on_page(&items.items, item)))
                    }
                }
            }
            @if let Some(next) = &items.next {
                p { a href={"/console/queue?" (params.with_cursor(next))} { (c.t("console-next-page")) } }
            }
        }
    };
    Ok(layout(c, Section::Queue, &c.t("console-queue-title"), body))
}

/// Thumbnails of a case's photos of one role, each served through the console.
fn thumbs(c: &Console, view: &CaseView, role: &str, max: usize) -> Markup {
    html! {
        span.thumbs {
            @for p in view.photos.iter().filter(|p| p.role == role).take(max) {
                img src={"/console/photos/" (p.sha256) "/thumb"} loading="lazy" width="72" height="54"
                    alt=(c.ta("console-photo-alt", &[("role", &c.t(&format!("console-role-{role}")))]));
            }
        }
    }
}

/// The other cases of a queue page that `item` may duplicate: the same zone and category.
fn originals_on_page(
    items: &[QueueItem],
    item: &QueueItem,
) -> Vec<crate::store::review::DuplicateCandidate> {
    if item.case.state != CaseState::Reported {
        return Vec::new();
    }
    items
        .iter()
        .map(|i| &i.case)
        .filter(|o| {
            o.id != item.case.id
                && o.zone_id == item.case.zone_id
                && o.category_code == item.case.category_code
        })
        .map(|o| crate::store::review::DuplicateCandidate {
            id: o.id,
            description: o.description.clone(),
            state: o.state,
            captured_at: store::ms_from_time(o.captured_at),
            received_at: store::ms_from_time(o.received_at),
        })
        .collect()
}

fn queue_row(
    c: &Console,
    names: &Names,
    item: &QueueItem,
    originals: &[crate::store::review::DuplicateCandidate],
) -> Markup {
    let v = &item.case;
    let id = v.id;
    let vals = |action: &str| {
        serde_json::json!({"action": action, "base_version": v.version, "row": "1"}).to_string()
    };
    html! {
        tr.queue-row #{"case-" (id)} data-href={"/console/cases/" (id)} {
            td {
                input type="checkbox" name="ids" value=(id) form="bulk"
                    aria-label=(c.ta("console-select-case", &[("case", &names.category_label(&v.category_code, c.lang))]));
            }
            td { (thumbs(c, v, "before", 3)) }
            td {
                a href={"/console/cases/" (id)} { (names.category_label(&v.category_code, c.lang)) }
                br;
                span.muted { (v.description) }
            }
            td { (names.zone_label(&v.zone_id.to_string(), c.lang)) }
            td {
                (i18n::name(c.lang, "state", v.state.as_str()))
                @if item.workflow.overdue { " " span.badge.warn { (c.t("col-overdue")) } }
            }
            td { (c.time(v.captured_at.unix_timestamp() * 1000)) }
            td {
                @if item.evidence.complete {
                    span.badge.ok { (c.t("console-evidence-complete")) }
                } @else {
                    span.badge.warn { (c.t("console-evidence-incomplete")) }
                }
                @for f in &item.evidence.flags {
                    " " span.badge.flag title=(c.t(&format!("flag-{f}"))) { (c.t(&format!("flag-{f}"))) }
                }
            }
            td.actions {
                @if v.state == CaseState::Reported {
                    button type="button" data-action="file" hx-post={"/console/cases/" (id) "/transition"}
                        hx-vals=(vals("file")) hx-target="closest tr" hx-swap="outerHTML" {
                        (c.t("action-file"))
                    }
                    form hx-post={"/console/cases/" (id) "/transition"} hx-target="closest tr" hx-swap="outerHTML" {
                        input type="hidden" name="action" value="reject";
                        input type="hidden" name="base_version" value=(v.version);
                        input type="hidden" name="row" value="1";
                        label.sr-only for={"reason-" (id)} { (c.t("console-reason")) }
                        input #{"reason-" (id)} name="comment" required size="10" placeholder=(c.t("console-reason"));
                        button.danger type="submit" { (c.t("action-reject")) }
                    }
                    @if !originals.is_empty() {
                        form hx-post={"/console/cases/" (id) "/transition"} hx-target="closest tr" hx-swap="outerHTML" {
                            input type="hidden" name="action" value="mark_duplicate";
                            input type="hidden" name="base_version" value=(v.version);
                            input type="hidden" name="row" value="1";
                            label.sr-only for={"dup-" (id)} { (c.t("console-duplicate-of")) }
                            (original_select(c, &format!("dup-{id}"), originals))
                            button type="submit" { (c.t("action-mark_duplicate")) }
                        }
                    }
                } @else if v.state == CaseState::PendingVerification {
                    button type="button" hx-post={"/console/cases/" (id) "/transition"}
                        hx-vals=(vals("close")) hx-target="closest tr" hx-swap="outerHTML" {
                        (c.t("action-close"))
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct BulkForm {
    csrf: Option<String>,
    action: String,
    comment: Option<String>,
    #[serde(default)]
    ids: Vec<Uuid>,
}

/// A bulk action on the selected cases: each goes through the workflow on its own; the page
/// says how many succeeded and why any did not.
pub async fn bulk(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // `ids` repeats, which serde_urlencoded's struct form cannot read: collect by hand.
    let mut form = BulkForm {
        csrf: None,
        action: String::new(),
        comment: None,
        ids: Vec::new(),
    };
    for (k, v) in form_fields(&body) {
        match k.as_str() {
            "csrf" => form.csrf = Some(v),
            "action" => form.action = v,
            "comment" => form.comment = Some(v),
            "ids" => {
                if let Ok(id) = Uuid::parse_str(&v) {
                    form.ids.push(id);
                }
            }
            _ => {}
        }
    }
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let action = match form.action.as_str() {
        "file" => WorkflowAction::File,
        "dispatch" => WorkflowAction::Dispatch,
        "reject" => WorkflowAction::Reject,
        _ => {
            return failure(
                &c,
                &headers,
                ApiError::invalid("action", "file, dispatch or reject"),
            )
        }
    };
    let outcomes = crate::review::transition_each(
        &state.db,
        &state.config.work_week(),
        &c.session.user,
        &form.ids,
        action,
        form.comment.clone(),
    )
    .await;
    let done = outcomes.iter().filter(|(_, r)| r.is_ok()).count();
    let refused: Vec<String> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .map(|e| i18n::error_message(c.lang, e.code, &e.message, &e.details))
        .collect();
    let summary = c.ta(
        "console-bulk-done",
        &[
            ("done", &done.to_string()),
            ("refused", &refused.len().to_string()),
        ],
    );
    let markup = layout(
        &c,
        Section::Queue,
        &c.t("console-queue-title"),
        html! {
            h1 { (c.t("console-queue-title")) }
            p.notice.ok role="status" { (summary) }
            @for r in &refused { p.notice.error { (r) } }
            p { a href="/console/queue" { (c.t("console-back-to-queue")) } }
        },
    );
    page(StatusCode::OK, markup)
}

/// A urlencoded form body as its pairs, in order, repeated names kept.
pub(super) fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

// ---- the case page ----------------------------------------------------------------------------

async fn load_case(state: &AppState, c: &Console, id: Uuid) -> Result<CaseView, ApiError> {
    let mut view =
        crate::sync::view::case_views(&mut state.db.reader().await?.reader(), Vec::new(), &[id])
            .await?
            .remove(&id)
            .ok_or_else(|| ApiError::not_found("case"))?;
    let user = &c.session.user;
    user.scope(&state.db)
        .await?
        .check_case_visible(&mut *state.db.pool.acquire().await?, user, id, view.zone_id)
        .await?;
    crate::sync::view::with_evidence(&state.db, std::slice::from_mut(&mut view)).await?;
    Ok(view)
}

pub async fn case_page(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Response {
    let result = async {
        let view = load_case(&state, &c, id).await?;
        let wf = crate::review::workflow_of(&state.db, &c.session.user, id).await?;
        let names = Names::load(&state.db).await?;
        let deduction = deduction_of(&state, &c, &view).await?;
        let map = case_map(&state, &c, &view).await?;
        let (originals, nearby) = if view.state == CaseState::Reported {
            let nearby = crate::intake::suggestions_for(
                &state.db,
                &state.config.intake,
                &c.session.user,
                id,
            )
            .await?;
            let mut originals = crate::review::duplicate_candidates(&state.db, &view).await?;
            for n in &nearby {
                if !originals.iter().any(|o| o.id == n.case_id) {
                    if let Ok(state) = store::cases::decode_state(&n.state) {
                        originals.insert(
                            0,
                            crate::store::review::DuplicateCandidate {
                                id: n.case_id,
                                description: n.description.clone(),
                                state,
                                captured_at: store::ms_from_time(n.received_at),
                                received_at: store::ms_from_time(n.received_at),
                            },
                        );
                    }
                }
            }
            (originals, nearby)
        } else {
            (Vec::new(), Vec::new())
        };
        let intake = if super::intake::takes_reports(&c) {
            let record = crate::intake::record_of(&state.db, &c.session.user, id).await?;
            let documents = crate::documents::list(&state.db, &c.session.user, id).await?;
            (record.received_at.is_some() || !record.callers.is_empty() || !documents.is_empty())
                .then_some((record, documents))
        } else {
            None
        };
        // The ledger's own rule (a visit that found it, with a photo), not a look at the events.
        let verified = match gridline_sync::case::CaseSource::parse(&view.source) {
            Some(s) if s.needs_site_verification() => {
                let mut conn = state.db.pool.acquire().await?;
                Some(store::intake::verified_on_site(&mut conn, id).await?)
            }
            _ => None,
        };
        Ok::<_, ApiError>(case_markup(
            &c,
            &names,
            CaseParts {
                v: &view,
                wf: &wf,
                deduction: &deduction,
                originals: &originals,
                nearby: &nearby,
                intake: intake.as_ref(),
                verified,
            },
            map,
        ))
    }
    .await;
    match result {
        Ok(m) => super::map::with_tiles(&state, page(StatusCode::OK, m)),
        Err(e) => failure(&c, &headers, e),
    }
}

/// The transitions this user may make from the case's state (those a phone makes with a photo
/// are left to the phone).
fn possible_actions(
    c: &Console,
    view: &CaseView,
    wf: &crate::review::CaseWorkflow,
) -> Vec<WorkflowAction> {
    let user = &c.session.user;
    let actor = WorkflowActor {
        is_supervisor: user.is_supervisor_level(),
        is_reporter: view.reporter_id == user.user_id,
        is_assignee: wf.assignees.contains(&user.user_id),
    };
    let input = WorkflowInput {
        has_comment: true,
        has_after_photo: true,
        has_original: true,
    };
    WorkflowAction::ALL
        .iter()
        .copied()
        .filter(|a| *a != WorkflowAction::ReportRectified)
        .filter(|a| gridline_sync::workflow::apply(*a, view.state, actor, input).is_ok())
        .collect()
}

/// The case's zone with the position the phone claimed and where each photo says (EXIF) it
/// was taken, with the distance between them.
async fn case_map(state: &AppState, c: &Console, v: &CaseView) -> Result<Markup, ApiError> {
    let zone = store::reference::zone(&state.db.pool, v.zone_id).await?;
    let mut markers = vec![super::map::Marker {
        lat: v.location.lat,
        lon: v.location.lon,
        class: "claimed",
        label: c.t("console-claimed"),
        href: None,
    }];
    let mut distances = Vec::new();
    for p in &v.photos {
        let Some(meta) = store::photos::photo(&state.db.pool, &p.sha256).await? else {
            continue;
        };
        if let (Some(lat), Some(lon)) = (meta.exif_lat, meta.exif_lon) {
            let d = crate::geo::distance_m(v.location.lat, v.location.lon, lat, lon);
            distances.push((p.sha256.clone(), d));
            markers.push(super::map::Marker {
                lat,
                lon,
                class: "exif",
                label: c.t("console-exif-position"),
                href: None,
            });
        }
    }
    let title = c.t("console-map-case");
    Ok(html! {
        p.bar {
            span.legend.claimed { (c.t("console-claimed")) }
            span.legend.exif { (c.t("console-exif-position")) }
        }
        @for (sha, d) in &distances {
            p.hint { code { (sha.get(..12).unwrap_or(sha)) "…" } " " (c.ta("console-exif-distance", &[("metres", &format!("{d:.0}"))])) }
        }
        div.mapbox.small { (super::map::svg(c, zone.as_slice(), &markers, 480.0, &title, state.config.console.map_tiles.as_ref())) }
        (super::map::attribution(state))
    })
}

/// Where a case stands with the ledger, for a supervisor.
enum Deduction {
    /// Not for this reader (not a supervisor), or the case cannot be deducted (not filed).
    None,
    /// No proposal yet: the rules that apply to it.
    Proposable(Vec<crate::model::Rule>),
    /// A proposal waiting for a decision, and what approving it would do.
    Pending(
        Box<(
            store::ledger::ProposalRow,
            crate::ledger::preview::Consequence,
        )>,
    ),
    /// Approved into the ledger.
    Approved(Box<store::ledger::ProposalRow>),
}

async fn deduction_of(state: &AppState, c: &Console, v: &CaseView) -> Result<Deduction, ApiError> {
    if !c.session.user.is_supervisor_level() {
        return Ok(Deduction::None);
    }
    let mut conn = state.db.pool.acquire().await?;
    let finding = crate::model::Basis::Finding;
    match store::ledger::open_proposal_of_case(&mut conn, v.id, finding).await? {
        Some((pid, status)) => {
            let Some(p) = store::ledger::proposal(&mut *conn, pid).await? else {
                return Ok(Deduction::None);
            };
            if status == crate::model::ProposalStatus::Proposed {
                let svc = state.ledger_service();
                let consequence =
                    crate::ledger::preview::consequence(&svc, &c.session.user, pid).await?;
                Ok(Deduction::Pending(Box::new((p, consequence))))
            } else {
                Ok(Deduction::Approved(Box::new(p)))
            }
        }
        None => {
            let deductible = !matches!(
                v.state,
                CaseState::Reported
                    | CaseState::NotFiled
                    | CaseState::Duplicate
                    | CaseState::Withdrawn
            );
            if !deductible {
                return Ok(Deduction::None);
            }
            let rules = match crate::model::Source::parse(&v.source) {
                Some(source) => {
                    crate::ledger::proposals::applicable_rules(
                        &state.db,
                        source,
                        Some(&v.category_code),
                    )
                    .await?
                }
                None => Vec::new(),
            };
            Ok(Deduction::Proposable(rules))
        }
    }
}

fn deduction_markup(c: &Console, names: &Names, v: &CaseView, d: &Deduction) -> Markup {
    let rule_text = |r: &crate::model::Rule| r.translations.pick(c.lang, &r.description).to_owned();
    html! {
        @match d {
            Deduction::None => {}
            Deduction::Proposable(rules) => {
                section aria-labelledby="deduct-h" {
                    h2 #deduct-h { (c.t("console-deduction")) }
                    @if rules.is_empty() {
                        p.muted { (c.t("console-no-rule")) }
                    } @else {
                        form method="post" hx-boost="true" action={"/console/cases/" (v.id) "/propose"} {
                            input type="hidden" name="csrf" value=(c.session.csrf);
                            div.bar {
                                label for="rule" { (c.t("col-rule_text")) }
                                select #rule name="rule_code" {
                                    @for r in rules {
                                        option value=(r.code) { (rule_text(r)) " (" (r.points) ")" }
                                    }
                                }
                            }
                            div.bar {
                                label for="note" { (c.t("col-note")) }
                                input #note name="note" size="50";
                                button #propose type="submit" { (c.t("console-propose")) }
                            }
                        }
                    }
                }
            }
            Deduction::Pending(pending) => {
                @let (p, k) = pending.as_ref();
                section aria-labelledby="deduct-h" {
                    h2 #deduct-h { (c.t("console-deduction-pending")) }
                    dl.facts {
                        dt { (c.t("col-rule")) } dd { (p.rule_code) }
                        dt { (c.t("col-note")) } dd { (p.note) }
                        dt { (c.t("col-proposed_by")) } dd { (names.user_label(&p.proposed_by.to_string())) }
                        dt { (c.t("console-consequence")) }
                        dd {
                            (k.raw_points) " × "
                            (k.coefficient.map(|x| x.to_string()).unwrap_or_else(|| "?".into()))
                            " = " strong { (k.weighted_points.map(|x| x.to_string()).unwrap_or_else(|| "?".into())) }
                        }
                        dt { (c.t("console-chain")) }
                        dd {
                            @for (i, r) in k.roster.iter().enumerate() {
                                @if i > 0 { "、" }
                                (names.user_label(&r.user_id.to_string())) " (" (i18n::name(c.lang, "role", &r.role)) ")"
                            }
                        }
                        dt { (c.t("col-evidence")) }
                        dd { @for h in &k.evidence { code { (h.get(..12).unwrap_or(h)) "…" } " " } }
                        @if let (Some((s0, r0)), Some((s1, r1))) = (k.before, k.after) {
                            dt { (c.t("console-score-rank")) }
                            dd { (s0) " (" (r0) ") → " strong { (s1) " (" (r1) ")" } }
                        }
                    }
                    @for b in &k.blockers {
                        p.notice.error { (i18n::error_message(c.lang, *b, "", &serde_json::Value::Null)) }
                    }
                    div.actions {
                        form method="post" hx-boost="true" action={"/console/deductions/" (p.id) "/approve"} {
                            input type="hidden" name="csrf" value=(c.session.csrf);
                            button #approve type="submit" disabled[!k.blockers.is_empty()] { (c.t("console-approve")) }
                        }
                        form method="post" hx-boost="true" action={"/console/deductions/" (p.id) "/reject"} {
                            input type="hidden" name="csrf" value=(c.session.csrf);
                            label.sr-only for="reject-reason" { (c.t("console-reason")) }
                            input #reject-reason name="reason" required placeholder=(c.t("console-reason"));
                            button.danger type="submit" { (c.t("console-reject-deduction")) }
                        }
                    }
                }
            }
            Deduction::Approved(p) => {
                section aria-labelledby="deduct-h" {
                    h2 #deduct-h { (c.t("console-deduction")) }
                    p.notice.ok { (c.t("console-deducted")) " · " (p.rule_code) }
                }
            }
        }
    }
}

/// A choice of the case a report duplicates, by what a person recognises: when it came in, its
/// state and its description.
fn original_select(
    c: &Console,
    id: &str,
    originals: &[crate::store::review::DuplicateCandidate],
) -> Markup {
    html! {
        @if originals.is_empty() { span.muted { (c.t("console-no-originals")) } " " }
        select #(id) name="duplicate_of" required {
            option value="" { (c.t("console-choose-original")) }
            @for o in originals {
                option value=(o.id) {
                    (c.time(o.received_at)) " · " (i18n::name(c.lang, "state", o.state.as_str())) " · "
                    (o.description.chars().take(40).collect::<String>())
                }
            }
        }
    }
}

/// What the case page shows of a case, beside its map.
struct CaseParts<'a> {
    v: &'a CaseView,
    wf: &'a crate::review::CaseWorkflow,
    deduction: &'a Deduction,
    /// Cases it may be marked a duplicate of.
    originals: &'a [crate::store::review::DuplicateCandidate],
    /// Open cases near it or on its asset (a report is often about a known problem).
    nearby: &'a [crate::intake::DuplicateSuggestion],
    /// How it came in and its documents, for readers who take reports in.
    intake: Option<&'a (
        crate::intake::IntakeRecord,
        Vec<crate::documents::DocumentView>,
    )>,
    /// For a report from the public: whether an inspector verified it on site.
    verified: Option<bool>,
}

fn case_markup(c: &Console, names: &Names, parts: CaseParts<'_>, map: Markup) -> Markup {
    let CaseParts {
        v,
        wf,
        deduction,
        originals,
        nearby,
        intake,
        verified,
    } = parts;
    let title = names.category_label(&v.category_code, c.lang);
    let actions = possible_actions(c, v, wf);
    let evidence = v.evidence.as_ref();
    let body = html! {
        p { a href="/console/queue" { "← " (c.t("console-back-to-queue")) } }
        h1 {
            (title) " "
            span.badge { (i18n::name(c.lang, "state", v.state.as_str())) }
            @if wf.overdue { " " span.badge.warn { (c.t("col-overdue")) } }
            @match verified {
                Some(true) => { " " span.badge.ok { (c.t("console-verification-done")) } }
                Some(false) => { " " span.badge.warn { (c.t("console-verification-pending")) } }
                None => {}
            }
        }
        div.grid2 {
            section aria-labelledby="facts-h" {
                h2 #facts-h { (c.t("console-facts")) }
                dl.facts {
                    dt { (c.t("col-description")) } dd { (v.description) }
                    dt { (c.t("col-zone_name")) } dd { (names.zone_label(&v.zone_id.to_string(), c.lang)) }
                    dt { (c.t("col-severity_name")) } dd { (i18n::name(c.lang, "severity", v.severity.as_str())) }
                    dt { (c.t("col-source_name")) } dd { (i18n::name(c.lang, "source", &v.source)) }
                    dt { (c.t("col-captured_at")) } dd { (c.time(v.captured_at.unix_timestamp() * 1000)) }
                    dt { (c.t("col-received_at")) } dd { (c.time(v.received_at.unix_timestamp() * 1000)) }
                    dt { (c.t("console-reporter")) } dd { (names.user_label(&v.reporter_id.to_string())) }
                    dt { (c.t("console-position")) } dd { (format!("{:.6}, {:.6}", v.location.lat, v.location.lon)) " (±" (v.location.accuracy_m) " m)" }
                    @if let Some(a) = &v.asset_code { dt { (c.t("console-asset")) } dd { (a) } }
                    @if let Some(d) = wf.deadline {
                        dt { (c.t("col-deadline")) } dd { (c.time(d.unix_timestamp() * 1000)) }
                    }
                    @if !wf.assignees.is_empty() {
                        dt { (c.t("console-assignees")) }
                        dd {
                            @for (i, a) in wf.assignees.iter().enumerate() {
                                @if i > 0 { "、" }
                                (names.user_label(&a.to_string()))
                            }
                        }
                    }
                }
            }
            section aria-labelledby="actions-h" {
                h2 #actions-h { (c.t("console-actions")) }
                div.actions {
                    @if actions.is_empty() { p.muted { (c.t("console-no-actions")) } }
                    @for a in &actions {
                        form method="post" hx-boost="true" action={"/console/cases/" (v.id) "/transition"} {
                            input type="hidden" name="csrf" value=(c.session.csrf);
                            input type="hidden" name="action" value=(a.as_str());
                            input type="hidden" name="base_version" value=(v.version);
                            @if a.needs_comment() {
                                label.sr-only for={"c-" (a.as_str())} { (c.t("console-reason")) }
                                input #{"c-" (a.as_str())} name="comment" required placeholder=(c.t("console-reason"));
                            }
                            @if *a == WorkflowAction::MarkDuplicate {
                                label for="dup-of" { (c.t("console-duplicate-of")) }
                                (original_select(c, "dup-of", originals))
                            }
                            button type="submit" class=(if matches!(a, WorkflowAction::Reject | WorkflowAction::Return) { "danger" } else { "" }) {
                                (c.t(&format!("action-{}", a.as_str())))
                            }
                        }
                    }
                }
                h2 { (c.t("console-evidence")) }
                @if let Some(e) = evidence {
                    @if e.photos.is_empty() {
                        p { span.badge { (c.t("console-evidence-no-photo")) } }
                    } @else if e.complete {
                        p { span.badge.ok { (c.t("console-evidence-complete")) } }
                    } @else {
                        p { span.badge.warn { (c.t("console-evidence-incomplete")) } }
                    }
                    @for f in &e.flags {
                        p.notice.error { strong { (c.t(&format!("flag-{f}"))) } }
                    }
                }
            }
        }
        @if !nearby.is_empty() {
            section aria-labelledby="nearby-h" {
                h2 #nearby-h { (c.t("console-intake-duplicates")) }
                ul {
                    @for n in nearby {
                        li {
                            a href={"/console/cases/" (n.case_id)} { (names.category_label(&n.category_code, c.lang)) }
                            " · " (i18n::name(c.lang, "source", &n.source))
                            " · " (i18n::name(c.lang, "state", &n.state))
                            " · " @if n.same_asset { (c.t("console-intake-same-asset")) } @else {
                                (c.ta("console-intake-distance", &[("metres", &format!("{:.0}", n.distance_m))]))
                            }
                            " · " (n.description.chars().take(60).collect::<String>())
                        }
                    }
                }
            }
        }
        @if let Some((record, documents)) = intake {
            (super::intake::record_section(c, record, documents, v.state, v.locked))
        }
        (deduction_markup(c, names, v, deduction))
        h2 { (c.t("console-map-case")) }
        (map)
        h2 { (c.t("console-photos")) }
        div.grid2 {
            @for role in ["before", "after", "intake", "verification"].into_iter()
                .filter(|r| matches!(*r, "before" | "after") || v.photos.iter().any(|p| p.role == *r)) {
                section {
                    h3 { (c.t(&format!("console-role-{role}"))) }
                    div.photos {
                        @for p in v.photos.iter().filter(|p| p.role == role) {
                            @let state = evidence.and_then(|e| e.photos.iter().find(|x| x.sha256 == p.sha256));
                            figure {
                                a href={"/console/photos/" (p.sha256) "/original"} target="_blank" rel="noopener" {
                                    img src={"/console/photos/" (p.sha256) "/thumb"} loading="lazy"
                                        alt=(c.ta("console-photo-alt", &[("role", &c.t(&format!("console-role-{role}")))]));
                                }
                                figcaption {
                                    (c.time(p.captured_at.unix_timestamp() * 1000))
                                    @if let Some(s) = state {
                                        @if !s.verified { " · " span.badge.warn { (c.t("console-not-verified")) } }
                                        @for f in &s.flags { " · " span.badge.flag { (c.t(&format!("flag-{f}"))) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (c.t("console-timeline")) }
        ol.timeline {
            @for e in &v.events {
                li {
                    strong { (c.t(&format!("event-{}", e.kind))) }
                    @if let (Some(from), Some(to)) = (&e.from_state, &e.to_state) {
                        " " (i18n::name(c.lang, "state", from)) " → " (i18n::name(c.lang, "state", to))
                    }
                    " · " (names.user_label(&e.actor_id.to_string()))
                    " · " (c.time(e.at.unix_timestamp() * 1000))
                    @if let Some(comment) = &e.comment { br; span.muted { (comment) } }
                }
            }
        }
        @if !v.conflicts.is_empty() {
            h2 { (c.t("console-conflicts")) }
            table {
                thead { tr {
                    th { (c.t("console-field")) }
                    th { (c.t("console-server-value")) }
                    th { (c.t("console-incoming-value")) }
                    th { (c.t("console-resolution")) }
                } }
                tbody {
                    @for k in &v.conflicts {
                        tr {
                            td { (k.field) }
                            td { (k.server_value.to_string()) }
                            td { (k.incoming_value.to_string()) }
                            td { (k.resolution) }
                        }
                    }
                }
            }
        }
    };
    layout(c, Section::Case, &title, body)
}

#[derive(Debug, Deserialize)]
pub struct TransitionForm {
    csrf: Option<String>,
    action: WorkflowAction,
    base_version: i64,
    comment: Option<String>,
    duplicate_of: Option<String>,
    /// Set by the queue: answer with the case's queue row rather than the case page.
    row: Option<String>,
}

pub async fn transition(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<TransitionForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let duplicate_of = match non_empty(&form.duplicate_of) {
        Some(d) => match Uuid::parse_str(d) {
            Ok(u) => Some(u),
            Err(_) => {
                return failure(
                    &c,
                    &headers,
                    ApiError::invalid("duplicate_of", "must be a case id"),
                )
            }
        },
        None => None,
    };
    let req = TransitionRequest {
        action: form.action,
        base_version: form.base_version,
        comment: form.comment.clone(),
        duplicate_of,
        target: None,
        photos: Vec::new(),
    };
    if let Err(e) = crate::review::transition_case(
        &state.db,
        &state.config.work_week(),
        &c.session.user,
        id,
        req,
    )
    .await
    {
        return failure(&c, &headers, e);
    }
    if form.row.is_some() && headers.contains_key("hx-request") {
        // The queue keeps its place: the row shows the case as it is now.
        let result = async {
            let view = load_case(&state, &c, id).await?;
            let wf = crate::review::workflow_of(&state.db, &c.session.user, id).await?;
            let names = Names::load(&state.db).await?;
            let evidence = view.evidence.clone();
            let item = QueueItem {
                evidence: crate::review::queue::QueueEvidence {
                    complete: evidence.as_ref().is_some_and(|e| e.complete),
                    photos: Vec::new(),
                    flags: evidence.map(|e| e.flags).unwrap_or_default(),
                },
                workflow: wf,
                case: view,
            };
            Ok::<_, ApiError>(queue_row(&c, &names, &item, &[]))
        }
        .await;
        return match result {
            Ok(m) => fragment(StatusCode::OK, m),
            Err(e) => failure(&c, &headers, e),
        };
    }
    Redirect::to(&format!("/console/cases/{id}")).into_response()
}

// ---- photos -----------------------------------------------------------------------------------

/// A photo or its thumbnail or preview, through the console: the user must be able to see it,
/// and every view is recorded as the API's links are.
pub async fn photo(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path((sha, variant)): Path<(String, String)>,
) -> Response {
    let result = async {
        let (path, variant) = match variant.as_str() {
            "original" => (crate::photos::original_path(&sha), "original"),
            "thumb" => (crate::photos::derivative_path(&sha, "thumb"), "thumb"),
            "preview" => (crate::photos::derivative_path(&sha, "preview"), "preview"),
            _ => return Err(ApiError::not_found("photo")),
        };
        let photo = crate::photos::visible_photo(&state.db, &c.session.user, &sha).await?;
        let mime = match variant {
            "original" => photo
                .mime
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            _ => "image/jpeg".into(),
        };
        let object = state.blobs.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => ApiError::not_found("photo"),
            e => crate::photos::upload::store_error(e),
        })?;
        store::photos::log_view(&state.db.pool, c.session.user.user_id, &sha, variant).await?;
        Ok::<_, ApiError>((mime, object))
    }
    .await;
    match result {
        Ok((mime, object)) => {
            let stream = object.into_stream().map_err(std::io::Error::other);
            let mut r = axum::body::Body::from_stream(stream).into_response();
            if let Ok(v) = HeaderValue::from_str(&mime) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            );
            r
        }
        Err(e) if e.code == gridline_sync::ErrorCode::NotFound => {
            // A thumbnail not made yet: a plain placeholder rather than a broken image, not
            // kept by the browser so that the real one shows once it is made.
            let mut r = PLACEHOLDER.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => failure(&c, &headers, e),
    }
}

const PLACEHOLDER: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="72" height="54" viewBox="0 0 72 54"><rect width="72" height="54" fill="#e9edf2"/><path d="M24 36l8-10 6 7 4-5 6 8z" fill="#aab3c0"/></svg>"##;

// ---- deductions -------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct ProposeForm {
    csrf: Option<String>,
    rule_code: String,
    note: Option<String>,
}

pub async fn propose(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<ProposeForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let input = crate::ledger::views::ProposalInput {
        proposal_id: None,
        case_id: Some(id),
        zone_id: None,
        source: None,
        rule_code: form.rule_code,
        category_code: None,
        found_at: None,
        note: form.note.unwrap_or_default(),
        basis: crate::model::Basis::Finding,
    };
    let svc = state.ledger_service();
    match crate::ledger::proposals::propose(&svc, &c.session.user, input).await {
        Ok(_) => Redirect::to(&format!("/console/cases/{id}")).into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct DecideForm {
    csrf: Option<String>,
    reason: Option<String>,
    /// `decisions`: go back to the decisions page rather than the case.
    back: Option<String>,
}

pub async fn approve(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(pid): Path<Uuid>,
    Form(form): Form<DecideForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let svc = state.ledger_service();
    match crate::ledger::posting::approve(&svc, &c.session.user, pid).await {
        Ok(_) if form.back.as_deref() == Some("decisions") => {
            Redirect::to("/console/decisions").into_response()
        }
        Ok(_) => back_to_case(&state, pid).await,
        Err(e) => failure(&c, &headers, e),
    }
}

pub async fn reject_deduction(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(pid): Path<Uuid>,
    Form(form): Form<DecideForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let input = crate::ledger::views::DecisionInput {
        reason: form.reason.unwrap_or_default(),
    };
    let svc = state.ledger_service();
    match crate::ledger::proposals::reject(&svc, &c.session.user, pid, &input).await {
        Ok(_) if form.back.as_deref() == Some("decisions") => {
            Redirect::to("/console/decisions").into_response()
        }
        Ok(_) => back_to_case(&state, pid).await,
        Err(e) => failure(&c, &headers, e),
    }
}

/// After a decision: the case's page, or the decisions page for a finding with no case.
async fn back_to_case(state: &AppState, pid: Uuid) -> Response {
    let case = store::ledger::proposal(&state.db.pool, pid)
        .await
        .ok()
        .flatten()
        .and_then(|p| p.case_id);
    match case {
        Some(id) => Redirect::to(&format!("/console/cases/{id}")).into_response(),
        None => Redirect::to("/console/decisions").into_response(),
    }
}
