//! The simulation: inspectors in three zones and two supervisors, each a real reference
//! [`Client`] with its own SQLite outbox, capture and edit the same cases offline while the
//! network drops requests, drops responses after the server acted, duplicates requests and holds
//! batches back behind other devices' syncs. Then the network heals, everything syncs, and the
//! server and every phone must agree:
//!
//! - every captured operation was applied exactly once, or visibly rejected, or applied with a
//!   recorded conflict that keeps both values;
//! - the server's event log of every case accounts for each version exactly once, and every
//!   event is claimed by the one operation that caused it;
//! - every field holds the value of the last operation that wrote it;
//! - each phone's mirror equals the server's view of its scope.
//!
//! Seeds come from proptest; a failure names the seed. Replay one with `GRIDLINE_SIM_SEED=<n>`;
//! change how many run with `GRIDLINE_SIM_CASES=<n>`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridline_sync::case::{CaseField, Resolution};
use gridline_sync::client::{
    Client, ClientError, HttpTransport, OutboxEntry, OutboxState, RecordingSleeper, RetryPolicy,
    Store, Transport, TransportError,
};
use gridline_sync::ops::{
    CaseChanges, CaseCommentV1, CaseCreateV1, CaseEditV1, CaseTransitionV1, Location,
    PhotoManifest, PhotoRole, Severity, TransitionAction,
};
use gridline_sync::{
    EnrolDeviceRequest, EnrolDeviceResponse, EntityKind, LoginRequest, OpResult, OpStatus,
    Operation, OperationBody, PullQuery, PullResponse, PushRequest, PushResponse, RefreshRequest,
    TokenResponse,
};
use gridline_tests::{Db, TestApp};
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

const CATEGORIES: &[&str] = &["event:0102", "event:0103", "event:0501"];
const STEPS: usize = 60;

#[test]
fn simulation_on_sqlite() {
    run_seeds(Db::Sqlite, 24);
}

#[test]
fn simulation_on_postgres() {
    if gridline_tests::postgres_admin_url().is_none() {
        return;
    }
    run_seeds(Db::Postgres, 6);
}

fn run_seeds(db: Db, default_cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(seed) = std::env::var("GRIDLINE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        runtime.block_on(simulate(db, seed));
        return;
    }
    let cases = std::env::var("GRIDLINE_SIM_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        // A seed is not made smaller by shrinking it: report the first failure as it is.
        max_shrink_iters: 0,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::prelude::any::<u64>(), |seed| {
            runtime.block_on(simulate(db, seed));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("simulation on {db:?} failed: {e}"));
}

// -- the network ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    /// The request never leaves the phone.
    DropRequest,
    /// A proxy answers 503 without asking the server.
    Busy,
    /// The server processes the request; the phone never hears back.
    DropResponse,
    /// The request arrives twice; the phone hears one of the answers.
    Duplicate,
    /// The request is held in the network and arrives later, behind other devices' syncs; the
    /// phone times out meanwhile.
    Delay,
}

/// What all the phones' links share: whether faults are on, the held-back requests, and what
/// the real server answered with 5xx (which a healthy server never does here).
#[derive(Default)]
struct Network {
    faults: AtomicBool,
    delayed: Mutex<Vec<(HttpTransport, String, PushRequest)>>,
    injected: Mutex<HashMap<Fault, u32>>,
    server_errors: Mutex<Vec<String>>,
}

impl Network {
    fn observe<T>(&self, what: &str, result: &Result<T, TransportError>) {
        let status = match result {
            Err(TransportError::Busy { status, .. }) => *status,
            Err(TransportError::Http { status, .. }) => *status,
            _ => return,
        };
        if status >= 500 {
            self.server_errors
                .lock()
                .unwrap()
                .push(format!("{what}: HTTP {status}"));
        }
    }

    /// Delivers every held-back request, in a shuffled order; the answers go nowhere.
    async fn deliver_delayed(&self, rng: &mut StdRng) {
        let mut held = std::mem::take(&mut *self.delayed.lock().unwrap());
        held.shuffle(rng);
        for (transport, token, req) in held {
            let result = transport.push(token, &req).await;
            self.observe("late push", &result);
        }
    }

    fn count(&self, fault: Fault) {
        *self.injected.lock().unwrap().entry(fault).or_default() += 1;
    }
}

/// One phone's link: [`HttpTransport`] with faults drawn from the phone's own seeded RNG.
struct FaultyTransport {
    inner: HttpTransport,
    rng: Mutex<StdRng>,
    net: Arc<Network>,
}

impl FaultyTransport {
    fn pick(&self, push: bool) -> Option<Fault> {
        if !self.net.faults.load(Ordering::SeqCst) {
            return None;
        }
        let roll = self.rng.lock().unwrap().gen_range(0..100);
        let fault = match (push, roll) {
            (_, 0..=7) => Fault::DropRequest,
            (_, 8..=12) => Fault::Busy,
            (_, 13..=24) => Fault::DropResponse,
            (true, 25..=34) => Fault::Duplicate,
            (true, 35..=44) => Fault::Delay,
            _ => return None,
        };
        self.net.count(fault);
        Some(fault)
    }

    fn coin(&self) -> bool {
        self.rng.lock().unwrap().gen_bool(0.5)
    }

    async fn pull_once(
        &self,
        token: String,
        query: &PullQuery,
    ) -> Result<PullResponse, TransportError> {
        let result = self.inner.pull(token, query).await;
        self.net.observe("pull", &result);
        result
    }

    async fn push_once(
        &self,
        token: String,
        req: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        let result = self.inner.push(token, req).await;
        self.net.observe("push", &result);
        result
    }
}

fn lost(what: &str) -> TransportError {
    TransportError::Network(what.to_owned())
}

impl Transport for FaultyTransport {
    async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, TransportError> {
        self.inner.login(req).await
    }

    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, TransportError> {
        self.inner.refresh(req).await
    }

    async fn enrol(
        &self,
        access_token: String,
        req: &EnrolDeviceRequest,
    ) -> Result<EnrolDeviceResponse, TransportError> {
        self.inner.enrol(access_token, req).await
    }

    async fn push(
        &self,
        access_token: String,
        req: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        match self.pick(true) {
            None => self.push_once(access_token, req).await,
            Some(Fault::DropRequest) => Err(lost("dropped before sending")),
            Some(Fault::Busy) => Err(TransportError::Busy {
                status: 503,
                retry_after: Some(Duration::from_secs(1)),
            }),
            Some(Fault::DropResponse) => {
                let _ = self.push_once(access_token, req).await;
                Err(lost("response lost"))
            }
            Some(Fault::Duplicate) => {
                let first = self.push_once(access_token.clone(), req).await;
                let second = self.push_once(access_token, req).await;
                if self.coin() {
                    first
                } else {
                    second
                }
            }
            Some(Fault::Delay) => {
                self.net.delayed.lock().unwrap().push((
                    self.inner.clone(),
                    access_token,
                    req.clone(),
                ));
                Err(lost("timed out; the request is still in the network"))
            }
        }
    }

    async fn pull(
        &self,
        access_token: String,
        query: &PullQuery,
    ) -> Result<PullResponse, TransportError> {
        match self.pick(false) {
            None => self.pull_once(access_token, query).await,
            Some(Fault::DropResponse) => {
                let _ = self.pull_once(access_token, query).await;
                Err(lost("response lost"))
            }
            Some(Fault::Busy) => Err(TransportError::Busy {
                status: 503,
                retry_after: None,
            }),
            Some(_) => Err(lost("dropped before sending")),
        }
    }

    async fn upload_create(
        &self,
        token: String,
        sha256: &str,
        length: u64,
    ) -> Result<gridline_sync::client::UploadCreated, TransportError> {
        self.inner.upload_create(token, sha256, length).await
    }
    async fn upload_offset(&self, token: String, location: &str) -> Result<u64, TransportError> {
        self.inner.upload_offset(token, location).await
    }
    async fn upload_patch(
        &self,
        token: String,
        location: &str,
        chunk: &gridline_sync::client::UploadChunk,
    ) -> Result<u64, TransportError> {
        self.inner.upload_patch(token, location, chunk).await
    }
}

// -- the devices ------------------------------------------------------------------------------

type Phone = Client<FaultyTransport, RecordingSleeper>;

struct Device {
    username: String,
    supervisor: bool,
    /// Inspectors: the demo zone index and id they work in.
    zone: Option<(usize, Uuid)>,
    client: Phone,
    /// Cases captured on this phone.
    own: Vec<Uuid>,
    made: u32,
}

impl Device {
    /// A new description nobody else ever writes, so every write of it is a real change.
    fn fresh_text(&mut self, what: &str) -> String {
        self.made += 1;
        format!("{what} {} #{}", self.username, self.made)
    }

    /// Cases this phone can name: its mirror and its own captures, with the version it last saw.
    async fn known_cases(&self) -> Vec<(Uuid, i64)> {
        let mut known: BTreeMap<Uuid, i64> = self
            .client
            .mirror(EntityKind::Case)
            .await
            .expect("mirror")
            .into_iter()
            .filter_map(|m| Some((Uuid::parse_str(&m.id).ok()?, m.version)))
            .collect();
        for id in &self.own {
            known.entry(*id).or_insert(1);
        }
        known.into_iter().collect()
    }

    async fn capture(&self, op: Operation) {
        self.client
            .capture(op, &[])
            .await
            .unwrap_or_else(|e| panic!("{}: capture: {e}", self.username));
    }

    /// Syncs; a network failure is fine (the phone tries again later), anything else is not.
    async fn sync(&self) {
        match self.client.sync().await {
            Ok(_) => {}
            Err(ClientError::Transport(e)) if e.is_transient() => {}
            Err(e) => panic!("{}: sync failed: {e}", self.username),
        }
    }
}

async fn enrol(
    app: &TestApp,
    dir: &std::path::Path,
    net: &Arc<Network>,
    seed: u64,
    i: usize,
    username: &str,
) -> Device {
    let store = Store::open(&dir.join(format!("{username}.db")))
        .await
        .expect("store");
    let transport = FaultyTransport {
        inner: HttpTransport::new(&app.base).expect("transport"),
        rng: Mutex::new(StdRng::seed_from_u64(seed ^ ((i as u64 + 1) << 48))),
        net: net.clone(),
    };
    let client =
        Client::new(store, transport, RecordingSleeper::default()).with_policy(RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        });
    client
        .enrol(
            &app.base,
            username,
            gridline_server::demo::DEMO_PASSWORD,
            &format!("{username}'s phone"),
        )
        .await
        .expect("enrol");
    let zone = username
        .strip_prefix("inspector")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| {
            let index = (n - 1) / 2;
            (index, app.zone(&format!("Z0{}", index + 1)))
        });
    Device {
        username: username.to_owned(),
        supervisor: username.starts_with("supervisor"),
        zone,
        client,
        own: Vec::new(),
        made: 0,
    }
}

fn create_op(device: &mut Device, rng: &mut StdRng) -> (Uuid, Operation) {
    let (index, zone_id) = device.zone.expect("inspectors have a zone");
    let (a, b, c, d) = gridline_server::demo::zone_rect(index);
    let case_id = Uuid::now_v7();
    let now = OffsetDateTime::now_utc();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(case_id.as_bytes()))
    };
    let op = Operation::CaseCreateV1(CaseCreateV1 {
        case_id,
        zone_id,
        category_code: CATEGORIES
            .choose(rng)
            .copied()
            .unwrap_or("event:0102")
            .to_owned(),
        location: Location {
            lat: (b + d) / 2.0,
            lon: (a + c) / 2.0,
            accuracy_m: 8.0,
            datum: Default::default(),
        },
        asset_code: None,
        description: device.fresh_text("captured by"),
        severity: Severity::Medium,
        captured_at: now,
        photos: vec![PhotoManifest {
            sha256: sha,
            size: 100_000,
            captured_at: now,
            gps: None,
            role: PhotoRole::Before,
        }],
        round_id: None,
    });
    (case_id, op)
}

fn edit_op(device: &mut Device, rng: &mut StdRng, case_id: Uuid, base_version: i64) -> Operation {
    let severities = [Severity::Low, Severity::Medium, Severity::High];
    let mut changes = CaseChanges {
        description: Some(device.fresh_text("edited by")),
        ..CaseChanges::default()
    };
    // Supervisors reclassify; inspectors sometimes do too.
    if device.supervisor || rng.gen_bool(0.5) {
        changes.category_code = CATEGORIES.choose(rng).map(|c| (*c).to_owned());
    }
    if rng.gen_bool(0.3) {
        changes.severity = severities.choose(rng).copied();
    }
    Operation::CaseEditV1(CaseEditV1 {
        case_id,
        base_version,
        changes,
    })
}

fn comment_op(device: &mut Device, case_id: Uuid) -> Operation {
    Operation::CaseCommentV1(CaseCommentV1 {
        case_id,
        comment_id: Uuid::now_v7(),
        text: device.fresh_text("comment by"),
    })
}

/// One step of a device's offline life.
async fn act(
    device: &mut Device,
    rng: &mut StdRng,
    everyone: &[(Uuid, usize)],
) -> Option<(Uuid, usize)> {
    let known = device.known_cases().await;
    let roll = rng.gen_range(0..100);
    if !device.supervisor && (known.is_empty() || roll < 35) {
        let (case_id, op) = create_op(device, rng);
        device.capture(op).await;
        device.own.push(case_id);
        return device.zone.map(|(index, _)| (case_id, index));
    }
    let &(case_id, version) = known.choose(rng)?;
    let op = match (device.supervisor, roll) {
        (true, 0..=59) | (false, 35..=64) => edit_op(device, rng, case_id, version),
        (true, _) | (false, 65..=84) => comment_op(device, case_id),
        (false, 85..=91) => match device.own.choose(rng) {
            Some(own) => Operation::CaseTransitionV1(CaseTransitionV1 {
                case_id: *own,
                base_version: known
                    .iter()
                    .find(|(id, _)| id == own)
                    .map_or(1, |(_, v)| *v),
                action: TransitionAction::Withdraw,
                comment: Some("captured by mistake".into()),
                photos: vec![],
            }),
            None => comment_op(device, case_id),
        },
        // A case from another zone, heard of by word of mouth: must be refused, visibly.
        (false, _) => {
            let my_zone = device.zone.map(|(i, _)| i);
            match everyone
                .iter()
                .filter(|(_, z)| Some(*z) != my_zone)
                .collect::<Vec<_>>()
                .choose(rng)
            {
                Some((foreign, _)) => edit_op(device, rng, *foreign, 1),
                None => comment_op(device, case_id),
            }
        }
    };
    device.capture(op).await;
    None
}

// -- the run ----------------------------------------------------------------------------------

async fn simulate(db: Db, seed: u64) {
    let Some(app) = TestApp::spawn(db).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Arc::new(Network::default());
    let names = [
        "inspector1",
        "inspector2",
        "inspector3",
        "inspector4",
        "inspector5",
        "inspector6",
        "supervisor1",
        "supervisor2",
    ];
    let mut devices = Vec::new();
    for (i, name) in names.iter().enumerate() {
        devices.push(enrol(&app, dir.path(), &net, seed, i, name).await);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut everyone: Vec<(Uuid, usize)> = Vec::new();

    net.faults.store(true, Ordering::SeqCst);
    for _ in 0..STEPS {
        let i = rng.gen_range(0..devices.len());
        match rng.gen_range(0..100) {
            0..=7 => net.deliver_delayed(&mut rng).await,
            8..=24 => devices[i].sync().await,
            25..=34 => {
                // Two phones sync at the same moment.
                let j = (i + rng.gen_range(1..devices.len())) % devices.len();
                tokio::join!(devices[i].sync(), devices[j].sync());
            }
            _ => {
                if let Some(created) = act(&mut devices[i], &mut rng, &everyone).await {
                    everyone.push(created);
                }
            }
        }
    }

    // The network heals: late requests land, then everyone syncs until the queues are empty,
    // then everyone pulls once more so each sees the others' last pushes.
    net.faults.store(false, Ordering::SeqCst);
    net.deliver_delayed(&mut rng).await;
    for d in &devices {
        let report = d
            .client
            .sync()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {} final sync: {e}", d.username));
        let status = d.client.status().await.expect("status");
        assert_eq!(status.pending, 0, "seed {seed}: {} {report:?}", d.username);
    }
    for d in &devices {
        d.client
            .pull()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {} final pull: {e}", d.username));
    }

    let errors = net.server_errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "seed {seed}: the server failed: {errors:?}"
    );
    check(&app, &devices, seed).await;
    eprintln!(
        "seed {seed}: faults {:?}",
        net.injected.lock().unwrap().clone()
    );
    app.stop().await;
}

// -- the checks -------------------------------------------------------------------------------

/// One captured operation with what the phone was told about it.
struct Captured {
    device: usize,
    user: Uuid,
    entry: OutboxEntry,
    op: Operation,
    result: OpResult,
}

impl Captured {
    fn status(&self) -> OpStatus {
        self.result.effective_status()
    }

    fn took_effect(&self) -> bool {
        matches!(self.status(), OpStatus::Applied | OpStatus::Conflict)
    }

    fn kept_server_value(&self, field: CaseField) -> bool {
        self.result
            .conflicts
            .iter()
            .any(|r| r.field == field && r.resolution == Resolution::ServerKept)
    }
}

/// Who caused a case event: (case, version, event kind, actor).
type EventKey = (Uuid, i64, String, Uuid);

fn case_field_value(case: &Value, field: CaseField) -> Value {
    case[field.as_str()].clone()
}

fn incoming(changes: &CaseChanges, field: CaseField) -> Option<Value> {
    match field {
        CaseField::CategoryCode => changes.category_code.clone().map(Value::from),
        CaseField::Description => changes.description.clone().map(Value::from),
        CaseField::Severity => changes
            .severity
            .map(|s| serde_json::to_value(s).expect("severity")),
        CaseField::AssetCode => changes
            .asset_code
            .clone()
            .map(|a| a.map_or(Value::Null, Value::from)),
    }
}

fn case_of(op: &Operation) -> Option<Uuid> {
    match op {
        Operation::CaseCreateV1(p) => Some(p.case_id),
        Operation::CaseEditV1(p) => Some(p.case_id),
        Operation::CaseCommentV1(p) => Some(p.case_id),
        Operation::CaseTransitionV1(p) => Some(p.case_id),
        _ => None,
    }
}

async fn check(app: &TestApp, devices: &[Device], seed: u64) {
    let ctx = format!("seed {seed}");
    let admin = app.login("admin").await;

    // 1. Every phone's queue is acknowledged, with a result and a verified receipt, and each
    //    result is the one the server stored for that (device, seq), under the same hash.
    let mut captured: Vec<Captured> = Vec::new();
    let mut conn = app.state.db.pool.acquire().await.expect("connection");
    for (i, d) in devices.iter().enumerate() {
        let status = d.client.status().await.expect("status");
        let identity = d
            .client
            .store()
            .identity()
            .await
            .expect("identity")
            .expect("enrolled");
        let user = identity.user_id.expect("user id");
        let entries = d.client.store().entries().await.expect("entries");
        assert_eq!(entries.len() as u64, status.last_seq, "{ctx}");
        if status.last_seq > 0 {
            let receipt = status.last_receipt.expect("a receipt");
            assert!(receipt.verified, "{ctx}: {} receipt", d.username);
            assert_eq!(receipt.receipt.acked_through, status.last_seq, "{ctx}");
        }
        let stored = gridline_server::store::sync::stored_results(
            &mut conn,
            status.device_id,
            1,
            status.last_seq as i64,
        )
        .await
        .expect("stored results");
        assert_eq!(
            stored.len() as u64,
            status.last_seq,
            "{ctx}: {} server op log",
            d.username
        );
        for entry in entries {
            let who = format!("{ctx}: {} seq {}", d.username, entry.seq);
            assert_eq!(entry.state, OutboxState::Acked, "{who}");
            let result = entry
                .result
                .clone()
                .unwrap_or_else(|| panic!("{who}: no result"));
            let (hash, server_result) = &stored[&(entry.seq as i64)];
            assert_eq!(
                hash, &entry.hash,
                "{who}: the server holds another operation"
            );
            let server_result: OpResult = serde_json::from_str(server_result).expect("result");
            assert_eq!(result.effective_status(), server_result.status, "{who}");
            assert_eq!(result.op_id, entry.op_id, "{who}");
            for (a, b) in [
                (
                    result.entity_id.map(|v| v.to_string()),
                    server_result.entity_id.map(|v| v.to_string()),
                ),
                (
                    result.version.map(|v| v.to_string()),
                    server_result.version.map(|v| v.to_string()),
                ),
                (
                    result.code.map(|c| c.to_string()),
                    server_result.code.map(|c| c.to_string()),
                ),
            ] {
                assert_eq!(a, b, "{who}");
            }
            assert_eq!(result.conflicts, server_result.conflicts, "{who}");
            assert!(
                matches!(
                    result.effective_status(),
                    OpStatus::Applied | OpStatus::Conflict | OpStatus::Rejected
                ),
                "{who}: {result:?}"
            );
            let body: OperationBody = serde_json::from_str(&entry.signed.op).expect("body");
            let op = Operation::from_body(&body).expect("operation");
            captured.push(Captured {
                device: i,
                user,
                entry,
                op,
                result,
            });
        }
    }
    drop(conn);

    // 2. The server's cases: exactly the applied captures, each once.
    let cases = app.get_pages("/v1/cases", &admin, "after").await;
    let mut server_cases: HashMap<Uuid, Value> = HashMap::new();
    for c in cases {
        let id: Uuid = serde_json::from_value(c["id"].clone()).expect("id");
        assert!(
            server_cases.insert(id, c).is_none(),
            "{ctx}: case {id} listed twice"
        );
    }
    let created: HashSet<Uuid> = captured
        .iter()
        .filter(|c| c.took_effect())
        .filter_map(|c| match &c.op {
            Operation::CaseCreateV1(p) => Some(p.case_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        server_cases.keys().copied().collect::<HashSet<_>>(),
        created,
        "{ctx}: cases on the server vs captures applied"
    );

    // 3. Every case's event log accounts for each version exactly once, and every event was
    //    caused by exactly one captured operation.
    let mut definite: HashMap<EventKey, usize> = HashMap::new();
    let mut optional: HashSet<EventKey> = HashSet::new();
    for (n, c) in captured.iter().enumerate() {
        if !c.took_effect() {
            continue;
        }
        let Some(case_id) = case_of(&c.op) else {
            continue;
        };
        let version = c.result.version.expect("version");
        let key = |kind: &str| (case_id, version, kind.to_owned(), c.user);
        match &c.op {
            Operation::CaseCreateV1(_) => {
                assert_eq!(version, 1, "{ctx}");
                assert!(definite.insert(key("created"), n).is_none(), "{ctx}");
            }
            Operation::CaseCommentV1(_) => {
                assert!(
                    definite.insert(key("comment"), n).is_none(),
                    "{ctx}: two operations claim one version"
                );
            }
            Operation::CaseTransitionV1(_) => {
                assert!(
                    definite.insert(key("transition"), n).is_none(),
                    "{ctx}: two operations claim one version"
                );
            }
            Operation::CaseEditV1(_) => {
                // The description is new in every edit, so an edit that did not keep the
                // server's description wrote it; one that did may still have written another
                // field (or found it equal already).
                if c.kept_server_value(CaseField::Description) {
                    optional.insert(key("edited"));
                } else {
                    assert!(
                        definite.insert(key("edited"), n).is_none(),
                        "{ctx}: two operations claim one version"
                    );
                }
            }
            _ => {}
        }
    }
    let mut comments_on_server: HashMap<Uuid, (Uuid, String)> = HashMap::new();
    for (id, case) in &server_cases {
        let version = case["version"].as_i64().expect("version");
        let events = case["events"].as_array().expect("events");
        let mut versions: Vec<i64> = events
            .iter()
            .map(|e| e["version"].as_i64().expect("v"))
            .collect();
        versions.sort();
        assert_eq!(
            versions,
            (1..=version).collect::<Vec<_>>(),
            "{ctx}: case {id} at version {version} has events {events:#?}"
        );
        for e in events {
            let actor: Uuid = serde_json::from_value(e["actor_id"].clone()).expect("actor");
            let kind = e["kind"].as_str().expect("kind").to_owned();
            let key = (*id, e["version"].as_i64().expect("v"), kind.clone(), actor);
            assert!(
                definite.remove(&key).is_some() || optional.contains(&key),
                "{ctx}: event {e} of case {id} was caused by no captured operation"
            );
            if kind == "comment" {
                let event_id: Uuid = serde_json::from_value(e["id"].clone()).expect("id");
                comments_on_server.insert(
                    event_id,
                    (*id, e["comment"].as_str().unwrap_or("").to_owned()),
                );
            }
        }
    }
    assert!(
        definite.is_empty(),
        "{ctx}: operations acknowledged as applied left no event: {:?}",
        definite
            .values()
            .map(|n| (&captured[*n].op, &captured[*n].result))
            .collect::<Vec<_>>()
    );

    // 4. Comments: each applied one exists once, with its text, on its case.
    let comments_captured: HashMap<Uuid, (Uuid, String)> = captured
        .iter()
        .filter(|c| c.took_effect())
        .filter_map(|c| match &c.op {
            Operation::CaseCommentV1(p) => Some((p.comment_id, (p.case_id, p.text.clone()))),
            _ => None,
        })
        .collect();
    assert_eq!(comments_on_server, comments_captured, "{ctx}: comments");

    // 5. Every field holds the value of the last operation that wrote it; withdrawals stand.
    for (id, case) in &server_cases {
        let ops: Vec<&Captured> = captured
            .iter()
            .filter(|c| c.took_effect() && case_of(&c.op) == Some(*id))
            .collect();
        for field in [
            CaseField::CategoryCode,
            CaseField::Description,
            CaseField::Severity,
        ] {
            let mut writes: Vec<(i64, Value)> = Vec::new();
            for c in &ops {
                match &c.op {
                    Operation::CaseCreateV1(p) => {
                        let value = match field {
                            CaseField::CategoryCode => Value::from(p.category_code.clone()),
                            CaseField::Description => Value::from(p.description.clone()),
                            _ => serde_json::to_value(p.severity).expect("severity"),
                        };
                        writes.push((1, value));
                    }
                    Operation::CaseEditV1(p) if !c.kept_server_value(field) => {
                        if let Some(value) = incoming(&p.changes, field) {
                            writes.push((c.result.version.expect("version"), value));
                        }
                    }
                    _ => {}
                }
            }
            let last = writes
                .iter()
                .map(|(v, _)| *v)
                .max()
                .expect("the create wrote it");
            let finals: HashSet<String> = writes
                .iter()
                .filter(|(v, _)| *v == last)
                .map(|(_, value)| value.to_string())
                .collect();
            assert_eq!(
                finals,
                HashSet::from([case_field_value(case, field).to_string()]),
                "{ctx}: case {id} field {} (writes {writes:?})",
                field.as_str()
            );
        }
        let withdrawn = ops
            .iter()
            .any(|c| matches!(c.op, Operation::CaseTransitionV1(_)));
        assert_eq!(
            case["state"] == "withdrawn",
            withdrawn,
            "{ctx}: case {id} state"
        );
    }

    // 6. Conflicts: each recorded once on the server, with both values, as the phone was told.
    let conflicts = app.get_pages("/v1/conflicts", &admin, "before").await;
    let mut on_server: HashMap<(Uuid, String), Value> = HashMap::new();
    for c in &conflicts {
        let op_id: Uuid = serde_json::from_value(c["op_id"].clone()).expect("op id");
        let field = c["field"].as_str().expect("field").to_owned();
        assert!(
            on_server.insert((op_id, field), c.clone()).is_none(),
            "{ctx}: conflict recorded twice: {c}"
        );
    }
    let mut told = 0;
    for c in &captured {
        for r in &c.result.conflicts {
            told += 1;
            let key = (c.entry.op_id, r.field.as_str().to_owned());
            let server = on_server
                .get(&key)
                .unwrap_or_else(|| panic!("{ctx}: conflict {r:?} not recorded on the server"));
            assert_eq!(server["incoming_value"], r.incoming_value, "{ctx}");
            assert_eq!(server["server_value"], r.server_value, "{ctx}");
            assert_eq!(
                server["resolution"],
                serde_json::to_value(r.resolution).expect("resolution"),
                "{ctx}"
            );
            assert_eq!(
                server["case_id"],
                serde_json::to_value(case_of(&c.op)).expect("case"),
                "{ctx}"
            );
        }
    }
    assert_eq!(
        told,
        on_server.len(),
        "{ctx}: conflicts no phone was told of"
    );

    // 7. Rejections: every rejected operation is kept for supervisors, once, acknowledged.
    let rejections = app.get_pages("/v1/sync/rejections", &admin, "before").await;
    let mut kept: HashMap<Uuid, Value> = HashMap::new();
    for r in rejections {
        assert_eq!(r["acknowledged"], true, "{ctx}: an integrity failure: {r}");
        let op_id: Uuid = serde_json::from_value(r["op_id"].clone()).expect("op id");
        assert!(
            kept.insert(op_id, r).is_none(),
            "{ctx}: rejection kept twice"
        );
    }
    let rejected: Vec<&Captured> = captured
        .iter()
        .filter(|c| c.status() == OpStatus::Rejected)
        .collect();
    assert_eq!(kept.len(), rejected.len(), "{ctx}: rejections kept vs told");
    for c in rejected {
        let r = kept
            .get(&c.entry.op_id)
            .unwrap_or_else(|| panic!("{ctx}: rejection of {:?} not kept", c.op));
        assert_eq!(
            r["code"],
            serde_json::to_value(c.result.code).expect("code"),
            "{ctx}"
        );
        assert_eq!(r["op"], c.entry.signed.op, "{ctx}: kept whole");
        assert_eq!(r["seq"], c.entry.seq, "{ctx}");
        assert_eq!(
            r["device_id"],
            serde_json::to_value(
                devices[c.device]
                    .client
                    .status()
                    .await
                    .expect("status")
                    .device_id
            )
            .expect("id"),
            "{ctx}"
        );
    }

    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &captured {
        *outcomes.entry(c.status().as_str()).or_default() += 1;
    }
    eprintln!(
        "seed {seed}: {} operations {outcomes:?}, {} cases, {} conflicts, {} rejections",
        captured.len(),
        server_cases.len(),
        on_server.len(),
        kept.len()
    );

    // 8. Each phone's mirror is the server's view of its scope.
    for d in devices {
        let token = app.login(&d.username).await;
        let theirs: BTreeMap<String, Value> = app
            .get_pages("/v1/cases", &token, "after")
            .await
            .into_iter()
            .map(|c| {
                (
                    c["id"].as_str().expect("id").to_owned(),
                    gridline_tests::without_evidence(c),
                )
            })
            .collect();
        let mirror: BTreeMap<String, Value> = d
            .client
            .mirror(EntityKind::Case)
            .await
            .expect("mirror")
            .into_iter()
            .map(|m| {
                assert_eq!(Some(m.version), m.data["version"].as_i64(), "{ctx}");
                (m.id, m.data)
            })
            .collect();
        assert_eq!(
            mirror.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{ctx}: {}'s cases",
            d.username
        );
        for (id, case) in &theirs {
            assert_eq!(
                &mirror[id], case,
                "{ctx}: {}'s copy of case {id}",
                d.username
            );
        }
        if let Some((_, zone)) = d.zone {
            assert!(
                theirs
                    .values()
                    .all(|c| c["zone_id"] == serde_json::to_value(zone).expect("zone")),
                "{ctx}: {} sees only its zone",
                d.username
            );
        }
        let theirs: BTreeMap<String, Value> = app
            .get_pages("/v1/conflicts", &token, "before")
            .await
            .iter()
            .map(|c| (c["id"].as_str().expect("id").to_owned(), c.clone()))
            .collect();
        let mirror: BTreeMap<String, Value> = d
            .client
            .mirror(EntityKind::Conflict)
            .await
            .expect("mirror")
            .into_iter()
            .map(|m| (m.id, m.data))
            .collect();
        assert_eq!(mirror, theirs, "{ctx}: {}'s conflicts", d.username);
    }
}
