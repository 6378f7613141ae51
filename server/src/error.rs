//! The one error type every layer returns: a stable code from `gridline_sync::ErrorCode`, a
//! message about the input, and details.
//!
//! It imports nothing of this crate, so storage and services return it as they are; the HTTP layer
//! (`routes::extract`) turns it into `{"code", "message", "details"}`. 5xx bodies say nothing
//! internal; the cause is logged once, inside the request span.

use axum::http::StatusCode;
use gridline_sync::ErrorCode;
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

/// Every invalid field of an input: `invalid_request`, the first field's path and reason as
/// [`ApiError::invalid`] gives them, and all of them under `errors`.
impl From<gridline_sync::validation::ValidationErrors> for ApiError {
    fn from(errs: gridline_sync::validation::ValidationErrors) -> Self {
        let (path, reason) = errs
            .errors
            .first()
            .map(|e| (e.path.clone(), e.message.clone()))
            .unwrap_or_default();
        ApiError::new(ErrorCode::InvalidRequest, errs.to_string())
            .with_details(json!({ "path": path, "reason": reason, "errors": errs.errors }))
    }
}
