//! What the server and every phone must agree on once the network heals.

use std::collections::{BTreeMap, HashMap, HashSet};

use gridline_sync::case::{CaseField, Resolution};
use gridline_sync::client::{OutboxEntry, OutboxState};
use gridline_sync::ops::CaseChanges;
use gridline_sync::{EntityKind, OpResult, OpStatus, Operation, OperationBody};
use gridline_testkit::TestApp;
use serde_json::Value;
use uuid::Uuid;

use super::device::Device;

/// One captured operation with what the phone was told about it.
pub(super) struct Captured {
    pub(super) device: usize,
    pub(super) user: Uuid,
    pub(super) entry: OutboxEntry,
    pub(super) op: Operation,
    pub(super) result: OpResult,
}

impl Captured {
    pub(super) fn status(&self) -> OpStatus {
        self.result.effective_status()
    }

    pub(super) fn took_effect(&self) -> bool {
        matches!(self.status(), OpStatus::Applied | OpStatus::Conflict)
    }

    pub(super) fn kept_server_value(&self, field: CaseField) -> bool {
        self.result
            .conflicts
            .iter()
            .any(|r| r.field == field && r.resolution == Resolution::ServerKept)
    }
}

/// Who caused a case event: (case, version, event kind, actor).
pub(super) type EventKey = (Uuid, i64, String, Uuid);

pub(super) fn case_field_value(case: &Value, field: CaseField) -> Value {
    case[field.as_str()].clone()
}

pub(super) fn incoming(changes: &CaseChanges, field: CaseField) -> Option<Value> {
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

pub(super) fn case_of(op: &Operation) -> Option<Uuid> {
    match op {
        Operation::CaseCreateV1(p) => Some(p.case_id),
        Operation::CaseEditV1(p) => Some(p.case_id),
        Operation::CaseCommentV1(p) => Some(p.case_id),
        Operation::CaseTransitionV1(p) => Some(p.case_id),
        _ => None,
    }
}

pub(super) async fn check(app: &TestApp, devices: &[Device], seed: u64) {
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
                    gridline_testkit::without_evidence(c),
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
