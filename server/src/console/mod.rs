//! The supervisors' console: server-rendered pages under `/console` (maud templates, htmx for
//! partial updates), served by the same binary with every asset embedded.
//!
//! Sign-in opens a session (`accounts::open_session`) held in an `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` with `console.cookie_secure`); every state-changing request must carry the
//! session's CSRF token (a form field or the `X-CSRF-Token` header htmx sends) and, when the
//! browser says where it comes from (`Origin`), come from this server. The pages call the same
//! services as the API, as the signed-in user, so roles, scope and audit are the API's.
//!
//! Every label comes from the Fluent catalogue (`console-*` keys) in the reader's language: the
//! language cookie set by the switch, else `Accept-Language`, else the site's.

mod admin;
mod assets;
mod calendar;
mod case;
mod deductions;
mod inbox;
mod intake;
mod ledger;
mod login;
mod map;
mod overview;
mod photos;
mod plan_editor;
mod plans;
mod queue;
mod settings;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use crate::accounts::{self, ConsoleSession};
use crate::error::ApiError;
use crate::i18n::{self, Lang};
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gridline_session";
/// The language cookie the switch sets (read by the language middleware for every request).
pub const LANG_COOKIE: &str = "gridline_lang";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(overview::overview))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login::login_form).post(login::login))
        .route("/console/logout", post(login::logout))
        .route("/console/lang", get(login::switch_language))
        .route("/console/queue", get(queue::queue))
        .route("/console/queue/bulk", post(queue::bulk))
        .route("/console/cases/{id}", get(case::case_page))
        .route("/console/cases/{id}/transition", post(case::transition))
        .route("/console/cases/{id}/propose", post(deductions::propose))
        .route(
            "/console/deductions/{id}/approve",
            post(deductions::approve),
        )
        .route(
            "/console/deductions/{id}/reject",
            post(deductions::reject_deduction),
        )
        .route("/console/photos/{sha}/{variant}", get(photos::photo))
        .route("/console/map", get(map::map))
        .route("/console/decisions", get(ledger::decisions))
        .route("/console/deductions/direct", post(ledger::propose_direct))
        .route("/console/ledger", get(ledger::ledger))
        .route("/console/ledger/{id}/reverse", post(ledger::reverse))
        .route("/console/periods", get(ledger::periods))
        .route("/console/periods/{id}", get(ledger::period))
        .route("/console/periods/{id}/close", post(ledger::close))
        .route("/console/exports/{name}", get(ledger::export))
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/inbox", get(inbox::inbox))
        .route("/console/intake", get(intake::form).post(intake::take_in))
        .route("/console/cases/{id}/callback", post(intake::call_back))
        .route(
            "/console/cases/{id}/documents",
            post(intake::add_document).layer(axum::extract::DefaultBodyLimit::max(
                crate::documents::MAX_DOCUMENT_BYTES + 64 * 1024,
            )),
        )
        .route(
            "/console/cases/{id}/documents/{sha256}",
            get(intake::document),
        )
        .route("/console/inbox/{id}/read", post(inbox::read))
        .route(
            "/console/settings",
            get(settings::settings).post(settings::save),
        )
        .route("/console/admin/notifications", get(settings::roles))
        .route(
            "/console/admin/notifications/{role}",
            post(settings::save_role),
        )
        .route("/console/inbox/{id}/acknowledge", post(inbox::acknowledge))
        .route("/console/plans", get(plans::list).post(plan_editor::create))
        .route("/console/plans/new", get(plan_editor::new))
        .route("/console/plans/{id}", get(plans::plan_page))
        .route("/console/plans/{id}/cancel", post(plans::cancel))
        .route("/console/plans/{id}/reveal", post(plans::reveal))
        .route("/console/calendar", get(calendar::calendar))
        .route("/console/coverage", get(calendar::coverage))
        .route("/console/admin", get(admin::index))
        .route(
            "/console/admin/users",
            get(admin::users).post(admin::create_user),
        )
        .route("/console/admin/users/{id}", post(admin::update_user))
        .route(
            "/console/admin/users/{id}/password",
            post(admin::set_password),
        )
        .route("/console/admin/devices", get(admin::devices))
        .route(
            "/console/admin/devices/{id}/revoke",
            post(admin::revoke_device),
        )
        .route(
            "/console/admin/roster",
            get(admin::roster).post(admin::open_assignment),
        )
        .route(
            "/console/admin/roster/{id}/end",
            post(admin::end_assignment),
        )
        .route("/console/admin/roster/{id}/reassign", post(admin::reassign))
        .route("/console/admin/zones", get(admin::zones))
        .route(
            "/console/admin/periods/{period}/coefficients/{zone}",
            post(admin::set_coefficient),
        )
        .route("/console/admin/reference", get(admin::reference))
        .route("/console/admin/rulebooks", post(admin::publish_rulebook))
        .route("/console/admin/taxonomy", post(admin::save_taxonomy))
        .route("/console/admin/calendar", post(admin::import_calendar))
        // Pages, scripts and styles travel compressed to a browser that accepts it; photos
        // (already compressed) are sent as they are.
        .layer(tower_http::compression::CompressionLayer::new())
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A urlencoded form body as its pairs, in order, repeated names kept.
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
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

/// A signed-in reader of the console: their session and language.
pub struct Console {
    pub session: ConsoleSession,
    pub lang: Lang,
    pub tz: jiff::tz::TimeZone,
    /// Whether a plan not cancelled is assigned to the reader (the navigation then shows the
    /// plans to an inspector).
    pub plans_assigned: bool,
}

impl Console {
    /// The text of catalogue key `key` in the reader's language.
    pub fn t(&self, key: &str) -> String {
        i18n::text(self.lang, key)
    }

    /// The text of `key` with arguments.
    pub fn ta(&self, key: &str, args: &[(&str, &str)]) -> String {
        i18n::lookup(self.lang, key, args).unwrap_or_else(|| key.to_owned())
    }

    /// An instant (Unix milliseconds) as the office reads it.
    pub fn time(&self, ms: i64) -> String {
        crate::localtime::format(&self.tz, ms)
    }

    /// The refusal of a state-changing request without this session's CSRF token (from the
    /// form or the `X-CSRF-Token` header), or of one a browser says comes from another site;
    /// `None` when the request may go ahead.
    pub fn csrf_refusal(&self, headers: &HeaderMap, form_token: Option<&str>) -> Option<Response> {
        let header_token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        let token = form_token.or(header_token).unwrap_or("");
        let same_token = constant_time_eq(token.as_bytes(), self.session.csrf.as_bytes());
        if same_token && same_origin(headers) {
            None
        } else {
            tracing::warn!(user = %self.session.user.user_id, "console: CSRF check failed");
            Some(error_page(
                self.lang,
                StatusCode::FORBIDDEN,
                &i18n::text(self.lang, "console-csrf"),
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the browser's `Origin` (when it sends one) names this server (`Host`). Browsers send
/// `Origin` with every cross-site POST, so a form on another site fails here even before the
/// token is compared.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !host.is_empty() && origin_host == host
}

/// Where a request without a session goes: the sign-in page (back here afterwards), or for an
/// htmx request, a note that the session is over which leaves the page (and anything typed in
/// it) as it is. The console's forms that decide something are sent by htmx (`hx-boost`), so a
/// half-written reason survives an expired session: sign in again in another tab and send it.
pub struct SignInFirst {
    next: String,
    htmx: bool,
    lang: Lang,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        if self.htmx {
            let mut r = fragment(
                StatusCode::UNAUTHORIZED,
                html! { div.notice.error role="alert" { (i18n::text(self.lang, "console-session-over")) } },
            );
            r.headers_mut()
                .insert("hx-retarget", HeaderValue::from_static("#messages"));
            r.headers_mut()
                .insert("hx-reswap", HeaderValue::from_static("innerHTML"));
            return r;
        }
        let next =
            percent_encoding::utf8_percent_encode(&self.next, percent_encoding::NON_ALPHANUMERIC);
        Redirect::to(&format!("/console/login?next={next}")).into_response()
    }
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = parts
            .extensions
            .get::<Lang>()
            .copied()
            .unwrap_or(state.config.site.language);
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/console".into());
        let sign_in = SignInFirst {
            next,
            htmx: parts.headers.contains_key("hx-request"),
            lang,
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(sign_in.into_response());
        };
        let session = accounts::session(&state.db, &state.config.console, &token)
            .await
            .map_err(IntoResponse::into_response)?;
        match session {
            Some(session) => {
                let plans_assigned =
                    crate::store::plans::has_assigned(&state.db.pool, session.user.user_id)
                        .await
                        .map_err(|e| ApiError::from(e).into_response())?;
                Ok(Console {
                    session,
                    lang,
                    tz: state.config.site.tz(),
                    plans_assigned,
                })
            }
            None => Err(sign_in.into_response()),
        }
    }
}

/// The pages of the console, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Queue,
    Case,
    Ledger,
    Periods,
    Map,
    Decisions,
    Inbox,
    Settings,
    Intake,
    Plans,
    Admin,
}

/// A whole page: the navigation, the messages area, and `body`.
/// A page of a section with tabs (`href`, message id) above its title; the tab at `here` is
/// the current page.
pub fn tabbed_layout(
    c: &Console,
    section: Section,
    label: &str,
    tabs: &[(&str, &str)],
    here: &str,
    title: &str,
    body: Markup,
) -> Markup {
    let body = html! {
        nav.tabs aria-label=(c.t(label)) {
            @for (href, key) in tabs {
                @if *href == here {
                    a href=(href) aria-current="page" { (c.t(key)) }
                } @else {
                    a href=(href) { (c.t(key)) }
                }
            }
        }
        h1 { (title) }
        (body)
    };
    layout(c, section, title, body)
}

pub fn layout(c: &Console, section: Section, title: &str, body: Markup) -> Markup {
    let nav = [
        (Section::Overview, "/console", "console-nav-overview"),
        (Section::Queue, "/console/queue", "console-nav-queue"),
        (
            Section::Decisions,
            "/console/decisions",
            "console-nav-decisions",
        ),
        (Section::Map, "/console/map", "console-nav-map"),
        (Section::Ledger, "/console/ledger", "console-nav-ledger"),
        (Section::Periods, "/console/periods", "console-nav-periods"),
        (Section::Inbox, "/console/inbox", "console-nav-inbox"),
        (
            Section::Settings,
            "/console/settings",
            "console-nav-settings",
        ),
    ];
    let admin = c.session.user.is_admin();
    let other = match c.lang {
        Lang::ZhCn => Lang::En,
        Lang::En => Lang::ZhCn,
    };
    html! {
        (DOCTYPE)
        html lang=(c.lang.tag()) {
            (head(c.lang, title, Some(&c.session.csrf)))
            body {
                a.sr-only href="#main" { (c.t("console-skip")) }
                header.top {
                    a.brand href="/console" { (c.t("console-brand")) }
                    nav aria-label=(c.t("console-nav")) {
                        @for (s, href, key) in nav {
                            @if s == section {
                                a href=(href) aria-current="page" { (c.t(key)) }
                            } @else {
                                a href=(href) { (c.t(key)) }
                            }
                        }
                        @if intake::takes_reports(c) {
                            @if section == Section::Intake {
                                a href="/console/intake" aria-current="page" { (c.t("console-nav-intake")) }
                            } @else {
                                a href="/console/intake" { (c.t("console-nav-intake")) }
                            }
                        }
                        @if plans::shows_plans(c) {
                            @if section == Section::Plans {
                                a href="/console/plans" aria-current="page" { (c.t("console-nav-plans")) }
                            } @else {
                                a href="/console/plans" { (c.t("console-nav-plans")) }
                            }
                        }
                        @if admin {
                            @if section == Section::Admin {
                                a href="/console/admin" aria-current="page" { (c.t("console-nav-admin")) }
                            } @else {
                                a href="/console/admin" { (c.t("console-nav-admin")) }
                            }
                        }
                    }
                    a.lang href={"/console/lang?set=" (other.tag())} lang=(other.tag()) {
                        (i18n::text(other, "console-language-name"))
                    }
                    span.who { (c.session.display_name) }
                    form method="post" action="/console/logout" {
                        input type="hidden" name="csrf" value=(c.session.csrf);
                        button type="submit" { (c.t("console-sign-out")) }
                    }
                }
                main #main {
                    div #messages aria-live="polite" {}
                    (body)
                }
            }
        }
    }
}

/// A period's ranking; each zone opens its entries of the period in the ledger.
pub fn ranking_table(
    c: &Console,
    names: &crate::exports::Names,
    ranking: &crate::ledger::scoring::Ranking,
    period: uuid::Uuid,
) -> Markup {
    html! {
        table {
            thead { tr {
                th.num { (c.t("col-rank")) }
                th { (c.t("col-zone_name")) }
                th.num { (c.t("col-score")) }
                th.num { (c.t("col-deductions")) }
                th.num { (c.t("col-entries")) }
            } }
            tbody {
                @for z in &ranking.zones {
                    tr {
                        td.num { (z.rank) }
                        td {
                            a href={"/console/ledger?period_id=" (period) "&zone_id=" (z.zone_id)} {
                                (names.zone_label(&z.zone_id, c.lang))
                            }
                            " " span.muted { (z.zone_code) }
                        }
                        td.num { (z.score) }
                        td.num { (z.deductions) }
                        td.num { (z.entries) }
                    }
                }
            }
        }
    }
}

/// The `<head>`: the hashed, embedded style sheet and scripts, and the CSRF token for htmx.
pub fn head(lang: Lang, title: &str, csrf: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (i18n::text(lang, "console-brand")) }
            @if let Some(token) = csrf {
                meta name="csrf-token" content=(token);
            }
            // Error answers are swapped too (into `#messages`, where they say what went wrong);
            // htmx would otherwise drop them silently.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowScriptTags":false,"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"[45]..","swap":true,"error":true}]}"#;
            link rel="stylesheet" href=(assets::url("console.css"));
            script src=(assets::url("htmx.min.js")) defer {}
            script src=(assets::url("console.js")) defer {}
        }
    }
}

/// The security policy of console pages: only this server's scripts, styles and images.
pub(crate) const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A rendered page as a response, with the console's security policy.
pub fn page(status: StatusCode, markup: Markup) -> Response {
    let mut r = fragment(status, markup);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    // Browsers then send this server's origin with the console's own forms (with `no-referrer`
    // they send `Origin: null`, which the CSRF check refuses) and nothing to other sites.
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// A piece of a page (an htmx answer), or a whole one before its headers are set.
pub fn fragment(status: StatusCode, markup: Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
}

/// An API error as a console answer: a page for a navigation, a message for htmx.
pub fn failure(c: &Console, headers: &HeaderMap, e: ApiError) -> Response {
    let message = i18n::error_message(c.lang, e.code, &e.message, &e.details);
    if headers.contains_key("hx-request") {
        let mut r = fragment(
            e.status(),
            html! { div.notice.error role="alert" { (message) } },
        );
        r.headers_mut()
            .insert("hx-retarget", HeaderValue::from_static("#messages"));
        r.headers_mut()
            .insert("hx-reswap", HeaderValue::from_static("innerHTML"));
        return r;
    }
    error_page(c.lang, e.status(), &message)
}

/// A page that only says what went wrong, with a way back.
pub fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            (head(lang, message, None))
            body {
                main #main.login {
                    h1 { (i18n::text(lang, "console-error")) }
                    p.notice.error role="alert" { (message) }
                    p { a href="/console" { (i18n::text(lang, "console-back")) } }
                }
            }
        }
    };
    page(status, markup)
}
