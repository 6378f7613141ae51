//! Pieces the integration tests and the benchmark harness share: a typed capture, the SQL that
//! spreads seeded cases over states and sources, a transport that forwards every request
//! through a [`Watch`] (which may also decide each request's [`Fate`] on a faulty network),
//! and the wait for a server process to listen.

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

/// A pseudo-random draw in `0..modulo` for row `i` of a seeding query, as SQL: multiplicative
/// hashing modulo a prime, the same on SQLite and PostgreSQL. Each property takes its own
/// `multiplier`, so that properties are independent of each other.
pub fn seeded_draw(multiplier: u64, modulo: usize) -> String {
    format!("(((i * {multiplier}) % 4294967291) % {modulo})")
}

/// The state of seeded case `i` (1, 2, …, oldest first) as SQL: the cases after `recent` are
/// the open work (a quarter reported, the rest spread along the workflow), the older ones are
/// mostly closed, as in a subdistrict's table after months.
pub fn seeded_case_state(recent: i64) -> String {
    format!(
        "CASE WHEN i > {recent} THEN (CASE WHEN {r} < 250 THEN 'reported' \
           WHEN {r} < 330 THEN 'pending_verification' WHEN {r} < 380 THEN 'filed' \
           WHEN {r} < 480 THEN 'dispatched' WHEN {r} < 560 THEN 'in_progress' \
           WHEN {r} < 900 THEN 'closed' WHEN {r} < 950 THEN 'not_filed' \
           WHEN {r} < 980 THEN 'duplicate' ELSE 'withdrawn' END) \
         ELSE (CASE WHEN {r} < 850 THEN 'closed' WHEN {r} < 920 THEN 'not_filed' \
           WHEN {r} < 970 THEN 'duplicate' WHEN {r} < 990 THEN 'withdrawn' \
           WHEN {r} < 995 THEN 'reported' ELSE 'dispatched' END) END",
        r = seeded_draw(2_654_435_761, 1000)
    )
}

/// The source of seeded case `i` as SQL: 80 % inspection, 8 % public complaint, 7 % media,
/// 5 % leader criticism.
pub fn seeded_case_source() -> String {
    format!(
        "CASE WHEN {s} < 800 THEN 'inspection' WHEN {s} < 880 THEN 'public_complaint' \
         WHEN {s} < 950 THEN 'media' ELSE 'leader_criticism' END",
        s = seeded_draw(2_246_822_519, 1000)
    )
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

/// What the network does with one request, as a [`Watch`] decides it.
#[derive(Debug)]
pub enum Fate {
    /// Sent as it is.
    Send,
    /// Never sent: the phone gets the error.
    Refuse(TransportError),
    /// Sent, and the server acts on it; the phone gets the error instead of the answer.
    LoseAnswer(TransportError),
    /// Sent twice; the phone hears the first answer or the second.
    Duplicate { answer_first: bool },
    /// Held back in the network to arrive later: a push is handed to [`Watch::held`] to deliver
    /// when the watch decides (any other request is dropped); the phone gets the error.
    Hold(TransportError),
}

/// A push held back in the network: what it takes to deliver it later.
pub struct HeldPush {
    pub transport: HttpTransport,
    pub token: String,
    pub request: PushRequest,
}

/// What a test watches on a phone's requests, and what it lets the network do to them: asked
/// each request's [`Fate`] before it is sent (everything is sent by default), told before each
/// call and after each sending has its answer (or failed).
pub trait Watch: Send + Sync {
    fn fate(&self, _call: Call) -> Fate {
        Fate::Send
    }
    fn held(&self, _push: HeldPush) {}
    fn before(&self, _call: Call) {}
    fn after(&self, _call: Call, _error: Option<&TransportError>) {}
}

/// A transport that forwards every request to `inner`, telling `watch` and doing to each what
/// the watch decides.
pub struct Watched<W> {
    pub inner: HttpTransport,
    pub watch: W,
}

impl<W: Watch> Watched<W> {
    /// `send` sends the request once (it may be called twice, for a duplicate); `hold` gives
    /// the request to keep for later, when the call can be held.
    async fn through<T, F>(
        &self,
        call: Call,
        send: impl Fn() -> F,
        hold: impl FnOnce() -> Option<HeldPush>,
    ) -> Result<T, TransportError>
    where
        F: std::future::Future<Output = Result<T, TransportError>>,
    {
        self.watch.before(call);
        let sent = || async {
            let result = send().await;
            self.watch.after(call, result.as_ref().err());
            result
        };
        match self.watch.fate(call) {
            Fate::Send => sent().await,
            Fate::Refuse(error) => Err(error),
            Fate::LoseAnswer(error) => {
                let _ = sent().await;
                Err(error)
            }
            Fate::Duplicate { answer_first } => {
                let first = sent().await;
                let second = sent().await;
                if answer_first {
                    first
                } else {
                    second
                }
            }
            Fate::Hold(error) => {
                if let Some(push) = hold() {
                    self.watch.held(push);
                }
                Err(error)
            }
        }
    }
}

impl<W: Watch> Transport for Watched<W> {
    async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, TransportError> {
        self.through(Call::Login, || self.inner.login(req), || None)
            .await
    }
    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, TransportError> {
        self.through(Call::Refresh, || self.inner.refresh(req), || None)
            .await
    }
    async fn enrol(
        &self,
        token: String,
        req: &EnrolDeviceRequest,
    ) -> Result<EnrolDeviceResponse, TransportError> {
        let send = || self.inner.enrol(token.clone(), req);
        self.through(Call::Enrol, send, || None).await
    }
    async fn push(&self, token: String, req: &PushRequest) -> Result<PushResponse, TransportError> {
        let send = || self.inner.push(token.clone(), req);
        let hold = || {
            Some(HeldPush {
                transport: self.inner.clone(),
                token: token.clone(),
                request: req.clone(),
            })
        };
        self.through(Call::Push, send, hold).await
    }
    async fn pull(&self, token: String, query: &PullQuery) -> Result<PullResponse, TransportError> {
        let send = || self.inner.pull(token.clone(), query);
        self.through(Call::Pull, send, || None).await
    }
    async fn upload_create(
        &self,
        token: String,
        sha256: &str,
        length: u64,
    ) -> Result<UploadCreated, TransportError> {
        let send = || self.inner.upload_create(token.clone(), sha256, length);
        self.through(Call::UploadCreate, send, || None).await
    }
    async fn upload_offset(&self, token: String, location: &str) -> Result<u64, TransportError> {
        let send = || self.inner.upload_offset(token.clone(), location);
        self.through(Call::UploadOffset, send, || None).await
    }
    async fn upload_patch(
        &self,
        token: String,
        location: &str,
        chunk: &UploadChunk,
    ) -> Result<u64, TransportError> {
        let send = || self.inner.upload_patch(token.clone(), location, chunk);
        self.through(Call::UploadPatch { len: chunk.len }, send, || None)
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
