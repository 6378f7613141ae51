//! The exactly-once checker: every operation a device made is stored once, with its effect
//! applied once, compared straight from the database.

use std::collections::{HashMap, HashSet};

use gridline_sync::{OperationBody, SignedOperation};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use super::fail_on;

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
