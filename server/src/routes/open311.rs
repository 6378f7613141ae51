//! Open311 GeoReport v2 over HTTP, under `/open311/v2`: each resource as `.json` or `.xml`
//! (`discovery`, `services`, `services/{code}`, `requests`, `requests/{id}`), errors as the
//! specification's `errors` list with 400, 403, 404 or 429. The work is `crate::open311`'s.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::i18n::Lang;
use crate::open311::{self, ListQuery, RequestForm};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/open311/v2/{file}", get(top).post(file_request))
        .route("/open311/v2/services/{file}", get(service_definition))
        .route("/open311/v2/requests/{file}", get(request))
}

/// Requests are listed as `<service_requests><request>…`.
const REQUESTS: (&str, &str) = ("service_requests", "request");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

/// `services.json` → (`services`, JSON); anything else is not a resource here.
fn split(file: &str) -> Option<(&str, Format)> {
    let (name, ext) = file.rsplit_once('.')?;
    let format = match ext {
        "json" => Format::Json,
        "xml" => Format::Xml,
        _ => return None,
    };
    Some((name, format))
}

/// `value` in `format`: JSON as it is, XML under `root` with each item of a list as `item`.
fn render<T: Serialize>(format: Format, status: StatusCode, root: &str, value: &T) -> Response {
    let (body, kind) = match format {
        Format::Json => (
            serde_json::to_string(value).unwrap_or_else(|_| "[]".into()),
            "application/json; charset=utf-8",
        ),
        Format::Xml => {
            let xml = quick_xml::se::to_string_with_root(root, value)
                .unwrap_or_else(|_| format!("<{root}/>"));
            (
                format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{xml}"),
                "text/xml; charset=utf-8",
            )
        }
    };
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// A list: in JSON an array, in XML the element `root` holding one `item` element per entry
/// (`<services><service>…</service>…</services>`), as the specification shows.
fn render_list<T: Serialize>(
    format: Format,
    status: StatusCode,
    (root, item): (&str, &str),
    list: &[T],
) -> Response {
    match format {
        Format::Json => render(format, status, root, &list),
        Format::Xml => render(
            format,
            status,
            root,
            &std::collections::BTreeMap::from([(item, list)]),
        ),
    }
}

#[derive(Serialize)]
struct Definition<'a> {
    service_code: &'a str,
    attributes: Attributes,
}
#[derive(Serialize)]
struct Attributes {}

type OneError = Open311Error;

/// An error as the specification has it: a list of `{code, description}`; 422 is its 400.
fn failure(format: Format, e: ApiError) -> Response {
    let mut status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        status = StatusCode::BAD_REQUEST;
    }
    let description = match e.details.get("path").and_then(|p| p.as_str()) {
        Some(path) if !e.message.starts_with(path) => format!("{path}: {}", e.message),
        _ => e.message.clone(),
    };
    let list = [OneError {
        code: status.as_u16(),
        description,
    }];
    render_list(format, status, ("errors", "error"), &list)
}

fn not_found() -> ApiError {
    ApiError::not_found("resource")
}

fn lang() -> Lang {
    crate::i18n::current().unwrap_or(Lang::ZhCn)
}

async fn top(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(file): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let Some((name, format)) = split(&file) else {
        return failure(Format::Json, not_found());
    };
    let answer: ApiResult<Response> = async {
        match name {
            "discovery" => Ok(discovery(&headers, format)),
            "services" => {
                let list = open311::services(&state.db, lang()).await?;
                Ok(render_list(
                    format,
                    StatusCode::OK,
                    ("services", "service"),
                    &list,
                ))
            }
            "requests" => {
                let list = open311::list(&state.db, lang(), &q).await?;
                Ok(render_list(format, StatusCode::OK, REQUESTS, &list))
            }
            _ => Err(not_found()),
        }
    }
    .await;
    answer.unwrap_or_else(|e| failure(format, e))
}

/// Where this server's endpoint is, and what it speaks.
fn discovery(headers: &HeaderMap, format: Format) -> Response {
    #[derive(Serialize)]
    struct Endpoint {
        specification: &'static str,
        url: String,
        changeset: &'static str,
        #[serde(rename = "type")]
        kind: &'static str,
        formats: Formats,
    }
    #[derive(Serialize)]
    struct Formats {
        format: [&'static str; 2],
    }
    #[derive(Serialize)]
    struct Endpoints {
        endpoint: [Endpoint; 1],
    }
    #[derive(Serialize)]
    struct Discovery {
        changeset: &'static str,
        contact: &'static str,
        key_service: &'static str,
        endpoints: Endpoints,
    }
    // The changeset is when this façade's behaviour last changed.
    const CHANGESET: &str = "2026-12-06T00:00:00Z";
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .unwrap_or("127.0.0.1");
    let endpoint = Endpoint {
        specification: "http://wiki.open311.org/GeoReport_v2",
        url: format!("http://{host}/open311/v2"),
        changeset: CHANGESET,
        kind: "production",
        formats: Formats {
            format: ["application/json", "text/xml"],
        },
    };
    let d = Discovery {
        changeset: CHANGESET,
        contact: "The city management office that runs this server",
        key_service: "API keys are issued by the office (gridline admin add-open311-client)",
        endpoints: Endpoints {
            endpoint: [endpoint],
        },
    };
    match format {
        Format::Json => {
            // JSON lists the endpoints and formats as plain arrays.
            let json = serde_json::json!({
                "changeset": d.changeset,
                "contact": d.contact,
                "key_service": d.key_service,
                "endpoints": [{
                    "specification": d.endpoints.endpoint[0].specification,
                    "url": d.endpoints.endpoint[0].url,
                    "changeset": d.endpoints.endpoint[0].changeset,
                    "type": d.endpoints.endpoint[0].kind,
                    "formats": d.endpoints.endpoint[0].formats.format,
                }],
            });
            render(format, StatusCode::OK, "discovery", &json)
        }
        Format::Xml => render(format, StatusCode::OK, "discovery", &d),
    }
}

async fn service_definition(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some((code, format)) = split(&file) else {
        return failure(Format::Json, not_found());
    };
    match open311::definition(&state.db, code).await {
        Ok(d) => match format {
            Format::Json => render(format, StatusCode::OK, "service_definition", &d),
            Format::Xml => render(
                format,
                StatusCode::OK,
                "service_definition",
                &Definition {
                    service_code: &d.service_code,
                    attributes: Attributes {},
                },
            ),
        },
        Err(e) => failure(format, e),
    }
}

async fn request(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let Some((id, format)) = split(&file) else {
        return failure(Format::Json, not_found());
    };
    match open311::get(&state.db, lang(), id).await {
        // A list of one, as the specification has it.
        Ok(r) => render_list(format, StatusCode::OK, REQUESTS, &[r]),
        Err(e) => failure(format, e),
    }
}

/// `POST requests.{format}`: the form in the body (`application/x-www-form-urlencoded`), the
/// `api_key` there or in the query string.
async fn file_request(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(query): Query<RequestForm>,
    body: Bytes,
) -> Response {
    let Some((name, format)) = split(&file) else {
        return failure(Format::Json, not_found());
    };
    if name != "requests" {
        return failure(format, not_found());
    }
    let answer: ApiResult<Response> = async {
        let mut form: RequestForm = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::invalid("body", format!("not a form: {e}")))?;
        if form.api_key.is_none() {
            form.api_key = query.api_key.clone();
        }
        let client = open311::client(&state.db, form.api_key.as_deref()).await?;
        if let Err(wait) = state.rate_limiter.check(&format!("open311:{}", client.id)) {
            return Err(ApiError::new(
                gridline_sync::ErrorCode::RateLimited,
                format!(
                    "too many requests from this client; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        let filed = open311::file(&state.db, &state.config.intake, &client, form).await?;
        Ok(render_list(format, StatusCode::CREATED, REQUESTS, &[filed]))
    }
    .await;
    answer.unwrap_or_else(|e| failure(format, e))
}

/// The façade in the OpenAPI document. Its routes take the resource and format from one path
/// segment (`services.json`), so they are mounted by [`router`] and described here. Answers
/// and errors follow the GeoReport v2 specification: errors are a list of `{code,
/// description}` (in XML `<errors><error>…`), 400 for a bad request.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(doc_discovery, doc_services, doc_definition, doc_requests, doc_request, doc_file),
    components(schemas(open311::Service, open311::ServiceDefinition, open311::ServiceRequest,
        open311::Filed, open311::RequestForm, Open311Error)),
    tags((name = "open311", description = "Open311 GeoReport v2: civic apps file and follow public reports (JSON or XML)"))
)]
pub struct Open311Doc;

/// An error as GeoReport v2 has it (a list of these).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Open311Error {
    pub code: u16,
    pub description: String,
}

/// Where this endpoint is and what it speaks (`json` or `xml`).
#[utoipa::path(get, path = "/open311/v2/discovery.{format}", operation_id = "open311_discovery", tag = "open311",
    params(("format" = String, Path, description = "`json` or `xml`")),
    responses((status = 200, description = "The discovery document", content((Object = "application/json"), (String = "text/xml"))),
        (status = 404, body = Vec<Open311Error>)))]
#[allow(dead_code)]
async fn doc_discovery() {}

/// The services: the taxonomy, grouped by work category.
#[utoipa::path(get, path = "/open311/v2/services.{format}", operation_id = "open311_services", tag = "open311",
    params(("format" = String, Path, description = "`json` or `xml`")),
    responses((status = 200, description = "Every service", content((Vec<open311::Service> = "application/json"), (String = "text/xml"))),
        (status = 404, body = Vec<Open311Error>)))]
#[allow(dead_code)]
async fn doc_services() {}

/// A service's definition (no service takes extra attributes).
#[utoipa::path(get, path = "/open311/v2/services/{service_code}.{format}", operation_id = "open311_service_definition", tag = "open311",
    params(("service_code" = String, Path, description = "A taxonomy key, e.g. `event:0102`"),
        ("format" = String, Path, description = "`json` or `xml`")),
    responses((status = 200, description = "The definition", content((open311::ServiceDefinition = "application/json"), (String = "text/xml"))),
        (status = 404, body = Vec<Open311Error>)))]
#[allow(dead_code)]
async fn doc_definition() {}

/// Public reports, newest first: by default those of the last 90 days, at most 1000.
#[utoipa::path(get, path = "/open311/v2/requests.{format}", operation_id = "open311_requests", tag = "open311",
    params(("format" = String, Path, description = "`json` or `xml`"), ListQuery),
    responses((status = 200, description = "The requests", content((Vec<open311::ServiceRequest> = "application/json"), (String = "text/xml"))),
        (status = 400, body = Vec<Open311Error>), (status = 404, body = Vec<Open311Error>)))]
#[allow(dead_code)]
async fn doc_requests() {}

/// One public report (a list of one).
#[utoipa::path(get, path = "/open311/v2/requests/{service_request_id}.{format}", operation_id = "open311_request", tag = "open311",
    params(("service_request_id" = String, Path), ("format" = String, Path, description = "`json` or `xml`")),
    responses((status = 200, description = "The request", content((Vec<open311::ServiceRequest> = "application/json"), (String = "text/xml"))),
        (status = 404, body = Vec<Open311Error>)))]
#[allow(dead_code)]
async fn doc_request() {}

/// File a report (`api_key` in the form or the query string). It becomes a case of the
/// `public_report` channel in the zone of its `lat`/`long`; the reporter's name and phone are
/// kept apart for the office's callback and `email` is not kept.
#[utoipa::path(post, path = "/open311/v2/requests.{format}", operation_id = "open311_file_request", tag = "open311",
    params(("format" = String, Path, description = "`json` or `xml`")),
    request_body(content = open311::RequestForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 201, description = "Filed", content((Vec<open311::Filed> = "application/json"), (String = "text/xml"))),
        (status = 400, body = Vec<Open311Error>), (status = 403, body = Vec<Open311Error>),
        (status = 404, body = Vec<Open311Error>), (status = 429, body = Vec<Open311Error>)))]
#[allow(dead_code)]
async fn doc_file() {}
