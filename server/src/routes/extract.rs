//! The HTTP side of errors and bodies: `ApiError` as a response, and extractors whose failures
//! are that same error body (a JSON syntax or type error is 422 with the path of the bad field).

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gridline_sync::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;
use crate::i18n::{self, Lang};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The request's language (`i18n::scope`), English outside a request.
        let lang = i18n::current().unwrap_or(Lang::En);
        let message = i18n::error_message(lang, self.code, &self.message, &self.details);
        let body = ErrorBody {
            code: self.code,
            message,
            details: self.details,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_LANGUAGE,
            HeaderValue::from_static(lang.tag()),
        );
        if let Some(secs) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// JSON body extractor whose failures are our error body: syntax and type errors are 422 with
/// the path of the offending field.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct.to_ascii_lowercase();
                ct.starts_with("application/json")
                    || (ct.starts_with("application/") && ct.contains("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::MalformedBody,
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses JSON, reporting the path of the first bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(value) => {
            de.end().map_err(|e| json_error("", &e))?;
            Ok(value)
        }
        Err(err) => {
            let path = err.path().to_string();
            Err(json_error(
                if path == "." { "" } else { &path },
                err.inner(),
            ))
        }
    }
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let code = match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ErrorCode::MalformedBody,
        Category::Data => ErrorCode::InvalidRequest,
    };
    let path = if path.is_empty() {
        "$".to_owned()
    } else {
        format!("$.{path}")
    };
    // serde_json's message names the line and column already; keep it, it is about the input.
    ApiError::new(code, format!("{path}: {err}")).with_details(json!({
        "path": path,
        "line": err.line(),
        "column": err.column(),
    }))
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

pub fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
    } else {
        ApiError::new(
            ErrorCode::MalformedBody,
            format!("could not read the body: {rejection}"),
        )
    }
}

/// Query-string extractor whose failures are our error body.
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::new(ErrorCode::InvalidRequest, e.body_text())
                    .with_details(json!({ "path": "query" }))
            })
    }
}

/// Path extractor whose failures are our error body (a malformed id is simply not found).
pub struct PathParam<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| {
                ApiError::new(ErrorCode::NotFound, format!("not found: {}", e.body_text()))
            })
    }
}
