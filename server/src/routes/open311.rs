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

#[derive(Serialize)]
struct OneError {
    code: u16,
    description: String,
}

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
