//! Simulated phones: enrolled over HTTP like real ones, with queues of signed operations made
//! before the clock starts and pushed in batches exactly as the reference client cuts them
//! (at most `MAX_BATCH_OPS` operations and `MAX_BATCH_BYTES - 1024` bytes of operations).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use gridline_sync::{
    OpStatus, OperationBody, PushRequest, PushResponse, SignedOperation, MAX_BATCH_BYTES,
    MAX_BATCH_OPS,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::server::Server;

/// The demo inspectors: `inspector{n}` works zone `(n - 1) / 2` (16 inspectors, 8 zones).
pub const INSPECTORS: usize = 16;

pub fn inspector(n: usize) -> (String, usize) {
    (format!("inspector{n}"), (n - 1) / 2)
}

/// A case the phone created, and the version it last saw.
#[derive(Debug, Clone)]
pub struct OwnCase {
    pub id: Uuid,
    pub version: i64,
    pub severity: &'static str,
}

pub struct SimPhone {
    pub username: String,
    pub zone_id: Uuid,
    pub zone_index: usize,
    pub device_id: Uuid,
    pub token: String,
    key: ed25519_dalek::SigningKey,
    seq: u64,
    prev: String,
    pub cases: Vec<OwnCase>,
    /// Signed operations not pushed yet.
    pub queue: Vec<SignedOperation>,
    /// The case payloads queued, in order, for building the peer's equivalent documents.
    pub payloads: Vec<(Uuid, String, Value)>,
    rng: StdRng,
}

/// Logs each user in once and enrols `per_user[i]` devices for user `users[i]`.
pub async fn enrol(
    http: &reqwest::Client,
    server: &Server,
    users: &[(String, usize)],
    count: usize,
) -> anyhow::Result<Vec<SimPhone>> {
    let zones = zone_ids(&server.state.db.pool).await?;
    enrol_at(http, &server.base, &zones, users, count).await
}

/// Zone ids by code.
pub async fn zone_ids(pool: &sqlx::AnyPool) -> anyhow::Result<HashMap<String, Uuid>> {
    Ok(gridline_server::store::reference::zones(pool, None)
        .await?
        .into_iter()
        .map(|z| (z.code, z.id))
        .collect())
}

/// [`enrol`] against the server at `base` (e.g. one running as a process of its own).
pub async fn enrol_at(
    http: &reqwest::Client,
    base: &str,
    zones: &HashMap<String, Uuid>,
    users: &[(String, usize)],
    count: usize,
) -> anyhow::Result<Vec<SimPhone>> {
    let url = |path: &str| format!("{base}{path}");
    let mut tokens = HashMap::new();
    let mut phones = Vec::with_capacity(count);
    for i in 0..count {
        let (username, zone_index) = &users[i % users.len()];
        if !tokens.contains_key(username) {
            let body: Value = http
                .post(url("/v1/auth/login"))
                .json(&json!({"username": username, "password": gridline_server::demo::DEMO_PASSWORD}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let token = body["access_token"].as_str().context("access_token")?;
            tokens.insert(username.clone(), token.to_owned());
        }
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let device_id = Uuid::now_v7();
        let resp: Value = http
            .post(url("/v1/devices"))
            .bearer_auth(&tokens[username])
            .json(&json!({
                "device_id": device_id,
                "public_key": base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
                "name": format!("bench phone {i}"),
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let zone_id = zones[&format!("Z0{}", zone_index + 1)];
        phones.push(SimPhone {
            username: username.clone(),
            zone_id,
            zone_index: *zone_index,
            device_id,
            token: resp["tokens"]["access_token"]
                .as_str()
                .context("device token")?
                .to_owned(),
            key,
            seq: 0,
            prev: gridline_sync::signing::GENESIS_HASH.to_owned(),
            cases: Vec::new(),
            queue: Vec::new(),
            payloads: Vec::new(),
            rng: StdRng::seed_from_u64(i as u64),
        });
    }
    Ok(phones)
}

impl SimPhone {
    fn sign(&mut self, op_type: &str, payload: Value) {
        self.seq += 1;
        let body = OperationBody {
            op_id: Uuid::now_v7(),
            device_id: self.device_id,
            seq: self.seq,
            prev: self.prev.clone(),
            op_type: op_type.to_owned(),
            queued_at: OffsetDateTime::now_utc(),
            payload: payload.clone(),
        };
        let signed = gridline_sync::signing::sign_operation(&self.key, &body);
        self.prev = gridline_sync::signing::op_hash(&signed.op);
        self.payloads
            .push((body.op_id, op_type.to_owned(), payload));
        self.queue.push(signed);
    }

    /// Queues a `case.create@1` with 1–3 photo manifests, inside the phone's zone.
    pub fn queue_create(&mut self) {
        let photos: Vec<(String, u64)> = (0..self.rng.gen_range(1..=3))
            .map(|_| {
                let sha: [u8; 32] = self.rng.gen();
                (hex::encode(sha), self.rng.gen_range(2_000_000..4_200_000))
            })
            .collect();
        self.queue_create_with(&photos);
    }

    /// Queues a `case.create@1` declaring these photos (`(sha256, size)`), inside the zone.
    pub fn queue_create_with(&mut self, photos: &[(String, u64)]) {
        let (a, b, c, d) = gridline_server::demo::zone_rect(self.zone_index);
        let case_id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let photos: Vec<Value> = photos
            .iter()
            .map(|(sha, size)| {
                json!({"sha256": sha, "size": size,
                       "captured_at": now, "gps": {"lat": (b + d) / 2.0, "lon": (a + c) / 2.0},
                       "role": "before"})
            })
            .collect();
        let lat = b + (d - b) * self.rng.gen_range(0.05..0.95);
        let lon = a + (c - a) * self.rng.gen_range(0.05..0.95);
        let category = ["event:0102", "event:0501", "component:0101"][self.rng.gen_range(0..3)];
        let payload = json!({
            "case_id": case_id,
            "zone_id": self.zone_id,
            "category_code": category,
            "location": {"lat": lat, "lon": lon, "accuracy_m": 6.5},
            "asset_code": null,
            "description": "Overflowing bin at the market gate, bags on the pavement",
            "severity": "medium",
            "captured_at": now,
            "photos": photos,
            "round_id": null,
        });
        self.sign(gridline_sync::ops::op_types::CASE_CREATE_V1, payload);
        self.cases.push(OwnCase {
            id: case_id,
            version: 1,
            severity: "medium",
        });
    }

    /// Queues a `case.edit@1` of one of the phone's own cases, based on the version it holds.
    pub fn queue_edit(&mut self) {
        if self.cases.is_empty() {
            return self.queue_create();
        }
        let i = self.rng.gen_range(0..self.cases.len());
        let case = self.cases[i].clone();
        let changes = if self.rng.gen_bool(0.5) {
            json!({"description": format!("Still there at visit {}", self.seq + 1)})
        } else {
            // Always a different value: an edit to the current value is a no-op (no new version).
            let severity = match case.severity {
                "low" => "medium",
                "medium" => "high",
                _ => "low",
            };
            self.cases[i].severity = severity;
            json!({ "severity": severity })
        };
        self.sign(
            gridline_sync::ops::op_types::CASE_EDIT_V1,
            json!({"case_id": case.id, "base_version": case.version, "changes": changes}),
        );
        // Applied without conflict (nobody else edits this case), so the version moves on.
        self.cases[i].version += 1;
    }

    /// Queues a `case.edit@1` of the phone's case number `i` (modulo how many it has).
    pub fn queue_edit_of(&mut self, i: usize) {
        if self.cases.is_empty() {
            return self.queue_create();
        }
        let i = i % self.cases.len();
        let case = self.cases[i].clone();
        self.sign(
            gridline_sync::ops::op_types::CASE_EDIT_V1,
            json!({"case_id": case.id, "base_version": case.version,
                   "changes": {"description": format!("Still there at visit {}", self.seq + 1)}}),
        );
        self.cases[i].version += 1;
    }

    /// Queues `n` operations: 60 % case creations, 40 % edits of the phone's own cases.
    pub fn queue_mixed(&mut self, n: usize) {
        for _ in 0..n {
            if self.cases.is_empty() || self.rng.gen_bool(0.6) {
                self.queue_create();
            } else {
                self.queue_edit();
            }
        }
    }

    /// The queue cut into request bodies as the reference client does.
    pub fn take_batches(&mut self) -> Vec<Batch> {
        let budget = MAX_BATCH_BYTES - 1024;
        let mut out = Vec::new();
        let mut current: Vec<SignedOperation> = Vec::new();
        let mut bytes = 0;
        for op in std::mem::take(&mut self.queue) {
            let size = op.push_bytes_bound();
            if !current.is_empty() && (current.len() == MAX_BATCH_OPS || bytes + size > budget) {
                out.push(self.batch(std::mem::take(&mut current)));
                bytes = 0;
            }
            bytes += size;
            current.push(op);
        }
        if !current.is_empty() {
            out.push(self.batch(current));
        }
        out
    }

    fn batch(&self, operations: Vec<SignedOperation>) -> Batch {
        let req = PushRequest {
            protocol: gridline_sync::PROTOCOL_VERSION,
            device_id: self.device_id,
            device_time: OffsetDateTime::now_utc(),
            operations,
            acked_through: None,
        };
        Batch {
            ops: req.operations.len(),
            body: serde_json::to_vec(&req).unwrap_or_default(),
        }
    }
}

/// Queues operations on every phone with `fill` and cuts them into request bodies, on all
/// cores (signing is the slow part); returns each phone's token and batches.
pub fn prepare(
    fleet: &mut [SimPhone],
    fill: impl Fn(&mut SimPhone) + Sync,
) -> Vec<(String, Vec<Batch>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = fleet.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let fill = &fill;
        let handles: Vec<_> = fleet
            .chunks_mut(per_thread)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter_mut()
                        .map(|p| {
                            fill(p);
                            (p.token.clone(), p.take_batches())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Attempts per batch. The reference client gives up after 5 per sync and tries again at the
/// next sync; a bench phone keeps going (its later syncs) within the scenario's deadline, and
/// every retry is counted in the report.
const MAX_ATTEMPTS: usize = 100;

/// One push request, serialised before the clock starts.
pub struct Batch {
    pub ops: usize,
    pub body: Vec<u8>,
}

/// What a fleet push measured.
#[derive(Debug, Default)]
pub struct FleetRun {
    pub elapsed: Duration,
    pub ops: usize,
    pub latencies: Vec<Duration>,
    /// Requests answered 429/503 and sent again after `Retry-After`.
    pub retries: usize,
    pub request_bytes: usize,
}

/// Every phone pushes its batches in turn (the next after the previous answer), all phones at
/// once. Fails if any operation is not acknowledged as applied or conflict, or past `deadline`.
pub async fn push_fleet(
    http: &reqwest::Client,
    server: &Server,
    fleet: Vec<(String, Vec<Batch>)>,
    deadline: Duration,
) -> anyhow::Result<FleetRun> {
    push_fleet_at(http, &server.base, fleet, deadline).await
}

/// [`push_fleet`] to the server at `base`.
pub async fn push_fleet_at(
    http: &reqwest::Client,
    base: &str,
    fleet: Vec<(String, Vec<Batch>)>,
    deadline: Duration,
) -> anyhow::Result<FleetRun> {
    let url = format!("{base}/v1/sync/push");
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (token, batches) in fleet {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            let mut run = FleetRun::default();
            for batch in batches {
                let sent = Instant::now();
                let mut attempt = 0;
                let resp = loop {
                    attempt += 1;
                    let resp = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(batch.body.clone())
                        .send()
                        .await?;
                    let status = resp.status().as_u16();
                    if (status == 429 || status == 503) && attempt < MAX_ATTEMPTS {
                        run.retries += 1;
                        let wait = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                            .unwrap_or(1);
                        tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
                        continue;
                    }
                    break resp;
                };
                let status = resp.status();
                let bytes = resp.bytes().await?;
                if !status.is_success() {
                    bail!(
                        "push answered {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                run.latencies.push(sent.elapsed());
                let body: PushResponse = serde_json::from_slice(&bytes)?;
                let ok = body
                    .results
                    .iter()
                    .filter(|r| matches!(r.status, OpStatus::Applied | OpStatus::Conflict))
                    .count();
                if ok != batch.ops {
                    let bad = body
                        .results
                        .iter()
                        .find(|r| !matches!(r.status, OpStatus::Applied | OpStatus::Conflict));
                    bail!(
                        "{ok} of {} operations applied; first other: {bad:?}",
                        batch.ops
                    );
                }
                run.ops += ok;
                run.request_bytes += batch.body.len();
            }
            anyhow::Ok(run)
        });
    }
    let mut total = FleetRun::default();
    let collect = async {
        while let Some(done) = tasks.join_next().await {
            let run = done??;
            total.ops += run.ops;
            total.retries += run.retries;
            total.request_bytes += run.request_bytes;
            total.latencies.extend(run.latencies);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(deadline, collect)
        .await
        .context("the push did not finish before the deadline")??;
    total.elapsed = start.elapsed();
    Ok(total)
}
