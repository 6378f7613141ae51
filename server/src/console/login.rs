//! Signing in and out of the console, and the language switch. Sign-in goes through the
//! API's own check and lockout (`accounts::authenticate`) and opens a console session for
//! people who work in the office.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use super::{error_page, failure, head, page, Console, LANG_COOKIE, SESSION_COOKIE};
use crate::accounts;
use crate::auth::throttle::{self, ClientAddr};
use crate::error::ApiError;
use crate::i18n::{self, Lang};
use crate::state::AppState;

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
    let refused = |status: StatusCode, message: &str| {
        page(
            status,
            login_page(lang, &next, Some(message), &form.username),
        )
    };
    let token = match open_office_session(&state, &form, client).await {
        Ok(token) => token,
        Err(None) => {
            let message = i18n::text(lang, "console-not-for-you");
            return refused(StatusCode::FORBIDDEN, &message);
        }
        Err(Some(e)) => {
            let message = i18n::error_message(lang, e.code, &e.message, &e.details);
            return refused(e.status(), &message);
        }
    };
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &token, state.config.console.session_max_secs),
    );
    r
}

/// A session for the person the form names, through the API's lockout; `Err(None)` for
/// someone who does not work in the office (the console is not for them).
async fn open_office_session(
    state: &AppState,
    form: &LoginForm,
    client: ClientAddr,
) -> Result<String, Option<ApiError>> {
    let keys = throttle::keys(&state.config.auth, &form.username, client);
    let user = accounts::authenticate(
        &state.db,
        &state.config.auth,
        &form.username,
        &form.password,
        &keys,
    )
    .await?;
    if !accounts::works_in_office(&user.roles) {
        return Err(None);
    }
    Ok(accounts::open_session(&state.db, &state.config.console, &user).await?)
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
        if let Err(e) = accounts::end_session(&state.db, &token).await {
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
