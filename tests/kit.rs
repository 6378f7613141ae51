//! Pieces the integration tests and the benchmark harness share: a typed capture, a transport
//! that forwards every request through a [`Watch`], and the wait for a server process to listen.

use std::time::Duration;

use gridline_server::ledger::chain::Entry;
use gridline_sync::client::{HttpTransport, Transport, TransportError, UploadChunk, UploadCreated};
use gridline_sync::ops::{CaseCreateV1, Location, Severity};
use gridline_sync::{
    EnrolDeviceRequest, EnrolDeviceResponse, LoginRequest, PullQuery, PullResponse, PushRequest,
    PushResponse, RefreshRequest, TokenResponse,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

/// A capture at the centre of demo zone `zone_index` (0..8), category `event:0102` (an
/// overflowing bin), medium severity, taken now, with no photos: set `photos` (and anything
/// else) on the value returned.
pub fn capture(zone_id: Uuid, zone_index: usize, description: &str) -> CaseCreateV1 {
    let (a, b, c, d) = gridline_server::demo::zone_rect(zone_index);
    CaseCreateV1 {
        case_id: Uuid::now_v7(),
        zone_id,
        category_code: "event:0102".into(),
        location: Location {
            lat: (b + d) / 2.0,
            lon: (a + c) / 2.0,
            accuracy_m: 8.0,
            datum: Default::default(),
        },
        asset_code: None,
        description: description.into(),
        severity: Severity::Medium,
        captured_at: time::OffsetDateTime::now_utc(),
        photos: vec![],
        round_id: None,
    }
}

/// The reversal of ledger entry `original` (its points negated, pointing at it) with a new id,
/// as the ledger service would post it, before the chain numbers and hashes it.
pub fn reversal_of(original: &Entry, reason: &str) -> Entry {
    Entry {
        id: Uuid::now_v7().to_string(),
        kind: "reversal".into(),
        raw_points_milli: -original.raw_points_milli,
        weighted_points_milli: -original.weighted_points_milli,
        proposal_id: None,
        reverses_id: Some(original.id.clone()),
        reason: Some(reason.into()),
        ..original.clone()
    }
}

/// Which request a transport call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Login,
    Refresh,
    Enrol,
    Push,
    Pull,
    UploadCreate,
    UploadOffset,
    /// A `PATCH` carrying `len` body bytes.
    UploadPatch {
        len: u64,
    },
}

/// What a test watches on a phone's requests: told before each is sent and after it has its
/// answer (or failed).
pub trait Watch: Send + Sync {
    fn before(&self, _call: Call) {}
    fn after(&self, _call: Call, _error: Option<&TransportError>) {}
}

/// A transport that forwards every request to `inner` unchanged, telling `watch`.
pub struct Watched<W> {
    pub inner: HttpTransport,
    pub watch: W,
}

impl<W: Watch> Watched<W> {
    async fn through<T>(
        &self,
        call: Call,
        request: impl std::future::Future<Output = Result<T, TransportError>>,
    ) -> Result<T, TransportError> {
        self.watch.before(call);
        let result = request.await;
        self.watch.after(call, result.as_ref().err());
        result
    }
}

impl<W: Watch> Transport for Watched<W> {
    async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, TransportError> {
        self.through(Call::Login, self.inner.login(req)).await
    }
    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, TransportError> {
        self.through(Call::Refresh, self.inner.refresh(req)).await
    }
    async fn enrol(
        &self,
        token: String,
        req: &EnrolDeviceRequest,
    ) -> Result<EnrolDeviceResponse, TransportError> {
        self.through(Call::Enrol, self.inner.enrol(token, req))
            .await
    }
    async fn push(&self, token: String, req: &PushRequest) -> Result<PushResponse, TransportError> {
        self.through(Call::Push, self.inner.push(token, req)).await
    }
    async fn pull(&self, token: String, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.through(Call::Pull, self.inner.pull(token, query))
            .await
    }
    async fn upload_create(
        &self,
        token: String,
        sha256: &str,
        length: u64,
    ) -> Result<UploadCreated, TransportError> {
        let request = self.inner.upload_create(token, sha256, length);
        self.through(Call::UploadCreate, request).await
    }
    async fn upload_offset(&self, token: String, location: &str) -> Result<u64, TransportError> {
        let request = self.inner.upload_offset(token, location);
        self.through(Call::UploadOffset, request).await
    }
    async fn upload_patch(
        &self,
        token: String,
        location: &str,
        chunk: &UploadChunk,
    ) -> Result<u64, TransportError> {
        let request = self.inner.upload_patch(token, location, chunk);
        self.through(Call::UploadPatch { len: chunk.len }, request)
            .await
    }
}

/// Reads a server process's standard output until its "listening on" line, for at most
/// `within`; false if the process ended or the time ran out first. Once it listens, the rest of
/// the output is read (and dropped) until the process ends, so the pipe never fills.
pub async fn until_listening(stdout: tokio::process::ChildStdout, within: Duration) -> bool {
    let mut lines = BufReader::new(stdout).lines();
    let listening = tokio::time::timeout(within, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listening on") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if listening {
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    }
    listening
}
