//! The review queue: the cases waiting for a decision (`review::queue::queue`), filtered, with
//! thumbnails, keyboard triage, decisions on one row, and bulk actions on a selection.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gridline_sync::case::CaseState;
use gridline_sync::workflow::WorkflowAction;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{failure, form_fields, layout, page, Console, Section};
use crate::error::{ApiError, ApiResult};
use crate::exports::Names;
use crate::i18n::{self, Lang};
use crate::model::{CaseView, Page, TaxonomyEntry, Zone};
use crate::review::queue::{EvidenceFilter, QueueItem, QueueQuery};
use crate::state::AppState;
use crate::store;

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

/// The value of a form field, trimmed, unless it is empty.
pub(super) fn non_empty(v: &Option<String>) -> Option<&str> {
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

async fn queue_page(state: &AppState, c: &Console, params: &QueueParams) -> ApiResult<Markup> {
    let q = params.query()?;
    let items = crate::review::queue::queue(&state.db, &c.session.user, &q).await?;
    let names = Names::load(&state.db).await?;
    let zones = store::reference::zones(&state.db.pool, None).await?;
    let taxonomy = store::reference::taxonomy(&state.db.pool).await?;
    let body = html! {
        h1 { (c.t("console-queue-title")) }
        (filters_markup(c, params, &zones, &taxonomy))
        (queue_markup(c, &names, params, &items))
    };
    Ok(layout(c, Section::Queue, &c.t("console-queue-title"), body))
}

/// The queue's filters, as `params` set them.
fn filters_markup(
    c: &Console,
    params: &QueueParams,
    zones: &[Zone],
    taxonomy: &[TaxonomyEntry],
) -> Markup {
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
    html! {
        form.filters method="get" action="/console/queue" {
            div {
                label for="f-zone" { (c.t("col-zone_name")) }
                select #f-zone name="zone_id" {
                    option value="" { (c.t("console-any")) }
                    @for z in zones {
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
    }
}

/// A page of the queue: the bulk form, the rows, and the link to the next page.
fn queue_markup(
    c: &Console,
    names: &Names,
    params: &QueueParams,
    items: &Page<QueueItem>,
) -> Markup {
    html! {
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
                        (queue_row(c, names, item, &originals_on_page(&items.items, item)))
                    }
                }
            }
            @if let Some(next) = &items.next {
                p { a href={"/console/queue?" (params.with_cursor(next))} { (c.t("console-next-page")) } }
            }
        }
    }
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

pub(super) fn queue_row(
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

/// A choice of the case a report duplicates, by what a person recognises: when it came in, its
/// state and its description.
pub(super) fn original_select(
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

#[derive(Debug, Default)]
struct BulkForm {
    csrf: Option<String>,
    action: String,
    comment: Option<String>,
    ids: Vec<Uuid>,
}

impl BulkForm {
    /// The form from its body: `ids` repeats, which serde_urlencoded's struct form cannot read.
    fn read(body: &[u8]) -> BulkForm {
        let mut form = BulkForm::default();
        for (k, v) in form_fields(body) {
            match k.as_str() {
                "csrf" => form.csrf = Some(v),
                "action" => form.action = v,
                "comment" => form.comment = Some(v),
                "ids" => form.ids.extend(Uuid::parse_str(&v).ok()),
                _ => {}
            }
        }
        form
    }

    /// The decision to take on every selected case.
    fn action(&self) -> ApiResult<WorkflowAction> {
        match self.action.as_str() {
            "file" => Ok(WorkflowAction::File),
            "dispatch" => Ok(WorkflowAction::Dispatch),
            "reject" => Ok(WorkflowAction::Reject),
            _ => Err(ApiError::invalid("action", "file, dispatch or reject")),
        }
    }
}

/// A bulk action on the selected cases: each goes through the workflow on its own; the page
/// says how many succeeded and why any did not.
pub async fn bulk(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = BulkForm::read(&body);
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    let action = match form.action() {
        Ok(a) => a,
        Err(e) => return failure(&c, &headers, e),
    };
    let week = state.config.work_week();
    let user = &c.session.user;
    let outcomes =
        crate::review::transition_each(&state.db, &week, user, &form.ids, action, form.comment)
            .await;
    page(StatusCode::OK, bulk_markup(&c, &outcomes))
}

/// What a bulk action did: how many cases moved, and each refusal's reason.
fn bulk_markup(c: &Console, outcomes: &[(Uuid, ApiResult<()>)]) -> Markup {
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
    layout(
        c,
        Section::Queue,
        &c.t("console-queue-title"),
        html! {
            h1 { (c.t("console-queue-title")) }
            p.notice.ok role="status" { (summary) }
            @for r in &refused { p.notice.error { (r) } }
            p { a href="/console/queue" { (c.t("console-back-to-queue")) } }
        },
    )
}
