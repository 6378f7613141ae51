//! Gridline server: HTTP, storage, auth, evidence and the ledger.
//!
//! [`app`] builds the router; [`run`] serves it on a listener until a shutdown signal, so tests
//! run the real server in-process on `127.0.0.1:0`.

pub mod access;
pub mod accounts;
pub mod assets;
pub mod auth;
pub mod blob;
pub mod cli;
pub mod config;
pub mod console;
pub mod coverage;
pub mod demo;
pub mod documents;
pub mod download;
pub mod error;
pub mod evidence;
pub mod exports;
pub mod geo;
pub mod i18n;
pub mod intake;
pub mod jobs;
pub mod keepalive;
pub mod ledger;
pub mod localtime;
pub mod model;
pub mod notify;
pub mod notify_settings;
pub mod open311;
pub mod periods;
pub mod photos;
pub mod plans;
pub mod private_fs;
pub mod ratelimit;
pub mod recurrence;
pub mod review;
pub mod roster;
pub mod routes;
pub mod rulebooks;
pub mod seal;
pub mod state;
pub mod store;
pub mod sync;
pub mod taxonomy;
pub mod telemetry;
pub mod workcalendar;
pub mod workdays;
pub mod zones;

use std::future::Future;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use gridline_sync::ErrorCode;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
pub use crate::state::AppState;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The OpenAPI document of every route, as committed in `openapi.yaml` (`gridline print-openapi`).
pub fn openapi_yaml() -> String {
    routes::openapi_yaml()
}

/// The whole application router with its middleware.
pub fn app(state: AppState) -> Router {
    let (router, api) = routes::split();
    let api_json = api;
    let limits = state.config.limits.clone();
    let site_language = state.config.site.language;
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { axum::Json(api_json.clone()) }),
        )
        .merge(routes::docs::router())
        .merge(console::router())
        .merge(routes::open311::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // Inside normalize_errors, so a timed-out request gets the error body and Retry-After.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(limits.request_timeout_secs),
        ))
        .layer(middleware::from_fn(normalize_errors))
        .layer(middleware::from_fn(telemetry::track_metrics))
        .layer(DefaultBodyLimit::max(limits.max_json_bytes))
        .layer(middleware::from_fn(keepalive::close_if_body_unread))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                ]))
                .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let route = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_else(|| req.uri().path().to_owned());
                    tracing::info_span!("request", method = %req.method(), route = %route,
                        request_id = %request_id, user = tracing::field::Empty)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::new(ErrorCode::Internal, "internal server error").into_response()
                })),
        )
        // Outside everything that may answer with an error, so each error speaks the reader's
        // language.
        .layer(middleware::from_fn_with_state(
            site_language,
            speak_the_readers_language,
        ))
        // Headers on every response, errors included. A response that sets its own
        // `Cache-Control` (the docs' script, photo bytes) or policy (the docs page) keeps it;
        // everything else (tokens, case data, exports) is not to be stored by a browser or a
        // proxy, framed, or allowed to load anything.
        .layer(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
                )),
        )
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// Chooses the request's language (the console's language cookie, else `Accept-Language`,
/// else the site's) and answers in it:
/// handlers read it as an `Extension<Lang>`, errors through `i18n::current`.
async fn speak_the_readers_language(
    axum::extract::State(site): axum::extract::State<i18n::Lang>,
    mut req: Request,
    next: Next,
) -> Response {
    // The console's language switch (a cookie) first, then what the browser asks for.
    let chosen = console::cookie(req.headers(), console::LANG_COOKIE)
        .and_then(|tag| i18n::Lang::parse(&tag));
    let header = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = chosen.unwrap_or_else(|| i18n::Lang::negotiate(header, site));
    req.extensions_mut().insert(lang);
    let mut response = i18n::scope(lang, next.run(req)).await;
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept-language"));
    response
}

/// Responses that are errors but not our JSON body (framework rejections, timeouts, the body
/// limit) are rewritten into `{code, message, details}` so clients see one shape.
async fn normalize_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Our JSON error bodies, the console's pages (which explain errors to a person) and the
    // Open311 façade's XML errors are answered as they are.
    let ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json")
                || ct.starts_with("text/html")
                || ct.starts_with("text/xml")
        });
    if ours {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "request body is too large"),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "not found"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::MethodNotAllowed, "method not allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (ErrorCode::MalformedBody, "unsupported content type")
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => (
            ErrorCode::Unavailable,
            "the server could not answer in time; retry later",
        ),
        StatusCode::UNAUTHORIZED => (ErrorCode::Unauthenticated, "unauthenticated"),
        StatusCode::FORBIDDEN => (ErrorCode::Forbidden, "forbidden"),
        StatusCode::TOO_MANY_REQUESTS => (ErrorCode::RateLimited, "too many requests"),
        s if s.is_server_error() => (ErrorCode::Internal, "internal server error"),
        _ => (ErrorCode::InvalidRequest, "invalid request"),
    };
    let mut err = ApiError::new(code, message);
    if code == ErrorCode::Unavailable && retry_after.is_none() {
        err = err.retry_after(2);
    }
    let mut out = err.into_response();
    *out.status_mut() = status;
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Every background job starts here, for the binary and the tests alike: the derivative
    // worker and upload cleanup (stopped when dropped), the change-log compaction, and the
    // delivery of notices to webhooks and mail with the daily digests, the erasure of callers
    // past their retention, and the refresh of the plans' next occurrences on the phones.
    let _photo_work = photos::spawn_background(state.photo_service());
    let pruner =
        jobs::spawn_change_pruner(state.db.clone(), state.config.sync.tombstone_retention_days);
    let eraser = jobs::spawn_caller_eraser(state.db.clone());
    let plans = jobs::spawn_plan_refresher(state.db.clone());
    let delivery = notify::spawn_delivery(
        state.db.clone(),
        state.config.site.clone(),
        notify::Escalation::of(&state.config),
        state.config.notifications.clone(),
    );
    let digests = notify_settings::spawn_digests(
        state.db.clone(),
        state.config.site.clone(),
        state.config.notifications.clone(),
    );
    let served = serve(listener, app(state), shutdown).await;
    digests.abort();
    pruner.abort();
    eraser.abort();
    plans.abort();
    delivery.abort();
    served
}

/// Per-connection cap on what hyper reads ahead of the handler. While a request's handler is
/// not reading its body (an upload waiting for room in the receive budget), hyper still reads
/// the socket to notice a closed connection, buffering up to this much of the body; at hyper's
/// default (about 400 KiB) waiting uploads held most of the server's heap (measured in
/// bench/notes/photos-upload.md). Request heads must fit too: 64 KiB is well above any we
/// accept.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// `axum::serve`, with the HTTP/1 connection settings above: accepts until `shutdown`
/// resolves, then lets every open connection finish its request and waits for them.
async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use futures::FutureExt;
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    // Dropping `stop_rx` tells the connections to finish; each holds a `done_rx` until it has.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(stop_rx);
    });
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop_tx.closed() => break,
        };
        // The peer's address, for handlers that key on the client (`auth::throttle`).
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let stop_tx = stop_tx.clone();
        let done_rx = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.max_buf_size(MAX_READ_BUFFER);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let mut stopping = std::pin::pin!(stop_tx.closed().fuse());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = &mut stopping => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(done_rx);
        });
    }
    drop(done_rx);
    drop(listener);
    done_tx.closed().await;
    Ok(())
}
