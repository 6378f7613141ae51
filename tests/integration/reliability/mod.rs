//! Reliability: bad networks, crashes, dependency outages and malformed input lose nothing,
//! duplicate nothing and never answer 500.
//!
//! The helpers here are shared by the scenarios: [`SimPhone`] (the reference phone client over
//! HTTP) and [`check_exactly_once`], which compares what phones hold with what the server
//! stored, straight from the database.

mod crash;
mod dependencies;
mod malformed;
mod network;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gridline_sync::client::{
    Client, ClientError, HttpTransport, OutboxState, RetryPolicy, Store, TokioSleeper, Transport,
    TransportError,
};
use gridline_sync::ops::{
    CaseCommentV1, CaseCreateV1, Location, Operation, PhotoManifest, PhotoRole, Severity,
};
use gridline_sync::{
    EnrolDeviceRequest, EnrolDeviceResponse, LoginRequest, OpStatus, OperationBody, PullQuery,
    PullResponse, PushRequest, PushResponse, RefreshRequest, SignedOperation, TokenResponse,
};
use rand::Rng;
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

/// A seed from `GRIDLINE_FAULT_SEED`, or a fresh one; printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("GRIDLINE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("{test}: seed {seed} (replay with GRIDLINE_FAULT_SEED={seed})");
    seed
}

/// Short backoff: these phones retry against a local server, not a city's 3G.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(300),
    }
}

/// [`HttpTransport`] that counts the requests that got no answer (refused, reset, cut).
pub struct CountingTransport {
    inner: HttpTransport,
    pub network_errors: Arc<AtomicU64>,
}

impl CountingTransport {
    fn count<T>(&self, r: Result<T, TransportError>) -> Result<T, TransportError> {
        if let Err(TransportError::Network(_)) = &r {
            self.network_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl Transport for CountingTransport {
    async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, TransportError> {
        self.count(self.inner.login(req).await)
    }
    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, TransportError> {
        self.count(self.inner.refresh(req).await)
    }
    async fn enrol(
        &self,
        token: String,
        req: &EnrolDeviceRequest,
    ) -> Result<EnrolDeviceResponse, TransportError> {
        self.count(self.inner.enrol(token, req).await)
    }
    async fn push(&self, token: String, req: &PushRequest) -> Result<PushResponse, TransportError> {
        self.count(self.inner.push(token, req).await)
    }
    async fn pull(&self, token: String, query: &PullQuery) -> Result<PullResponse, TransportError> {
        self.count(self.inner.pull(token, query).await)
    }
}

/// A phone running the reference client: a durable outbox in its own SQLite file, talking HTTP
/// to `base_url` on a fresh connection per request (so network faults meet every request).
pub struct SimPhone {
    pub username: String,
    pub client: Client<CountingTransport, TokioSleeper>,
    zone_id: Uuid,
    zone_index: usize,
    cases: Vec<Uuid>,
    _dir: tempfile::TempDir,
}

impl SimPhone {
    /// Enrols `username` (a demo inspector of zone `zone_index`), retrying until it works or
    /// `deadline` passes.
    pub async fn enrol(
        base_url: &str,
        username: &str,
        zone_id: Uuid,
        zone_index: usize,
        deadline: tokio::time::Instant,
    ) -> SimPhone {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("phone.db"))
            .await
            .expect("phone store");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let transport = CountingTransport {
            inner: HttpTransport::with_client(base_url, http),
            network_errors: Arc::new(AtomicU64::new(0)),
        };
        let client = Client::new(store, transport, TokioSleeper).with_policy(quick_retries());
        loop {
            match client
                .enrol(
                    base_url,
                    username,
                    gridline_server::demo::DEMO_PASSWORD,
                    "sim phone",
                )
                .await
            {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("{username}: enrol failed ({e}); retrying");
                }
                Err(e) => panic!("{username}: could not enrol before the deadline: {e}"),
            }
        }
        SimPhone {
            username: username.to_owned(),
            client,
            zone_id,
            zone_index,
            cases: Vec::new(),
            _dir: dir,
        }
    }

    /// Captures `n` operations offline: new cases, and comments on earlier ones.
    pub async fn capture(&mut self, n: usize) {
        for _ in 0..n {
            let comment = !self.cases.is_empty() && rand::thread_rng().gen_bool(0.4);
            let op = if comment {
                let case_id = self.cases[rand::thread_rng().gen_range(0..self.cases.len())];
                Operation::CaseCommentV1(CaseCommentV1 {
                    case_id,
                    comment_id: Uuid::now_v7(),
                    text: "still there".into(),
                })
            } else {
                let case_id = Uuid::now_v7();
                self.cases.push(case_id);
                self.new_case(case_id)
            };
            self.client.capture(op, &[]).await.expect("capture");
        }
    }

    fn new_case(&self, case_id: Uuid) -> Operation {
        use sha2::Digest;
        let (a, b, c, d) = gridline_server::demo::zone_rect(self.zone_index);
        let now = OffsetDateTime::now_utc();
        Operation::CaseCreateV1(CaseCreateV1 {
            case_id,
            zone_id: self.zone_id,
            category_code: "event:0102".into(),
            location: Location {
                lat: (b + d) / 2.0,
                lon: (a + c) / 2.0,
                accuracy_m: 8.0,
            },
            asset_code: None,
            description: "overflowing bin".into(),
            severity: Severity::Medium,
            captured_at: now,
            photos: vec![PhotoManifest {
                sha256: hex::encode(sha2::Sha256::digest(case_id.as_bytes())),
                size: 123_456,
                captured_at: now,
                gps: None,
                role: PhotoRole::Before,
            }],
            round_id: None,
        })
    }

    /// One sync; transport trouble is expected here and only reported.
    pub async fn sync(&self) -> Result<gridline_sync::client::SyncReport, ClientError> {
        self.client.sync().await
    }

    /// Requests that got no answer so far.
    pub fn network_errors(&self) -> u64 {
        self.client
            .transport()
            .network_errors
            .load(Ordering::Relaxed)
    }

    pub async fn pending(&self) -> u64 {
        self.client.status().await.expect("status").pending
    }

    /// Syncs until nothing is pending, or panics at `deadline`.
    pub async fn drain(&self, deadline: tokio::time::Instant) -> SyncTally {
        let mut tally = SyncTally::default();
        loop {
            tally.record(self.sync().await);
            if tally.last_ok && self.pending().await == 0 {
                return tally;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: queue not drained before the deadline ({} pending): {tally:?}",
                self.username,
                self.pending().await
            );
        }
    }

    /// What the server must hold for this phone.
    pub async fn expected(&self) -> ExpectedDevice {
        let status = self.client.status().await.expect("status");
        let entries = self.client.store().entries().await.expect("entries");
        for e in &entries {
            assert_eq!(
                e.state,
                OutboxState::Acked,
                "{}: seq {}",
                self.username,
                e.seq
            );
            let result = e.result.as_ref().expect("acked with a result");
            assert_eq!(
                result.effective_status(),
                OpStatus::Applied,
                "{} seq {}: {result:?}",
                self.username,
                e.seq
            );
        }
        ExpectedDevice::from_ops(
            status.device_id,
            entries.iter().map(|e| e.signed.clone()).collect(),
        )
    }
}

/// How a phone's syncs went.
#[derive(Debug, Default, Clone)]
pub struct SyncTally {
    pub ok: u64,
    pub failed: u64,
    pub last_ok: bool,
    /// The server once held fewer operations than the phone had receipts for: an
    /// acknowledged operation was lost. Must never happen.
    pub server_was_behind: bool,
    pub errors: HashMap<String, u64>,
}

impl SyncTally {
    pub fn record(&mut self, r: Result<gridline_sync::client::SyncReport, ClientError>) {
        match r {
            Ok(report) => {
                self.ok += 1;
                self.last_ok = true;
                self.server_was_behind |= report.push.server_was_behind;
            }
            Err(e) => {
                self.failed += 1;
                self.last_ok = false;
                if let ClientError::ServerAhead { .. } = e {
                    panic!("the server claims operations the phone never made: {e}");
                }
                let kind = format!("{e}").chars().take(60).collect::<String>();
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &SyncTally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.server_was_behind |= other.server_was_behind;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// One operation a device made and the server must hold exactly once.
#[derive(Debug, Clone)]
pub struct ExpectedOp {
    pub seq: i64,
    pub op_id: Uuid,
    pub hash: String,
    pub op_type: String,
    pub case_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct ExpectedDevice {
    pub device_id: Uuid,
    pub ops: Vec<ExpectedOp>,
}

impl ExpectedDevice {
    pub fn from_ops(device_id: Uuid, ops: Vec<SignedOperation>) -> ExpectedDevice {
        let ops = ops
            .iter()
            .map(|s| {
                let body: OperationBody = serde_json::from_str(&s.op).expect("own op");
                let uuid_at = |k: &str| {
                    body.payload
                        .get(k)
                        .and_then(|v| v.as_str())
                        .and_then(|v| Uuid::parse_str(v).ok())
                };
                ExpectedOp {
                    seq: body.seq as i64,
                    op_id: body.op_id,
                    hash: gridline_sync::signing::op_hash(&s.op),
                    op_type: body.op_type.clone(),
                    case_id: uuid_at("case_id"),
                    comment_id: uuid_at("comment_id"),
                }
            })
            .collect();
        ExpectedDevice { device_id, ops }
    }
}

/// What [`check_exactly_once`] looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    pub devices: usize,
    pub operations: usize,
    pub cases: usize,
}

/// Compares the devices' operations with the database: every operation stored once with its
/// hash, the device sequences equal, each operation's effect present exactly once, and no
/// partial state (every case has its history, photo manifest and events; versions match
/// events). Panics with every discrepancy found.
pub async fn check_exactly_once(pool: &AnyPool, devices: &[ExpectedDevice]) -> Checked {
    let text = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<String, _>(c).expect(c);
    let int = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<i64, _>(c).expect(c);
    let mut problems = Vec::new();

    let mut ops: HashMap<(String, i64), (String, String, String, String)> = HashMap::new();
    for r in sqlx::query("SELECT device_id, seq, op_id, hash, op_type, status FROM sync_ops")
        .fetch_all(pool)
        .await
        .expect("sync_ops")
    {
        ops.insert(
            (text(&r, "device_id"), int(&r, "seq")),
            (
                text(&r, "op_id"),
                text(&r, "hash"),
                text(&r, "op_type"),
                text(&r, "status"),
            ),
        );
    }
    let mut device_rows: HashMap<String, (i64, String)> = HashMap::new();
    for r in sqlx::query("SELECT id, next_seq, last_hash FROM devices")
        .fetch_all(pool)
        .await
        .expect("devices")
    {
        device_rows.insert(text(&r, "id"), (int(&r, "next_seq"), text(&r, "last_hash")));
    }
    let mut cases: HashMap<String, (Option<String>, i64)> = HashMap::new();
    for r in sqlx::query("SELECT id, device_id, version FROM cases")
        .fetch_all(pool)
        .await
        .expect("cases")
    {
        cases.insert(
            text(&r, "id"),
            (
                r.try_get::<Option<String>, _>("device_id")
                    .expect("device_id"),
                int(&r, "version"),
            ),
        );
    }
    let mut events: HashMap<String, Vec<(String, i64, String)>> = HashMap::new();
    let mut event_ids = HashSet::new();
    for r in sqlx::query("SELECT id, case_id, version, kind FROM case_events")
        .fetch_all(pool)
        .await
        .expect("events")
    {
        event_ids.insert(text(&r, "id"));
        events.entry(text(&r, "case_id")).or_default().push((
            text(&r, "id"),
            int(&r, "version"),
            text(&r, "kind"),
        ));
    }
    let mut history: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT case_id FROM case_field_history WHERE version = 1")
        .fetch_all(pool)
        .await
        .expect("history")
    {
        *history.entry(text(&r, "case_id")).or_default() += 1;
    }
    let mut photos: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT case_id FROM case_photos")
        .fetch_all(pool)
        .await
        .expect("photos")
    {
        *photos.entry(text(&r, "case_id")).or_default() += 1;
    }

    let mut checked = Checked {
        devices: devices.len(),
        ..Checked::default()
    };
    let mut our_cases = HashSet::new();
    for d in devices {
        let dev = d.device_id.to_string();
        let stored = ops.keys().filter(|(id, _)| *id == dev).count();
        if stored != d.ops.len() {
            problems.push(format!(
                "device {dev}: {} operations made, {stored} stored",
                d.ops.len()
            ));
        }
        match device_rows.get(&dev) {
            Some((next_seq, last_hash)) => {
                if *next_seq != d.ops.len() as i64 + 1 {
                    problems.push(format!(
                        "device {dev}: server next_seq {next_seq}, phone made {}",
                        d.ops.len()
                    ));
                }
                if let Some(last) = d.ops.last() {
                    if *last_hash != last.hash {
                        problems.push(format!("device {dev}: server chain head differs"));
                    }
                }
            }
            None => problems.push(format!("device {dev}: not on the server")),
        }
        for op in &d.ops {
            checked.operations += 1;
            match ops.get(&(dev.clone(), op.seq)) {
                None => problems.push(format!("device {dev} seq {}: not stored", op.seq)),
                Some((op_id, hash, op_type, status)) => {
                    if *op_id != op.op_id.to_string() || *hash != op.hash || *op_type != op.op_type
                    {
                        problems.push(format!(
                            "device {dev} seq {}: a different operation is stored",
                            op.seq
                        ));
                    }
                    if status != "applied" {
                        problems.push(format!("device {dev} seq {}: status {status}", op.seq));
                    }
                }
            }
            let case = op.case_id.map(|c| c.to_string());
            match op.op_type.as_str() {
                "case.create@1" => {
                    let case = case.expect("case id");
                    match cases.get(&case) {
                        Some((Some(device), _)) if *device == dev => {}
                        other => problems.push(format!(
                            "case {case} of device {dev} seq {}: {other:?}",
                            op.seq
                        )),
                    }
                    our_cases.insert(case);
                }
                "case.comment@1" => {
                    let comment = op.comment_id.expect("comment id").to_string();
                    let on_case = case
                        .as_ref()
                        .and_then(|c| events.get(c))
                        .is_some_and(|evs| evs.iter().any(|(id, _, _)| *id == comment));
                    if !on_case {
                        problems.push(format!(
                            "comment {comment} (device {dev} seq {}) missing",
                            op.seq
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    // Nothing extra: the cases our devices made are exactly those the server attributes to them.
    let ours: HashSet<String> = devices.iter().map(|d| d.device_id.to_string()).collect();
    for (id, (device, _)) in &cases {
        if device.as_ref().is_some_and(|d| ours.contains(d)) && !our_cases.contains(id) {
            problems.push(format!("case {id} stored but never made"));
        }
    }
    // No partial state.
    for id in &our_cases {
        checked.cases += 1;
        let Some((_, version)) = cases.get(id) else {
            continue;
        };
        let evs = events.get(id).map(Vec::as_slice).unwrap_or_default();
        if evs.len() as i64 != *version {
            problems.push(format!(
                "case {id}: version {version} but {} events",
                evs.len()
            ));
        }
        if evs.iter().filter(|(_, _, k)| k == "created").count() != 1 {
            problems.push(format!("case {id}: not exactly one `created` event"));
        }
        if history.get(id).copied().unwrap_or(0) != 4 {
            problems.push(format!("case {id}: field history incomplete"));
        }
        if photos.get(id).copied().unwrap_or(0) != 1 {
            problems.push(format!("case {id}: photo manifest missing"));
        }
    }
    // EXTENSION POINT (photos and ledger branches, issue 6): once photo uploads and the ledger
    // land, also check here that every photo whose upload was acknowledged is in the object
    // store with the right hash, and that the ledger chain verifies.
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    checked
}

/// The checker itself must be able to fail: a lost operation, a duplicated effect and a
/// partial case are each caught.
#[tokio::test]
async fn the_exactly_once_check_catches_loss_duplication_and_partial_state() {
    use futures::FutureExt;
    use gridline_tests::{new_case, Db, Phone, TestApp};

    let app = TestApp::spawn(Db::Sqlite).await.expect("app");
    let mut phone = Phone::enrol(&app, "inspector1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let ops = vec![
        phone.op("case.create@1", payload),
        phone.op(
            "case.comment@1",
            serde_json::json!({"case_id": case_id, "comment_id": Uuid::now_v7(), "text": "x"}),
        ),
    ];
    assert_eq!(phone.push(&app, &ops).await.0, reqwest::StatusCode::OK);
    let pool = &app.state.db.pool;
    let honest = ExpectedDevice::from_ops(phone.device_id, ops.clone());
    assert_eq!(
        check_exactly_once(pool, std::slice::from_ref(&honest))
            .await
            .operations,
        2
    );

    let fails = |devices: Vec<ExpectedDevice>| async move {
        std::panic::AssertUnwindSafe(check_exactly_once(pool, &devices))
            .catch_unwind()
            .await
            .is_err()
    };
    // The phone holds an operation the server lost.
    let mut more = ops.clone();
    more.push(phone.op(
        "case.create@1",
        new_case(app.zone("Z01"), 0, "event:0102").1,
    ));
    assert!(fails(vec![ExpectedDevice::from_ops(phone.device_id, more)]).await);
    // An effect applied twice: a second comment event on the case.
    sqlx::query(
        "INSERT INTO case_events (id, case_id, version, kind, actor_id, at) \
         VALUES ($1, $2, 3, 'comment', $3, 0)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(case_id.to_string())
    .bind(Uuid::now_v7().to_string())
    .execute(pool)
    .await
    .expect("insert");
    assert!(fails(vec![honest.clone()]).await);
    // A partial case: its photo manifest gone.
    sqlx::query("DELETE FROM case_events WHERE version = 3")
        .execute(pool)
        .await
        .expect("delete");
    assert_eq!(
        check_exactly_once(pool, std::slice::from_ref(&honest))
            .await
            .operations,
        2
    );
    sqlx::query("DELETE FROM case_photos")
        .execute(pool)
        .await
        .expect("delete");
    assert!(fails(vec![honest]).await);
}
