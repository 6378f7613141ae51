//! How the client talks to the server: a [`Transport`] trait (so tests inject a fake server) and
//! [`HttpTransport`], its reqwest implementation.

use std::future::Future;
use std::time::Duration;

use crate::error::{ErrorBody, ErrorCode};
use crate::wire::{
    paths, EnrolDeviceRequest, EnrolDeviceResponse, LoginRequest, PullQuery, PullResponse,
    PushRequest, PushResponse, RefreshRequest, ResendFrom, TokenResponse,
};

/// Why a call failed, sorted by what the client must do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransportError {
    /// No response (connect failure, timeout, connection reset). The request may or may not
    /// have been processed; resending is safe because pushes are idempotent.
    #[error("network failure: {0}")]
    Network(String),
    /// 429, 500, 502, 503 or 504: transient; nothing was acknowledged. Retry after
    /// `retry_after` (from `Retry-After`) or a backoff.
    #[error("server busy (HTTP {status})")]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 426: the server does not speak this protocol version. Nothing was acknowledged; keep the
    /// queue and update the app.
    #[error("protocol upgrade required")]
    UpgradeRequired(Option<ErrorBody>),
    /// 409 `sequence_gap` / `sequence_behind`: resend every operation from `resend_from`.
    #[error("{code}: resend from {resend_from}")]
    Resend { code: ErrorCode, resend_from: u64 },
    /// 401: token expired or revoked, device revoked, or bad credentials (see the body's code).
    #[error("unauthenticated ({})", .0.code)]
    Unauthenticated(ErrorBody),
    /// 410 `reset_required` (pull): push, drop server-derived state, pull from scratch.
    #[error("reset required")]
    ResetRequired,
    /// Any other error status.
    #[error("HTTP {status}: {}", .body.as_ref().map(|b| b.message.as_str()).unwrap_or(""))]
    Http {
        status: u16,
        body: Option<ErrorBody>,
    },
    /// A 2xx response whose body could not be read.
    #[error("unreadable response: {0}")]
    BadResponse(String),
}

impl TransportError {
    /// Network failures and busy statuses are worth retrying; everything else is not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Network(_) | TransportError::Busy { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Maps an HTTP error status and its (possibly absent or unreadable) body.
    pub fn from_status(
        status: u16,
        body: Option<ErrorBody>,
        retry_after: Option<Duration>,
    ) -> Self {
        if let Some(resend) = body.as_ref().and_then(ResendFrom::from_error) {
            return TransportError::Resend {
                code: body.as_ref().map_or(ErrorCode::SequenceGap, |b| b.code),
                resend_from: resend.resend_from,
            };
        }
        match status {
            429 | 500 | 502 | 503 | 504 => TransportError::Busy {
                status,
                retry_after,
            },
            426 => TransportError::UpgradeRequired(body),
            410 if body
                .as_ref()
                .is_none_or(|b| b.code == ErrorCode::ResetRequired) =>
            {
                TransportError::ResetRequired
            }
            401 => TransportError::Unauthenticated(body.unwrap_or(ErrorBody {
                code: ErrorCode::Unauthenticated,
                message: "unauthenticated".into(),
                details: serde_json::Value::Null,
            })),
            _ => TransportError::Http { status, body },
        }
    }
}

/// The server API the client needs. Implementations must not retry: the client does.
pub trait Transport: Send + Sync {
    fn login(
        &self,
        req: &LoginRequest,
    ) -> impl Future<Output = Result<TokenResponse, TransportError>> + Send;

    fn refresh(
        &self,
        req: &RefreshRequest,
    ) -> impl Future<Output = Result<TokenResponse, TransportError>> + Send;

    fn enrol(
        &self,
        access_token: String,
        req: &EnrolDeviceRequest,
    ) -> impl Future<Output = Result<EnrolDeviceResponse, TransportError>> + Send;

    fn push(
        &self,
        access_token: String,
        req: &PushRequest,
    ) -> impl Future<Output = Result<PushResponse, TransportError>> + Send;

    fn pull(
        &self,
        access_token: String,
        query: &PullQuery,
    ) -> impl Future<Output = Result<PullResponse, TransportError>> + Send;
}

/// [`Transport`] over HTTPS with reqwest (rustls).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    base_url: String,
    http: reqwest::Client,
}

impl HttpTransport {
    /// `base_url` is the server root, e.g. `https://gridline.example.org`.
    pub fn new(base_url: &str) -> Result<Self, TransportError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("gridline-field/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TransportError::Network(e.to_string()))?;
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Uses a caller-built client, e.g. one that never reuses connections, so that a test's
    /// network faults meet every request rather than only a connection's first.
    pub fn with_client(base_url: &str, http: reqwest::Client) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        request: reqwest::RequestBuilder,
    ) -> Result<T, TransportError> {
        let response = request
            .send()
            .await
            .map_err(|e| TransportError::Network(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            // A body cut off mid-way is a network failure, not a bad response.
            let bytes = response
                .bytes()
                .await
                .map_err(|e| TransportError::Network(e.to_string()))?;
            return serde_json::from_slice(&bytes)
                .map_err(|e| TransportError::BadResponse(e.to_string()));
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<ErrorBody>(&b).ok());
        Err(TransportError::from_status(
            status.as_u16(),
            body,
            retry_after,
        ))
    }
}

impl Transport for HttpTransport {
    async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, TransportError> {
        Self::send(self.http.post(self.url(paths::LOGIN)).json(req)).await
    }

    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, TransportError> {
        Self::send(self.http.post(self.url(paths::REFRESH)).json(req)).await
    }

    async fn enrol(
        &self,
        access_token: String,
        req: &EnrolDeviceRequest,
    ) -> Result<EnrolDeviceResponse, TransportError> {
        Self::send(
            self.http
                .post(self.url(paths::DEVICES))
                .bearer_auth(access_token)
                .json(req),
        )
        .await
    }

    async fn push(
        &self,
        access_token: String,
        req: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        Self::send(
            self.http
                .post(self.url(paths::SYNC_PUSH))
                .bearer_auth(access_token)
                .json(req),
        )
        .await
    }

    async fn pull(
        &self,
        access_token: String,
        query: &PullQuery,
    ) -> Result<PullResponse, TransportError> {
        Self::send(
            self.http
                .get(self.url(paths::SYNC_PULL))
                .bearer_auth(access_token)
                .query(query),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_client_must_do() {
        let gap = ResendFrom { resend_from: 7 }.error_body(ErrorCode::SequenceBehind, "behind");
        assert_eq!(
            TransportError::from_status(409, Some(gap), None),
            TransportError::Resend {
                code: ErrorCode::SequenceBehind,
                resend_from: 7
            }
        );
        for s in [429, 500, 502, 503, 504] {
            let e = TransportError::from_status(s, None, Some(Duration::from_secs(3)));
            assert!(e.is_transient(), "{s}");
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        }
        assert!(matches!(
            TransportError::from_status(426, None, None),
            TransportError::UpgradeRequired(_)
        ));
        assert_eq!(
            TransportError::from_status(410, None, None),
            TransportError::ResetRequired
        );
        assert!(matches!(
            TransportError::from_status(401, None, None),
            TransportError::Unauthenticated(ErrorBody {
                code: ErrorCode::Unauthenticated,
                ..
            })
        ));
        let e = TransportError::from_status(422, None, None);
        assert!(!e.is_transient());
        assert!(matches!(e, TransportError::Http { status: 422, .. }));
    }
}
