//! The reader's inbox in the console: their notices, newest first, each leading to its case,
//! read receipts given by opening or marking them, escalation notices acknowledged.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{failure, layout, page, Console, Section};
use crate::error::ApiError;
use crate::exports::Names;
use crate::notify::{self, NoticeView};
use crate::state::AppState;

pub async fn inbox(State(state): State<AppState>, c: Console, headers: HeaderMap) -> Response {
    match inbox_page(&state, &c).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

/// One line saying what a notice is about, in the reader's language.
fn summary(c: &Console, names: &Names, n: &NoticeView) -> String {
    notify::summary(c.lang, &c.tz, names, n)
}

async fn inbox_page(state: &AppState, c: &Console) -> Result<Markup, ApiError> {
    let page = notify::inbox(&state.db, &c.session.user, false, None, Some(100)).await?;
    let names = Names::load(&state.db).await?;
    Ok(inbox_markup(c, &names, &page))
}

/// The inbox: the unread count, and each notice with its receipt and acknowledgement forms.
fn inbox_markup(c: &Console, names: &Names, page: &notify::InboxPage) -> Markup {
    let body = html! {
        h1 { (c.t("console-inbox-title")) }
        p.muted { (c.ta("console-inbox-unread", &[("count", &page.unread.to_string())])) }
        @if page.items.is_empty() {
            p.notice { (c.t("console-inbox-empty")) }
        } @else {
            table {
                thead { tr {
                    th { (c.t("console-inbox-when")) }
                    th { (c.t("console-inbox-what")) }
                    th { (c.t("console-actions")) }
                } }
                tbody {
                    @for n in &page.items {
                        tr.unread[n.read_at.is_none()] {
                            td { (c.time(crate::store::ms_from_time(n.created_at))) }
                            td {
                                @if n.read_at.is_none() { span.badge.warn { (c.t("console-inbox-new")) } " " }
                                (summary(c, names, n))
                            }
                            td.actions {
                                @if notify::is_acknowledged_kind(&n.kind) {
                                    @if let Some(at) = n.acknowledged_at {
                                        span.muted { (c.ta("console-inbox-acknowledged", &[("when", &c.time(crate::store::ms_from_time(at)))])) }
                                    } @else {
                                        form method="post" action={"/console/inbox/" (n.id) "/acknowledge"} {
                                            input type="hidden" name="csrf" value=(c.session.csrf);
                                            button type="submit" { (c.t("console-inbox-acknowledge")) }
                                        }
                                    }
                                }
                                form method="post" action={"/console/inbox/" (n.id) "/read"} {
                                    input type="hidden" name="csrf" value=(c.session.csrf);
                                    @if let Some(case) = n.case_id {
                                        input type="hidden" name="open" value=(case);
                                        button type="submit" { (c.t("console-inbox-open")) }
                                    } @else if n.read_at.is_none() {
                                        button type="submit" { (c.t("console-inbox-mark-read")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(c, Section::Inbox, &c.t("console-inbox-title"), body)
}

#[derive(Debug, Deserialize)]
pub struct ReadForm {
    csrf: Option<String>,
    /// The case to open once the receipt is recorded.
    open: Option<Uuid>,
}

/// The read receipt, then the notice's case (or back to the inbox).
pub async fn read(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<ReadForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    if let Err(e) = notify::mark_read(&state.db, &c.session.user, id).await {
        return failure(&c, &headers, e);
    }
    match form.open {
        Some(case) => Redirect::to(&format!("/console/cases/{case}")).into_response(),
        None => Redirect::to("/console/inbox").into_response(),
    }
}

/// The acknowledgement of an escalation notice (which reads it too), then back to the inbox.
pub async fn acknowledge(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<ReadForm>,
) -> Response {
    if let Some(r) = c.csrf_refusal(&headers, form.csrf.as_deref()) {
        return r;
    }
    if let Err(e) = notify::acknowledge(&state.db, &c.session.user, id).await {
        return failure(&c, &headers, e);
    }
    Redirect::to("/console/inbox").into_response()
}
