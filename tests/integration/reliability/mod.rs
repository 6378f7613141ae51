//! Reliability: bad networks, crashes, dependency outages and malformed input lose nothing,
//! duplicate nothing and never answer 500.
//!
//! The helpers here are shared by the scenarios: [`SimPhone`] (the reference phone client over
//! HTTP, optionally with real photos to upload), and the checkers, which compare what the
//! clients saw acknowledged with what the server stored, straight from the database and the
//! blob store: [`check_exactly_once`] (sync operations), [`check_photos`] (uploads) and
//! [`check_ledger`] (deductions and the hash chain).

mod crash;
mod dependencies;
mod logs;
mod malformed;
mod network;
mod notices;
mod supervisor;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gridline_sync::client::{
    photo_from_file, Client, ClientError, HttpTransport, LocalPhoto, OutboxState, PhotoState,
    RetryPolicy, Store, TokioSleeper, TransportError,
};
use gridline_sync::ops::{CaseCommentV1, CaseCreateV1, Operation, PhotoManifest, PhotoRole};
use gridline_sync::{OpStatus, OperationBody, SignedOperation};
use gridline_tests::kit::{capture, Call, Watch, Watched};
use object_store::ObjectStore;
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

/// Bytes per upload `PATCH`: the test photos take a few, so crashes and cuts meet uploads
/// part-way.
const UPLOAD_CHUNK: u64 = 8 * 1024;

/// Short backoff: these phones retry against a local server, not a city's 3G.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(300),
    }
}

/// What the phones' requests met: requests that got no answer (refused, reset, cut), 503 +
/// Retry-After answers, and any other 5xx (which must never come).
#[derive(Default)]
pub struct Counts {
    pub network_errors: Arc<AtomicU64>,
    pub unavailable: Arc<AtomicU64>,
    pub server_errors: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Watch for Counts {
    fn after(&self, _call: Call, error: Option<&TransportError>) {
        match error {
            Some(TransportError::Network(_)) => {
                self.network_errors.fetch_add(1, Ordering::Relaxed);
            }
            Some(TransportError::Busy {
                status: 503,
                retry_after: Some(_),
            }) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Some(e @ TransportError::Busy { status, .. }) if *status >= 500 => {
                if let Ok(mut errors) = self.server_errors.lock() {
                    errors.push(format!("{e:?}"));
                }
            }
            _ => {}
        }
    }
}

/// [`HttpTransport`] counting what its requests met.
pub type CountingTransport = Watched<Counts>;

/// A phone running the reference client: a durable outbox in its own SQLite file, talking HTTP
/// to `base_url` on a fresh connection per request (so network faults meet every request).
pub struct SimPhone {
    pub username: String,
    pub client: Client<CountingTransport, TokioSleeper>,
    zone_id: Uuid,
    zone_index: usize,
    cases: Vec<Uuid>,
    /// New cases carry a real JPEG file (uploaded by the client's sync) instead of a declared
    /// hash whose bytes never come.
    with_photos: bool,
    /// The photo files declared so far: (SHA-256, size).
    photos: Vec<(String, u64)>,
    dir: tempfile::TempDir,
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
        let transport = Watched {
            inner: HttpTransport::with_client(base_url, http),
            watch: Counts::default(),
        };
        let client = Client::new(store, transport, TokioSleeper)
            .with_policy(quick_retries())
            .with_upload_chunk(UPLOAD_CHUNK);
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
            with_photos: false,
            photos: Vec::new(),
            dir,
        }
    }

    /// From now on every new case declares a real photo, which `sync` uploads.
    pub fn with_photos(mut self) -> SimPhone {
        self.with_photos = true;
        self
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
                let photo = self.with_photos.then(|| self.photo_file(case_id));
                if let Some(p) = &photo {
                    self.photos
                        .push((p.manifest.sha256.clone(), p.manifest.size));
                }
                let op = self.new_case(case_id, photo.as_ref());
                self.client
                    .capture(op, photo.as_slice())
                    .await
                    .expect("capture");
                continue;
            };
            self.client.capture(op, &[]).await.expect("capture");
        }
    }

    /// A photo of the case on the phone's disk: a noisy JPEG of a few chunks, unique per case.
    fn photo_file(&self, case_id: Uuid) -> LocalPhoto {
        let seed = u64::from_le_bytes(case_id.as_bytes()[8..].try_into().expect("8 bytes"));
        let bytes = gridline_tests::noisy_jpeg(160, 120, seed);
        let path = self.dir.path().join(format!("{case_id}.jpg"));
        std::fs::write(&path, bytes).expect("write photo");
        photo_from_file(&path, PhotoRole::Before, OffsetDateTime::now_utc()).expect("photo")
    }

    fn new_case(&self, case_id: Uuid, photo: Option<&LocalPhoto>) -> Operation {
        use sha2::Digest;
        let now = OffsetDateTime::now_utc();
        let manifest = match photo {
            Some(p) => p.manifest.clone(),
            // A declared photo whose bytes never come.
            None => PhotoManifest {
                sha256: hex::encode(sha2::Sha256::digest(case_id.as_bytes())),
                size: 123_456,
                captured_at: now,
                gps: None,
                role: PhotoRole::Before,
            },
        };
        Operation::CaseCreateV1(CaseCreateV1 {
            case_id,
            captured_at: now,
            photos: vec![manifest],
            ..capture(self.zone_id, self.zone_index, "overflowing bin")
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
            .watch
            .network_errors
            .load(Ordering::Relaxed)
    }

    /// 5xx answers other than 503 with Retry-After: there must be none.
    pub fn server_errors(&self) -> Vec<String> {
        self.client
            .transport()
            .watch
            .server_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Operations not acknowledged yet, plus photos not confirmed verified yet.
    pub async fn pending(&self) -> u64 {
        let status = self.client.status().await.expect("status");
        status.pending + status.photos.pending
    }

    /// Syncs until nothing is pending (operations and photos), or panics at `deadline`.
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

    /// Every photo this phone declared, and whether the server confirmed it verified. None may
    /// have been refused: they are all valid JPEGs declared by applied cases.
    pub async fn expected_photos(&self) -> Vec<ExpectedPhoto> {
        let mut out = Vec::new();
        for (sha, size) in &self.photos {
            let photo = self
                .client
                .store()
                .photo(sha)
                .await
                .expect("photo")
                .expect("declared photo");
            assert_ne!(
                photo.state,
                PhotoState::Refused,
                "{}: photo {sha} refused: {photo:?}",
                self.username
            );
            out.push(ExpectedPhoto {
                sha256: sha.clone(),
                size: *size,
                acknowledged: photo.state == PhotoState::Uploaded,
            });
        }
        out
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
    /// Photo uploads continued from where an interrupted one stopped.
    pub uploads_resumed: u64,
    pub errors: HashMap<String, u64>,
}

impl SyncTally {
    pub fn record(&mut self, r: Result<gridline_sync::client::SyncReport, ClientError>) {
        match r {
            Ok(report) => {
                self.ok += 1;
                self.last_ok = true;
                self.server_was_behind |= report.push.server_was_behind;
                self.uploads_resumed += report.upload.resumed;
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
        self.uploads_resumed += other.uploads_resumed;
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
    // Photo bytes and the ledger have checkers of their own: `check_photos`, `check_ledger`.
    fail_on(problems);
    checked
}

/// Panics listing every problem, if any.
fn fail_on(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A photo a client declared; `acknowledged` when the server confirmed it verified.
#[derive(Debug, Clone)]
pub struct ExpectedPhoto {
    pub sha256: String,
    pub size: u64,
    pub acknowledged: bool,
}

/// What [`check_photos`] looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct PhotosChecked {
    /// Photos acknowledged to the clients, each found stored once with the right bytes.
    pub acknowledged: usize,
    /// Photo rows marked verified in the database, each with its bytes in the store.
    pub verified_rows: usize,
    /// Upload rows checked for partial state (complete or still receiving).
    pub uploads: usize,
}

/// The SHA-256 (hex) and length of the object at `key`, or why it cannot be read.
async fn blob_digest(
    blobs: &dyn ObjectStore,
    key: &object_store::path::Path,
) -> Result<(String, usize), String> {
    use sha2::Digest;
    let got = blobs.get(key).await.map_err(|e| e.to_string())?;
    let bytes = got.bytes().await.map_err(|e| e.to_string())?;
    Ok((hex::encode(sha2::Sha256::digest(&bytes)), bytes.len()))
}

/// Compares the photos clients saw acknowledged with the database and the blob store itself:
/// each is a `verified` row with its size, and `photos/{sha256}` holds bytes hashing to it.
/// No partial state: every `verified` row has its bytes, and every original its row; every
/// complete upload's photo is
/// verified; every upload still receiving has contiguous pieces, all in the store, adding up
/// to what it says it received. Panics with every discrepancy found.
pub async fn check_photos(
    pool: &AnyPool,
    blobs: &dyn ObjectStore,
    expected: &[ExpectedPhoto],
) -> PhotosChecked {
    let mut problems = Vec::new();
    let mut checked = PhotosChecked::default();
    let mut rows: HashMap<String, (String, i64)> = HashMap::new();
    for r in sqlx::query("SELECT sha256, status, size FROM photos")
        .fetch_all(pool)
        .await
        .expect("photos")
    {
        let sha: String = r.try_get("sha256").expect("sha256");
        let status: String = r.try_get("status").expect("status");
        let size: i64 = r.try_get("size").expect("size");
        rows.insert(sha, (status, size));
    }
    let mut seen = HashSet::new();
    for p in expected.iter().filter(|p| p.acknowledged) {
        if !seen.insert(p.sha256.as_str()) {
            continue;
        }
        checked.acknowledged += 1;
        match rows.get(&p.sha256) {
            Some((status, size)) if status == "verified" && *size == p.size as i64 => {}
            other => problems.push(format!(
                "photo {} acknowledged, but the database has {other:?}",
                p.sha256
            )),
        }
    }
    for (sha, (status, size)) in &rows {
        if status != "verified" {
            continue;
        }
        checked.verified_rows += 1;
        match blob_digest(blobs, &gridline_server::photos::original_path(sha)).await {
            Ok((digest, len)) if digest == *sha && len as i64 == *size => {}
            Ok((digest, len)) => problems.push(format!(
                "photo {sha} verified, but the store holds {len} bytes hashing to {digest}"
            )),
            Err(e) => problems.push(format!("photo {sha} verified, but not in the store: {e}")),
        }
    }

    // Each original stored once, under its name, and none without its row: the clients drove
    // every upload to the end, so an original written by a request killed before it could
    // record the photo has been recorded by the retry.
    let listed: Vec<_> = blobs
        .list(Some(&object_store::path::Path::from("photos")))
        .collect()
        .await;
    for meta in listed {
        match meta {
            Ok(meta) => {
                let sha = meta.location.filename().unwrap_or_default();
                if rows.get(sha).is_none_or(|(s, _)| s != "verified") {
                    problems.push(format!("{} stored with no verified photo", meta.location));
                }
            }
            Err(e) => problems.push(format!("cannot list the photo store: {e}")),
        }
    }

    let mut parts: HashMap<String, Vec<(i64, i64, String)>> = HashMap::new();
    for r in sqlx::query("SELECT upload_id, start, length, object_key FROM upload_parts")
        .fetch_all(pool)
        .await
        .expect("upload parts")
    {
        parts
            .entry(r.try_get("upload_id").expect("upload_id"))
            .or_default()
            .push((
                r.try_get("start").expect("start"),
                r.try_get("length").expect("length"),
                r.try_get("object_key").expect("object_key"),
            ));
    }
    for r in sqlx::query("SELECT id, sha256, length, received, state FROM uploads")
        .fetch_all(pool)
        .await
        .expect("uploads")
    {
        checked.uploads += 1;
        let id: String = r.try_get("id").expect("id");
        let sha: String = r.try_get("sha256").expect("sha256");
        let length: i64 = r.try_get("length").expect("length");
        let received: i64 = r.try_get("received").expect("received");
        let state: String = r.try_get("state").expect("state");
        if received > length {
            problems.push(format!(
                "upload {id}: {received} of {length} bytes received"
            ));
        }
        match state.as_str() {
            "complete" => {
                if rows.get(&sha).is_none_or(|(s, _)| s != "verified") || received != length {
                    problems.push(format!(
                        "upload {id} complete, but photo {sha} is not verified"
                    ));
                }
            }
            "receiving" => {
                let mut pieces = parts.remove(&id).unwrap_or_default();
                pieces.sort();
                let mut at = 0;
                for (start, len, key) in &pieces {
                    if *start != at {
                        problems.push(format!("upload {id}: a gap or overlap at {at}"));
                    }
                    at = start + len;
                    match blobs
                        .head(&object_store::path::Path::from(key.as_str()))
                        .await
                    {
                        Ok(meta) if meta.size as i64 == *len => {}
                        other => problems.push(format!(
                            "upload {id}: piece {key} recorded but stored as {other:?}"
                        )),
                    }
                }
                if at != received {
                    problems.push(format!(
                        "upload {id}: says {received} bytes received, its pieces hold {at}"
                    ));
                }
            }
            other => problems.push(format!("upload {id}: state {other}")),
        }
    }
    fail_on(problems);
    checked
}

/// A deduction approval a supervisor saw acknowledged (a 200, or a later read showing it).
#[derive(Debug, Clone)]
pub struct AckedApproval {
    pub proposal_id: Uuid,
    pub entry_id: Uuid,
    pub case_id: Uuid,
}

/// What [`check_ledger`] looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct LedgerChecked {
    /// Entries whose chain verified.
    pub entries: i64,
    pub approved_proposals: usize,
    pub acknowledged: usize,
}

/// The ledger against the proposals and what supervisors saw: the hash chain verifies; every
/// approved proposal has exactly one entry (the one it names) and no other proposal has any;
/// every acknowledged approval is there; a case of an acknowledged approval has exactly one
/// proposal and one entry (retries duplicated nothing); every case with an entry is locked and
/// has one `deduction_approved` event per entry (no partial approval). Panics with every
/// discrepancy found.
pub async fn check_ledger(pool: &AnyPool, acked: &[AckedApproval]) -> LedgerChecked {
    let opt = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<Option<String>, _>(c).expect(c);
    let text = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<String, _>(c).expect(c);
    let mut problems = Vec::new();
    let mut checked = LedgerChecked::default();
    let (entries, first_bad) = gridline_server::store::ledger::verify_chain(pool)
        .await
        .expect("verify the chain");
    checked.entries = entries;
    if let Some(bad) = first_bad {
        problems.push(format!("the ledger chain breaks: {bad:?}"));
    }
    // entry id -> (proposal id, case id)
    let mut by_entry: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let mut by_proposal: HashMap<String, Vec<String>> = HashMap::new();
    let mut per_case: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT id, kind, proposal_id, case_id FROM ledger_entries")
        .fetch_all(pool)
        .await
        .expect("ledger entries")
    {
        let id = text(&r, "id");
        let proposal = opt(&r, "proposal_id");
        let case = opt(&r, "case_id");
        if text(&r, "kind") == "deduction" {
            match &proposal {
                Some(p) => by_proposal.entry(p.clone()).or_default().push(id.clone()),
                None => problems.push(format!("entry {id}: a deduction without a proposal")),
            }
            if let Some(c) = &case {
                *per_case.entry(c.clone()).or_default() += 1;
            }
        }
        by_entry.insert(id, (proposal, case));
    }
    let mut proposals: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut proposals_per_case: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT id, case_id, status, ledger_entry_id FROM deduction_proposals")
        .fetch_all(pool)
        .await
        .expect("proposals")
    {
        let id = text(&r, "id");
        let status = text(&r, "status");
        let entry = opt(&r, "ledger_entry_id");
        if let Some(c) = opt(&r, "case_id") {
            *proposals_per_case.entry(c).or_default() += 1;
        }
        let posted = by_proposal.get(&id).map(Vec::as_slice).unwrap_or_default();
        if status == "approved" {
            checked.approved_proposals += 1;
            if posted.len() != 1 || entry.as_deref() != posted.first().map(String::as_str) {
                problems.push(format!(
                    "proposal {id} approved naming entry {entry:?}, entries posted: {posted:?}"
                ));
            }
        } else if !posted.is_empty() || entry.is_some() {
            problems.push(format!(
                "proposal {id} is {status} but has entries {posted:?}"
            ));
        }
        proposals.insert(id, (status, entry));
    }
    for p in by_proposal.keys() {
        if !proposals.contains_key(p) {
            problems.push(format!("entries {:?} name no proposal", by_proposal[p]));
        }
    }
    for a in acked {
        checked.acknowledged += 1;
        let (pid, eid, case) = (
            a.proposal_id.to_string(),
            a.entry_id.to_string(),
            a.case_id.to_string(),
        );
        match proposals.get(&pid) {
            Some((status, Some(entry))) if status == "approved" && *entry == eid => {}
            other => problems.push(format!(
                "approval of {pid} acknowledged with entry {eid}, proposal is {other:?}"
            )),
        }
        match by_entry.get(&eid) {
            Some((Some(p), Some(c))) if *p == pid && *c == case => {}
            other => problems.push(format!("acknowledged entry {eid}: stored as {other:?}")),
        }
        let (n_entries, n_proposals) = (
            per_case.get(&case).copied().unwrap_or(0),
            proposals_per_case.get(&case).copied().unwrap_or(0),
        );
        if n_entries != 1 || n_proposals != 1 {
            problems.push(format!(
                "case {case}: {n_proposals} proposals and {n_entries} entries, one of each expected"
            ));
        }
    }
    // No partial approval: each entry's case is locked and tells of it once per entry.
    let mut approved_events: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT case_id FROM case_events WHERE kind = 'deduction_approved'")
        .fetch_all(pool)
        .await
        .expect("events")
    {
        *approved_events.entry(text(&r, "case_id")).or_default() += 1;
    }
    for (case, n) in &per_case {
        let locked: Option<i64> = sqlx::query_scalar("SELECT locked_at FROM cases WHERE id = $1")
            .bind(case)
            .fetch_optional(pool)
            .await
            .expect("case")
            .flatten();
        if locked.is_none() {
            problems.push(format!("case {case}: {n} entries but not locked"));
        }
        if approved_events.get(case).copied().unwrap_or(0) != *n {
            problems.push(format!(
                "case {case}: {n} entries but {} deduction_approved events",
                approved_events.get(case).copied().unwrap_or(0)
            ));
        }
    }
    fail_on(problems);
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

/// Whether `f` panics (a checker finding a problem).
async fn panics(f: impl std::future::Future) -> bool {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .is_err()
}

/// The photo and ledger checkers must be able to fail: a photo acknowledged but unknown, its
/// bytes gone or corrupt in the store, an acknowledged approval missing from the ledger, a
/// broken chain and a duplicated deduction are each caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_photo_and_ledger_checks_catch_lost_or_corrupt_bytes_a_broken_chain_and_duplicates() {
    use gridline_tests::{Db, TestApp};
    use object_store::path::Path;

    // The desk's one supervisor proposes and approves: a one-person office.
    let app = TestApp::spawn_with(Db::Sqlite, |c| c.deductions.four_eyes = false)
        .await
        .expect("app");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut phone = SimPhone::enrol(&app.base, "inspector1", app.zone("Z01"), 0, deadline)
        .await
        .with_photos();
    phone.capture(1).await;
    phone.drain(deadline).await;
    let photos = phone.expected_photos().await;
    assert_eq!(photos.len(), 1);
    assert!(photos[0].acknowledged, "{photos:?}");
    let pool = &app.state.db.pool;
    let blobs = app.state.blobs.as_ref();
    assert_eq!(check_photos(pool, blobs, &photos).await.acknowledged, 1);

    // A photo acknowledged that the server never stored.
    let mut unknown = photos.clone();
    unknown.push(ExpectedPhoto {
        sha256: "ab".repeat(32),
        size: 10,
        acknowledged: true,
    });
    assert!(panics(check_photos(pool, blobs, &unknown)).await);
    // Its bytes lost from the store, then corrupted.
    let key = gridline_server::photos::original_path(&photos[0].sha256);
    let original = blobs.get(&key).await.unwrap().bytes().await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert!(panics(check_photos(pool, blobs, &photos)).await);
    let mut corrupt = original.to_vec();
    corrupt[100] ^= 1;
    blobs.put(&key, corrupt.into()).await.unwrap();
    assert!(panics(check_photos(pool, blobs, &photos)).await);
    // A half-recorded upload: a piece on record that the store does not hold.
    blobs.put(&key, original.clone().into()).await.unwrap();
    check_photos(pool, blobs, &photos).await;
    let upload = Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO uploads (id, sha256, length, received, state, metadata, created_by, \
         created_at, expires_at) VALUES ($1, $2, 100, 50, 'receiving', '', 'x', 0, 0)",
    )
    .bind(&upload)
    .bind("cd".repeat(32))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO upload_parts (upload_id, start, length, object_key) VALUES ($1, 0, 50, $2)",
    )
    .bind(&upload)
    .bind(format!("uploads/{upload}/piece"))
    .execute(pool)
    .await
    .unwrap();
    assert!(panics(check_photos(pool, blobs, &photos)).await);
    blobs
        .put(
            &Path::from(format!("uploads/{upload}/piece")),
            vec![0u8; 50].into(),
        )
        .await
        .unwrap();
    check_photos(pool, blobs, &photos).await;

    // The supervisor approves a deduction on the case.
    let mut supervisor = supervisor::Supervisor::new(&app.base, 1);
    supervisor.drain(deadline).await;
    assert!(supervisor.wrong.is_empty(), "{:?}", supervisor.wrong);
    let approvals = supervisor.approvals.clone();
    assert_eq!(approvals.len(), 1);
    assert_eq!(check_ledger(pool, &approvals).await.entries, 1);
    // An approval acknowledged that the ledger does not hold.
    let mut lost = approvals.clone();
    lost.push(AckedApproval {
        entry_id: Uuid::now_v7(),
        ..approvals[0].clone()
    });
    assert!(panics(check_ledger(pool, &lost)).await);
    // A tampered entry breaks the chain.
    sqlx::query("DROP TRIGGER ledger_entries_no_update")
        .execute(pool)
        .await
        .unwrap();
    let points: i64 =
        sqlx::query_scalar("SELECT weighted_points_milli FROM ledger_entries WHERE seq = 1")
            .fetch_one(pool)
            .await
            .unwrap();
    let set_points = |p: i64| {
        sqlx::query("UPDATE ledger_entries SET weighted_points_milli = $1 WHERE seq = 1")
            .bind(p)
            .execute(pool)
    };
    set_points(points + 1).await.unwrap();
    assert!(panics(check_ledger(pool, &approvals)).await);
    set_points(points).await.unwrap();
    check_ledger(pool, &approvals).await;
    // A second deduction posted for the same case (a retried proposal that duplicated). The
    // API refuses one now (`case_already_deducted`), so it is written into the database as a
    // server without that rule would have: an approved proposal that does not hold the case,
    // and its entry, appended to the chain properly.
    let token = app.login("supervisor1").await;
    let (status, refused) = app
        .post(
            "/v1/deductions",
            Some(&token),
            &serde_json::json!({"case_id": approvals[0].case_id, "rule_code": "INSP-GARBAGE"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{refused}");
    let (again, again_entry) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    sqlx::query(
        "INSERT INTO deduction_proposals (id, case_id, zone_id, period_id, source, rulebook_id, \
         rule_code, raw_points_milli, category_code, found_at, note, status, proposed_by, \
         proposed_at, decided_by, decided_at, ledger_entry_id) SELECT $1, case_id, zone_id, \
         period_id, source, rulebook_id, rule_code, raw_points_milli, category_code, found_at, \
         note, status, proposed_by, proposed_at, decided_by, decided_at, $2 \
         FROM deduction_proposals WHERE id = $3",
    )
    .bind(&again)
    .bind(&again_entry)
    .bind(approvals[0].proposal_id.to_string())
    .execute(pool)
    .await
    .unwrap();
    let first = gridline_server::store::ledger::entry(pool, approvals[0].entry_id)
        .await
        .unwrap()
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    gridline_server::store::ledger::append(
        &mut conn,
        gridline_server::ledger::chain::Entry {
            id: again_entry,
            proposal_id: Some(again),
            ..first
        },
    )
    .await
    .unwrap();
    drop(conn);
    // The chain itself is sound: the duplicate is what the check must catch.
    let (_, first_bad) = gridline_server::store::ledger::verify_chain(pool)
        .await
        .unwrap();
    assert_eq!(first_bad, None);
    assert!(panics(check_ledger(pool, &approvals)).await);
}
