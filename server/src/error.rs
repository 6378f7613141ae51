//! The one error type at the HTTP edge.
//!
//! Every failure becomes `{"code", "message", "details"}` with a stable code from
//! `gridline_sync::ErrorCode`. 5xx bodies say nothing internal; the cause is logged once, inside
//! the request span.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gridline_sync::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    /// Seconds for a `Retry-After` header (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    /// A validation failure at a field path such as `zones[2].name`.
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(ErrorCode::InvalidRequest, format!("{path}: {message}"))
            .with_details(json!({ "path": path, "reason": message }))
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message).retry_after(2)
    }
    /// An unexpected failure: logged here with its cause, answered without it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            details: self.details,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        classify_db_error(&err)
    }
}

/// Database errors: lost connections become 503 (retry), constraint violations 409, the rest 500.
pub fn classify_db_error(err: &sqlx::Error) -> ApiError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            tracing::warn!(error = %err, "database unavailable");
            ApiError::unavailable("the database is unavailable; retry later")
        }
        sqlx::Error::RowNotFound => ApiError::not_found("resource"),
        // Stored text the code does not know: a fault to look at, not an outage to retry
        // (the message may well contain words such as "closed", a case state).
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => ApiError::internal(err),
        sqlx::Error::Database(db) => {
            let msg = db.message().to_ascii_lowercase();
            if db.is_unique_violation() {
                ApiError::conflict("a resource with the same key already exists")
            } else if db.is_foreign_key_violation() {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "a referenced resource does not exist",
                )
            } else if msg.contains("database is locked") || msg.contains("busy") {
                ApiError::unavailable("the database is busy; retry later")
            } else if is_pg_unavailable(db.code().as_deref()) {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry later")
            } else {
                ApiError::internal(err)
            }
        }
        _ => {
            let text = err.to_string();
            if text.contains("connection") || text.contains("closed") {
                tracing::warn!(error = %err, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry later")
            } else {
                ApiError::internal(err)
            }
        }
    }
}

/// PostgreSQL SQLSTATE classes that mean "try again": connection exceptions (08), operator
/// intervention such as shutdown (57), insufficient resources (53) and serialization failures.
fn is_pg_unavailable(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            c.starts_with("08")
                || c.starts_with("57")
                || c.starts_with("53")
                || c == "40001"
                || c == "40P01"
        }
        None => false,
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        if let Some(api) = err.downcast_ref::<sqlx::Error>() {
            return classify_db_error(api);
        }
        ApiError::internal(format!("{err:#}"))
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
