//! Email settings in the console: each reader's own page (for each kind of notice: mailed
//! immediately, in the daily digest, or not; quiet hours), and for admins the roles'
//! defaults, a tab of the administration. Both call `notify_settings`, as the API does. The
//! pages say what the settings do not touch: the inbox receives every notice.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use gridline_sync::Role;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::admin::{admin_layout, admin_page};
use super::{failure, layout, page, Console, Section};
use crate::error::ApiError;
use crate::i18n;
use crate::notify::NoticeKind;
use crate::notify_settings::{
    self, MySettings, MySettingsInput, QuietHoursView, RoleSettings, RoleSettingsInput,
};
use crate::state::AppState;
use crate::store::notice_settings::EmailMode;

/// The words of a kind of notice.
fn kind_name(c: &Console, kind: &str) -> String {
    c.t(&format!("notice-kind-{}", kind.replace('.', "-")))
}

fn mode_name(c: &Console, mode: EmailMode) -> String {
    c.t(&format!("console-mode-{}", mode.as_str()))
}

/// A form field's id for `kind`.
fn field_id(kind: &str) -> String {
    format!("mode-{}", kind.replace('.', "-"))
}

#[derive(Debug, Deserialize)]
pub struct Saved {
    saved: Option<String>,
    role: Option<String>,
}

pub async fn settings(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Query(q): Query<Saved>,
) -> Response {
    match settings_page(&state, &c, q.saved.is_some()).await {
        Ok(m) => page(StatusCode::OK, m),
        Err(e) => failure(&c, &headers, e),
    }
}

async fn settings_page(state: &AppState, c: &Console, saved: bool) -> Result<Markup, ApiError> {
    let cfg = &state.config;
    let s =
        notify_settings::mine(&state.db, &c.session.user, &cfg.notifications, &cfg.site).await?;
    Ok(settings_markup(c, &s, saved))
}

/// The reader's mode for each kind of notice (or their role's), and their quiet hours.
fn settings_markup(c: &Console, s: &MySettings, saved: bool) -> Markup {
    let quiet = &s.quiet_hours;
    let body = html! {
        h1 { (c.t("console-settings-title")) }
        @if saved { div.notice.ok role="status" { (c.t("console-settings-saved")) } }
        p.notice { (c.t("console-settings-intro")) }
        @match &s.email {
            Some(email) => p { (c.ta("console-settings-email", &[("email", email)])) },
            None => p.notice.error { (c.t("console-settings-no-email")) },
        }
        form method="post" action="/console/settings" {
            input type="hidden" name="csrf" value=(c.session.csrf);
            table {
                thead { tr {
                    th scope="col" { (c.t("console-settings-kind")) }
                    th scope="col" { (c.t("console-settings-mode")) }
                } }
                tbody {
                    @for k in &s.kinds {
                        tr {
                            td { label for=(field_id(&k.kind)) { (kind_name(c, &k.kind)) } }
                            td {
                                select #(field_id(&k.kind)) name=(field_id(&k.kind)) {
                                    option value="role" selected[k.own.is_none()] {
                                        (c.ta("console-settings-follow", &[("mode", &mode_name(c, k.role_default))]))
                                    }
                                    @for m in EmailMode::ALL {
                                        @if m != EmailMode::Off || k.may_turn_off {
                                            option value=(m.as_str()) selected[k.own == Some(m)] { (mode_name(c, m)) }
                                        }
                                    }
                                }
                                @if !k.may_turn_off {
                                    " " span.hint { (c.t("console-settings-escalation")) }
                                }
                            }
                        }
                    }
                }
            }
            p.hint { (c.ta("console-settings-digest-at", &[("time", &s.digest_time), ("zone", &s.time_zone)])) }
            h2 { (c.t("console-settings-quiet")) }
            p.hint { (c.t("console-settings-quiet-hint")) }
            div.filters {
                div {
                    label {
                        input type="checkbox" name="quiet" value="on" checked[quiet.is_some()];
                        " " (c.t("console-settings-quiet-on"))
                    }
                }
                div {
                    label for="quiet-start" { (c.t("console-settings-quiet-start")) }
                    input #quiet-start type="time" name="quiet_start"
                        value=(quiet.as_ref().map(|q| q.start.as_str()).unwrap_or("22:00"));
                }
                div {
                    label for="quiet-end" { (c.t("console-settings-quiet-end")) }
                    input #quiet-end type="time" name="quiet_end"
                        value=(quiet.as_ref().map(|q| q.end.as_str()).unwrap_or("07:00"));
                }
            }
            button type="submit" { (c.t("console-save")) }
        }
    };
    layout(c, Section::Settings, &c.t("console-settings-title"), body)
}

/// A form's fields (as the admin pages read them).
fn fields(body: &[u8]) -> Vec<(String, String)> {
    super::form_fields(body)
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The kinds' modes from a form: `role` (or nothing) leaves a kind unset.
fn modes(f: &[(String, String)]) -> Result<BTreeMap<String, EmailMode>, ApiError> {
    let mut out = BTreeMap::new();
    for k in NoticeKind::ALL {
        match field(f, &field_id(k.as_str())) {
            None | Some("role") => {}
            Some(v) => {
                let mode = EmailMode::parse(v)
                    .ok_or_else(|| ApiError::invalid("kinds", format!("unknown mode {v:?}")))?;
                out.insert(k.as_str().to_owned(), mode);
            }
        }
    }
    Ok(out)
}

pub async fn save(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = fields(&body);
    if let Some(r) = c.csrf_refusal(&headers, field(&f, "csrf")) {
        return r;
    }
    let run = async {
        let quiet = field(&f, "quiet").map(|_| QuietHoursView {
            start: field(&f, "quiet_start").unwrap_or("").to_owned(),
            end: field(&f, "quiet_end").unwrap_or("").to_owned(),
        });
        let input = MySettingsInput {
            kinds: modes(&f)?,
            quiet_hours: quiet,
        };
        notify_settings::set_mine(&state.db, &c.session.user, input).await
    };
    match run.await {
        Ok(()) => Redirect::to("/console/settings?saved=1").into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}

// ---- the roles' defaults (admins) -------------------------------------------------------------

fn role_name(c: &Console, r: Role) -> String {
    i18n::name(c.lang, "role", r.as_str())
}

pub async fn roles(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Query(q): Query<Saved>,
) -> Response {
    let role = q
        .role
        .as_deref()
        .and_then(|r| Role::ALL.iter().copied().find(|x| x.as_str() == r))
        .unwrap_or(Role::Supervisor);
    admin_page(
        &c,
        &headers,
        roles_page(&state, &c, role, q.saved.is_some()),
    )
    .await
}

async fn roles_page(
    state: &AppState,
    c: &Console,
    role: Role,
    saved: bool,
) -> Result<Markup, ApiError> {
    let s = notify_settings::role(&state.db, &c.session.user, role).await?;
    Ok(roles_markup(c, role, &s, saved))
}

/// The tabs of the roles, and the chosen role's default mode for each kind of notice.
fn roles_markup(c: &Console, role: Role, s: &RoleSettings, saved: bool) -> Markup {
    let body = html! {
        @if saved {
            div.notice.ok role="status" { (c.ta("console-roles-notify-saved", &[("role", &role_name(c, role))])) }
        }
        p.notice { (c.t("console-roles-notify-intro")) }
        nav.tabs aria-label=(c.t("console-roles-notify-role")) {
            @for r in Role::ALL {
                @let href = format!("/console/admin/notifications?role={}", r.as_str());
                @if *r == role {
                    a href=(href) aria-current="page" { (role_name(c, *r)) }
                } @else {
                    a href=(href) { (role_name(c, *r)) }
                }
            }
        }
        h2 { (role_name(c, role)) }
        form method="post" action={"/console/admin/notifications/" (role.as_str())} {
            input type="hidden" name="csrf" value=(c.session.csrf);
            table {
                thead { tr {
                    th scope="col" { (c.t("console-settings-kind")) }
                    th scope="col" { (c.t("console-settings-mode")) }
                } }
                tbody {
                    @for k in &s.kinds {
                        tr {
                            td { label for=(field_id(&k.kind)) { (kind_name(c, &k.kind)) } }
                            td {
                                select #(field_id(&k.kind)) name=(field_id(&k.kind)) {
                                    @for m in EmailMode::ALL {
                                        @if m != EmailMode::Off || k.may_turn_off {
                                            option value=(m.as_str()) selected[k.mode == m] { (mode_name(c, m)) }
                                        }
                                    }
                                }
                                @if !k.may_turn_off {
                                    " " span.hint { (c.t("console-settings-escalation")) }
                                }
                            }
                        }
                    }
                }
            }
            button type="submit" { (c.t("console-save")) }
        }
    };
    admin_layout(
        c,
        "/console/admin/notifications",
        &c.t("console-admin-notifications"),
        body,
    )
}

pub async fn save_role(
    State(state): State<AppState>,
    c: Console,
    headers: HeaderMap,
    Path(role): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let f = fields(&body);
    if let Some(r) = c.csrf_refusal(&headers, field(&f, "csrf")) {
        return r;
    }
    let run = async {
        let role = Role::ALL
            .iter()
            .copied()
            .find(|x| x.as_str() == role)
            .ok_or_else(|| ApiError::not_found("role"))?;
        let mut kinds = modes(&f)?;
        // An immediate default is what no default means: only the others are kept as set.
        kinds.retain(|_, m| *m != EmailMode::Immediately);
        notify_settings::set_role(
            &state.db,
            &c.session.user,
            role,
            RoleSettingsInput { kinds },
        )
        .await?;
        Ok::<_, ApiError>(role)
    };
    match run.await {
        Ok(role) => Redirect::to(&format!(
            "/console/admin/notifications?role={}&saved=1",
            role.as_str()
        ))
        .into_response(),
        Err(e) => failure(&c, &headers, e),
    }
}
