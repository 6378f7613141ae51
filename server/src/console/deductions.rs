//! Deductions from the case page: the section that offers, previews or shows a case's
//! deduction (`ledger::preview::case_deduction`), and the requests it sends, which call the
//! API's own services (`ledger::proposals`, `ledger::posting`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{failure, Console};
use crate::exports::Names;
use crate::i18n;
use crate::ledger::preview::CaseDeduction;
use crate::model::CaseView;
use crate::state::AppState;
use crate::store;

/// Where the case stands with the ledger, for a supervisor: the rules to propose under, a
/// waiting proposal with what approving it would do, or the deduction made.
pub(super) fn deduction_markup(
    c: &Console,
    names: &Names,
    v: &CaseView,
    d: &CaseDeduction,
) -> Markup {
    let rule_text = |r: &crate::model::Rule| r.translations.pick(c.lang, &r.description).to_owned();
    html! {
        @match d {
            CaseDeduction::None => {}
            CaseDeduction::Proposable(rules) => {
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
            CaseDeduction::Pending(pending) => {
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
            CaseDeduction::Approved(p) => {
                section aria-labelledby="deduct-h" {
                    h2 #deduct-h { (c.t("console-deduction")) }
                    p.notice.ok { (c.t("console-deducted")) " · " (p.rule_code) }
                }
            }
        }
    }
}

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
