//! Client behaviour against an in-memory fake server that follows `PROTOCOL.md`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::error::ErrorBody;
use crate::ops::{CaseChanges, CaseCreateV1, CaseEditV1, Location, Severity};
use crate::signing::{check_chain, decode_public_key, key_id, op_hash, verify_operation};
use crate::wire::{
    is_supported_protocol, Change, DeviceInfo, EnrolDeviceResponse, OpResult, PullResponse,
    Receipt, ServerKey, TokenResponse, TokenType, UserInfo,
};

// ---------------------------------------------------------------------------------------------
// Fake server
// ---------------------------------------------------------------------------------------------

enum Script {
    Fail(TransportError),
    /// Process the push, then lose the response.
    DropResponse,
}

#[derive(Default)]
struct FakeState {
    device: Option<(Uuid, VerifyingKey)>,
    /// Stored (hash, result) per seq, index seq - 1.
    ops: Vec<(String, OpResult)>,
    /// How many operations took effect (a replay must not add to this).
    effects: u32,
    push_calls: u32,
    refresh_calls: u32,
    push_script: VecDeque<Script>,
    /// The change log; a cursor is an index into it.
    changes: Vec<Change>,
    reset_next_pull: bool,
    access_token: String,
    /// tus uploads by location.
    uploads: std::collections::HashMap<String, FakeUpload>,
    /// Photos verified (by SHA-256 hex), with their bytes.
    photos: std::collections::HashMap<String, Vec<u8>>,
    /// What the next PATCH requests do (then they behave).
    patch_script: VecDeque<Script>,
    create_calls: u32,
    head_calls: u32,
    patch_calls: u32,
}

struct FakeUpload {
    sha256: String,
    length: u64,
    bytes: Vec<u8>,
    complete: bool,
}

fn http_error(status: u16, code: ErrorCode, details: serde_json::Value) -> TransportError {
    TransportError::Http {
        status,
        body: Some(ErrorBody {
            code,
            message: code.as_str().into(),
            details,
        }),
    }
}

struct FakeServer {
    key: SigningKey,
    page_size: usize,
    state: Mutex<FakeState>,
}

fn user() -> UserInfo {
    UserInfo {
        id: Uuid::from_u128(1),
        username: "li".into(),
        display_name: "Li Wei".into(),
        roles: vec![crate::wire::Role::Inspector],
    }
}

impl FakeServer {
    fn new() -> Arc<Self> {
        Arc::new(FakeServer {
            key: SigningKey::from_bytes(&[42; 32]),
            page_size: 2,
            state: Mutex::new(FakeState {
                access_token: "t1".into(),
                ..Default::default()
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state lock")
    }

    fn tokens(&self) -> TokenResponse {
        TokenResponse {
            access_token: self.state().access_token.clone(),
            refresh_token: "r1".into(),
            token_type: TokenType::Bearer,
            expires_in: 900,
            user: user(),
        }
    }

    fn process_push(&self, token: &str, req: &PushRequest) -> Result<PushResponse, TransportError> {
        let mut st = self.state();
        st.push_calls += 1;
        if !is_supported_protocol(req.protocol) {
            return Err(TransportError::UpgradeRequired(None));
        }
        if token != st.access_token {
            return Err(TransportError::from_status(401, None, None));
        }
        let (device_id, vk) = st.device.expect("device enrolled");
        assert_eq!(req.device_id, device_id);
        let mut results = Vec::new();
        for (i, signed) in req.operations.iter().enumerate() {
            let body = verify_operation(&vk, signed).expect("signature verifies");
            let next = st.ops.len() as u64 + 1;
            if i == 0 && body.seq > next {
                let code = if req.acked_through.is_some_and(|a| a >= next) {
                    ErrorCode::SequenceBehind
                } else {
                    ErrorCode::SequenceGap
                };
                return Err(TransportError::Resend {
                    code,
                    resend_from: next,
                });
            }
            let hash = op_hash(&signed.op);
            if body.seq < next {
                let (stored_hash, stored) = &st.ops[body.seq as usize - 1];
                assert_eq!(stored_hash, &hash, "replay with different text");
                results.push(OpResult {
                    status: OpStatus::Duplicate,
                    first_status: Some(stored.status),
                    ..stored.clone()
                });
                continue;
            }
            let prev = st
                .ops
                .last()
                .map_or(GENESIS_HASH.to_owned(), |o| o.0.clone());
            check_chain(&prev, &body).expect("chain continues");
            let mut result = OpResult {
                seq: body.seq,
                op_id: body.op_id,
                status: OpStatus::Applied,
                first_status: None,
                code: None,
                message: None,
                entity_id: None,
                version: Some(1),
                conflicts: vec![],
            };
            match Operation::from_body(&body) {
                Ok(Operation::CaseCreateV1(c)) if c.category_code.starts_with("event:99") => {
                    result.status = OpStatus::Rejected;
                    result.code = Some(ErrorCode::InvalidRequest);
                    result.message = Some("unknown category".into());
                }
                Ok(Operation::CaseEditV1(e)) => {
                    result.entity_id = Some(e.case_id);
                    result.status = OpStatus::Conflict;
                    result.conflicts = vec![ConflictRecord {
                        field: crate::case::CaseField::Severity,
                        base_value: json!("medium"),
                        server_value: json!("low"),
                        incoming_value: json!("high"),
                        resolution: crate::case::Resolution::ServerKept,
                        rule_id: "supervisor_beats_inspector".into(),
                    }];
                }
                Ok(op) => {
                    result.entity_id = Some(op.entity_id());
                    st.effects += 1;
                }
                Err(e) => {
                    result.status = OpStatus::Rejected;
                    result.code = Some(e.code());
                }
            }
            st.ops.push((hash, result.clone()));
            results.push(result);
        }
        let acked_through = st.ops.len() as u64;
        let last_hash = st
            .ops
            .last()
            .map_or(GENESIS_HASH.to_owned(), |o| o.0.clone());
        let now = OffsetDateTime::now_utc();
        Ok(PushResponse {
            protocol: PROTOCOL_VERSION,
            server_time: now,
            results,
            acked_through,
            clock_skew_ms: 0,
            receipt: Receipt::sign(&self.key, device_id, acked_through, last_hash, now),
        })
    }
}

impl Transport for Arc<FakeServer> {
    async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, TransportError> {
        if req.password != "secret" {
            return Err(TransportError::from_status(401, None, None));
        }
        Ok(self.tokens())
    }

    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, TransportError> {
        assert_eq!(req.refresh_token, "r1");
        self.state().refresh_calls += 1;
        Ok(self.tokens())
    }

    async fn enrol(
        &self,
        access_token: String,
        req: &EnrolDeviceRequest,
    ) -> Result<EnrolDeviceResponse, TransportError> {
        assert_eq!(access_token, self.state().access_token);
        let vk = decode_public_key(&req.public_key).expect("valid key");
        self.state().device = Some((req.device_id, vk));
        Ok(EnrolDeviceResponse {
            device: DeviceInfo {
                device_id: req.device_id,
                user_id: user().id,
                name: req.name.clone(),
                enrolled_at: OffsetDateTime::now_utc(),
                revoked_at: None,
            },
            tokens: self.tokens(),
            receipt_key: ServerKey {
                key_id: key_id(&self.key.verifying_key()),
                public_key: encode_public_key(&self.key.verifying_key()),
            },
        })
    }

    async fn push(
        &self,
        access_token: String,
        req: &PushRequest,
    ) -> Result<PushResponse, TransportError> {
        let script = self.state().push_script.pop_front();
        match script {
            Some(Script::Fail(e)) => {
                self.state().push_calls += 1;
                Err(e)
            }
            Some(Script::DropResponse) => {
                self.process_push(&access_token, req)?;
                Err(TransportError::Network("connection reset".into()))
            }
            None => self.process_push(&access_token, req),
        }
    }

    async fn upload_create(
        &self,
        access_token: String,
        sha256: &str,
        length: u64,
    ) -> Result<UploadCreated, TransportError> {
        let mut st = self.state();
        assert_eq!(access_token, st.access_token);
        st.create_calls += 1;
        let location = format!("/v1/uploads/{}", Uuid::now_v7());
        let verified = st.photos.contains_key(sha256);
        st.uploads.insert(
            location.clone(),
            FakeUpload {
                sha256: sha256.to_owned(),
                length,
                bytes: vec![],
                complete: verified,
            },
        );
        Ok(UploadCreated {
            location,
            offset: if verified { length } else { 0 },
        })
    }

    async fn upload_offset(
        &self,
        access_token: String,
        location: &str,
    ) -> Result<u64, TransportError> {
        let mut st = self.state();
        assert_eq!(access_token, st.access_token);
        st.head_calls += 1;
        match st.uploads.get(location) {
            Some(u) if u.complete => Ok(u.length),
            Some(u) => Ok(u.bytes.len() as u64),
            None => Err(TransportError::Http {
                status: 404,
                body: None,
            }),
        }
    }

    async fn upload_patch(
        &self,
        access_token: String,
        location: &str,
        chunk: &UploadChunk,
    ) -> Result<u64, TransportError> {
        use futures_util::StreamExt;
        let body: Vec<Vec<u8>> = chunk.stream().map(|p| p.expect("read")).collect().await;
        let body = body.concat();
        let script = {
            let mut st = self.state();
            assert_eq!(access_token, st.access_token);
            st.patch_calls += 1;
            st.patch_script.pop_front()
        };
        if let Some(Script::Fail(e)) = script {
            // Cut mid-body: the checksum does not match what arrived, so nothing is kept.
            return Err(e);
        }
        let mut st = self.state();
        let st = &mut *st;
        let Some(upload) = st.uploads.get_mut(location) else {
            return Err(TransportError::Http {
                status: 404,
                body: None,
            });
        };
        let at = if upload.complete {
            upload.length
        } else {
            upload.bytes.len() as u64
        };
        if upload.complete || chunk.offset != at {
            return Err(http_error(
                409,
                ErrorCode::UploadOffsetMismatch,
                json!({ "offset": at }),
            ));
        }
        assert_eq!(body.len() as u64, chunk.len);
        if <[u8; 32]>::from(sha2::Sha256::digest(&body)) != chunk.sha256 {
            return Err(http_error(460, ErrorCode::ChecksumMismatch, json!(null)));
        }
        upload.bytes.extend_from_slice(&body);
        let at = upload.bytes.len() as u64;
        if at == upload.length {
            if crate::signing::sha256_hex(&upload.bytes) != upload.sha256 {
                st.uploads.remove(location);
                return Err(http_error(422, ErrorCode::HashMismatch, json!(null)));
            }
            upload.complete = true;
            let (sha, bytes) = (upload.sha256.clone(), upload.bytes.clone());
            st.photos.insert(sha, bytes);
        }
        if let Some(Script::DropResponse) = script {
            return Err(TransportError::Network("connection reset".into()));
        }
        Ok(at)
    }

    async fn pull(
        &self,
        access_token: String,
        query: &PullQuery,
    ) -> Result<PullResponse, TransportError> {
        let mut st = self.state();
        assert_eq!(access_token, st.access_token);
        if st.reset_next_pull && query.cursor.is_some() {
            st.reset_next_pull = false;
            return Err(TransportError::ResetRequired);
        }
        let from: usize = query
            .cursor
            .as_deref()
            .map_or(0, |c| c.parse().expect("cursor"));
        let to = (from + self.page_size).min(st.changes.len());
        Ok(PullResponse {
            protocol: PROTOCOL_VERSION,
            server_time: OffsetDateTime::now_utc(),
            changes: st.changes[from..to].to_vec(),
            cursor: to.to_string(),
            has_more: to < st.changes.len(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type TestClient = Client<Arc<FakeServer>, Arc<RecordingSleeper>>;

async fn client_at(path: &Path, server: &Arc<FakeServer>) -> (TestClient, Arc<RecordingSleeper>) {
    let store = Store::open(path).await.expect("open store");
    let sleeper = Arc::new(RecordingSleeper::default());
    (Client::new(store, server.clone(), sleeper.clone()), sleeper)
}

async fn enrolled(dir: &tempfile::TempDir) -> (TestClient, Arc<FakeServer>, Arc<RecordingSleeper>) {
    let server = FakeServer::new();
    let (client, sleeper) = client_at(&dir.path().join("field.db"), &server).await;
    client
        .enrol("http://fake", "li", "secret", "test phone")
        .await
        .expect("enrol");
    (client, server, sleeper)
}

fn case(category: &str) -> Operation {
    Operation::CaseCreateV1(CaseCreateV1 {
        case_id: Uuid::now_v7(),
        zone_id: Uuid::now_v7(),
        category_code: category.into(),
        location: Location {
            lat: 31.23,
            lon: 121.47,
            accuracy_m: 5.0,
            datum: Default::default(),
        },
        asset_code: None,
        description: "overflowing bin".into(),
        severity: Severity::Medium,
        captured_at: OffsetDateTime::now_utc(),
        photos: vec![],
        round_id: None,
    })
}

fn upsert(id: &str, version: i64) -> Change {
    Change::Upsert {
        entity: EntityKind::Case,
        id: id.into(),
        version,
        data: json!({"state": "reported"}).into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn enrolment_pins_the_receipt_key_and_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    let id = client.store().identity().await.unwrap().unwrap();
    assert!(id.enrolled);
    assert_eq!(id.device_id.get_version_num(), 7);
    assert_eq!(id.access_token.as_deref(), Some("t1"));
    assert_eq!(id.receipt_key_id, Some(key_id(&server.key.verifying_key())));
    assert!(matches!(
        client.enrol("http://fake", "li", "secret", "x").await,
        Err(ClientError::AlreadyEnrolled(d)) if d == id.device_id
    ));
}

#[tokio::test]
async fn operations_survive_reopening_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("field.db");
    let (client, server, _) = enrolled(&dir).await;
    client.capture(case("event:0102"), &[]).await.unwrap();
    client.capture(case("event:0103"), &[]).await.unwrap();
    client.store().close().await;
    drop(client);

    let (client, _) = client_at(&path, &server).await;
    let third = client.capture(case("event:0104"), &[]).await.unwrap();
    assert_eq!(third.seq, 3);

    let entries = client.store().entries().await.unwrap();
    assert_eq!(entries.len(), 3);
    let vk = client
        .store()
        .identity()
        .await
        .unwrap()
        .unwrap()
        .signing_key
        .verifying_key();
    let mut prev = GENESIS_HASH.to_owned();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.state, OutboxState::Pending);
        let body = verify_operation(&vk, &e.signed).unwrap();
        check_chain(&prev, &body).unwrap();
        assert_eq!(e.hash, op_hash(&e.signed.op));
        prev = e.hash.clone();
    }

    // The database itself refuses to lose or alter an unacknowledged operation.
    assert!(client
        .store()
        .execute_raw("DELETE FROM outbox WHERE seq = 2")
        .await
        .is_err());
    assert!(client
        .store()
        .execute_raw("UPDATE outbox SET op = 'x' WHERE seq = 1")
        .await
        .is_err());

    let report = client.sync().await.unwrap();
    assert_eq!(report.push.acked, 3);
    assert_eq!(server.state().effects, 3);
}

#[tokio::test]
async fn invalid_operations_are_never_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = enrolled(&dir).await;
    let err = client.capture(case("12"), &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)));
    assert!(client.store().entries().await.unwrap().is_empty());
}

fn plan() -> PlanView {
    use crate::plan::{Checklist, ChecklistItem};
    let item = |id: &str, mandatory: bool, category: Option<&str>| ChecklistItem {
        id: id.into(),
        label: id.into(),
        weight: 1,
        mandatory,
        category_code: category.map(str::to_owned),
    };
    PlanView {
        id: Uuid::now_v7(),
        name: "covers".into(),
        kind: crate::ops::RoundKind::Periodic,
        rrule: "FREQ=DAILY".into(),
        dtstart: "2025-01-01T09:00".into(),
        time_zone: "Asia/Shanghai".into(),
        window_minutes: 120,
        zones: vec![Uuid::now_v7()],
        categories: vec![],
        assignees: vec![],
        checklist: Checklist {
            items: vec![
                item("covers", true, Some("component:0101")),
                item("litter", false, None),
            ],
        },
        created_by: Uuid::now_v7(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        cancelled_at: None,
        revealed_at: None,
        commitment: None,
        version: 1,
        upcoming: vec![],
    }
}

#[tokio::test]
async fn a_plan_s_round_is_queued_with_its_checklist_photos_and_track() {
    use crate::plan::ItemResult;
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = enrolled(&dir).await;
    let plan = plan();
    let at = time::macros::datetime!(2026-12-07 01:00 UTC);
    let (round, start) = client
        .start_plan_round(&plan, plan.zones[0], at)
        .await
        .unwrap();
    let answer = |id: &str, result: ItemResult| ChecklistResponse {
        item_id: id.into(),
        result,
        note: None,
        location: None,
        photos: vec![],
    };

    // Checked against the template before anything is queued: the mandatory item is not
    // answered, and a failure that raises a case has no photo or location.
    let err = client
        .submit_checklist(
            &plan,
            round,
            vec![(answer("litter", ItemResult::Pass), vec![])],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err}");
    let err = client
        .submit_checklist(
            &plan,
            round,
            vec![(answer("covers", ItemResult::Fail), vec![])],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("responses[0].photos"), "{err}");
    assert_eq!(client.store().entries().await.unwrap().len(), 1);

    let (_, photo) = photo_file(&dir, "cover.jpg", 2048, 3);
    let mut failed = answer("covers", ItemResult::Fail);
    failed.location = Some(Location {
        lat: 25.0389,
        lon: 102.7183,
        accuracy_m: 5.0,
        datum: Default::default(),
    });
    let checklist = client
        .submit_checklist(&plan, round, vec![(failed, vec![photo.clone()])])
        .await
        .unwrap();
    let track = client
        .record_track(round, &[(25.0389, 102.7183), (25.04, 102.72)])
        .await
        .unwrap();

    let entries = client.store().entries().await.unwrap();
    let types: Vec<&str> = entries.iter().map(|e| e.op_type.as_str()).collect();
    assert_eq!(
        types,
        ["round.start@2", "round.checklist@1", "round.track@1"]
    );
    let body = |e: &OutboxEntry| -> crate::wire::OperationBody {
        serde_json::from_str(&e.signed.op).unwrap()
    };
    assert_eq!(body(&start).payload["plan_id"], json!(plan.id));
    assert_eq!(body(&start).payload["kind"], "periodic");
    assert_eq!(
        body(&checklist).payload["responses"][0]["photos"][0]["sha256"],
        photo.manifest.sha256
    );
    assert_eq!(body(&track).payload["points"], 2);
    // The checklist's photo waits in the upload queue like a case's.
    let pending = client.store().pending_photos().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, photo.manifest.sha256);
}

#[tokio::test]
async fn sync_acks_everything_and_keeps_a_verified_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    for _ in 0..3 {
        client.capture(case("event:0102"), &[]).await.unwrap();
    }
    let report = client.sync().await.unwrap();
    assert_eq!(report.push.acked, 3);
    assert!(!report.push.unverified_receipt);
    let status = client.status().await.unwrap();
    assert_eq!((status.pending, status.acked, status.last_seq), (0, 3, 3));
    let receipt = status.last_receipt.unwrap();
    assert!(receipt.verified);
    assert_eq!(receipt.receipt.acked_through, 3);
    assert_eq!(receipt.receipt.last_hash, status.last_hash);
    receipt.receipt.verify(&server.key.verifying_key()).unwrap();
    // Nothing left: a second sync sends nothing.
    let again = client.sync().await.unwrap();
    assert_eq!(again.push.requests, 0);
}

#[tokio::test]
async fn a_dropped_response_leads_to_a_replay_not_a_second_effect() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, sleeper) = enrolled(&dir).await;
    client.capture(case("event:0102"), &[]).await.unwrap();
    client.capture(case("event:0103"), &[]).await.unwrap();
    server.state().push_script.push_back(Script::DropResponse);

    let report = client.sync().await.unwrap();
    assert_eq!(report.push.acked, 2);
    assert_eq!(server.state().push_calls, 2);
    assert_eq!(
        server.state().effects,
        2,
        "the resend was treated as a replay"
    );
    assert_eq!(sleeper.waits().len(), 1);
    for e in client.store().entries().await.unwrap() {
        let result = e.result.unwrap();
        assert_eq!(result.status, OpStatus::Duplicate);
        assert_eq!(result.effective_status(), OpStatus::Applied);
        assert_eq!(e.state, OutboxState::Acked);
    }
}

#[tokio::test]
async fn a_busy_server_gets_backoff_and_the_queue_survives_giving_up() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, sleeper) = enrolled(&dir).await;
    client.capture(case("event:0102"), &[]).await.unwrap();
    for _ in 0..5 {
        server
            .state()
            .push_script
            .push_back(Script::Fail(TransportError::Busy {
                status: 503,
                retry_after: Some(Duration::from_secs(7)),
            }));
    }
    let err = client.sync().await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Transport(TransportError::Busy { status: 503, .. })
    ));
    let waits = sleeper.waits();
    assert_eq!(waits.len(), 4, "5 attempts, 4 waits");
    assert!(waits.iter().all(|w| *w >= Duration::from_secs(7)));
    assert_eq!(client.status().await.unwrap().pending, 1);

    // Next time the server is fine.
    let report = client.sync().await.unwrap();
    assert_eq!(report.push.acked, 1);
}

#[tokio::test]
async fn upgrade_required_stops_and_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    client.capture(case("event:0102"), &[]).await.unwrap();
    server
        .state()
        .push_script
        .push_back(Script::Fail(TransportError::UpgradeRequired(None)));
    assert!(matches!(
        client.sync().await,
        Err(ClientError::UpgradeRequired)
    ));
    assert_eq!(client.status().await.unwrap().pending, 1);
}

#[tokio::test]
async fn a_server_restored_from_backup_gets_the_lost_operations_again() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    for _ in 0..3 {
        client.capture(case("event:0102"), &[]).await.unwrap();
    }
    client.sync().await.unwrap();
    // Restore from a backup taken after seq 1.
    server.state().ops.truncate(1);
    client.capture(case("event:0103"), &[]).await.unwrap();

    let report = client.sync().await.unwrap();
    assert!(report.push.server_was_behind);
    assert_eq!(report.push.resent_from, Some(2));
    assert_eq!(server.state().ops.len(), 4);
    let status = client.status().await.unwrap();
    assert_eq!((status.pending, status.acked), (0, 4));
    assert!(status.last_receipt.unwrap().verified);
}

#[tokio::test]
async fn a_rejected_operation_is_acknowledged_and_does_not_block_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = enrolled(&dir).await;
    client.capture(case("event:9901"), &[]).await.unwrap();
    let good = client.capture(case("event:0102"), &[]).await.unwrap();
    let edit = Operation::CaseEditV1(CaseEditV1 {
        case_id: good.op_id,
        base_version: 1,
        changes: CaseChanges {
            severity: Some(Severity::High),
            ..Default::default()
        },
    });
    client.capture(edit, &[]).await.unwrap();

    let report = client.sync().await.unwrap();
    assert_eq!(
        (
            report.push.acked,
            report.push.rejected,
            report.push.conflicts
        ),
        (3, 1, 1)
    );
    let problems = client.conflicts().await.unwrap();
    assert_eq!(problems.len(), 2);
    assert_eq!(problems[0].status, OpStatus::Rejected);
    assert_eq!(problems[0].code, Some(ErrorCode::InvalidRequest));
    assert_eq!(problems[1].status, OpStatus::Conflict);
    assert_eq!(problems[1].records[0].rule_id, "supervisor_beats_inspector");
    let status = client.status().await.unwrap();
    assert_eq!(
        (status.rejected, status.conflicts, status.pending),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn pull_pages_until_done_and_reset_rebuilds_the_mirror_after_pushing() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    server.state().changes = vec![
        upsert("a", 1),
        upsert("b", 1),
        upsert("a", 2),
        Change::Tombstone {
            entity: EntityKind::Case,
            id: "b".into(),
        },
        upsert("c", 1),
    ];
    let report = client.sync().await.unwrap();
    assert_eq!((report.pull.pages, report.pull.changes), (3, 5));
    let cases = client.mirror(EntityKind::Case).await.unwrap();
    let ids: Vec<_> = cases.iter().map(|c| (c.id.as_str(), c.version)).collect();
    assert_eq!(ids, [("a", 2), ("c", 1)]);

    // The server lost the change log: a new snapshot of the scope, and a reset.
    {
        let mut st = server.state();
        st.changes = vec![upsert("d", 1)];
        st.reset_next_pull = true;
    }
    client.capture(case("event:0102"), &[]).await.unwrap();
    let report = client.pull().await.unwrap();
    assert!(report.reset);
    assert_eq!(
        server.state().ops.len(),
        1,
        "the queue was pushed before the reset"
    );
    let cases = client.mirror(EntityKind::Case).await.unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].id, "d");
    assert_eq!(client.store().cursor().await.unwrap().as_deref(), Some("1"));
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    server.state().access_token = "t2".into();
    client.capture(case("event:0102"), &[]).await.unwrap();
    let report = client.sync().await.unwrap();
    assert_eq!(report.push.acked, 1);
    assert_eq!(server.state().refresh_calls, 1);
    assert_eq!(
        client
            .store()
            .identity()
            .await
            .unwrap()
            .unwrap()
            .access_token
            .as_deref(),
        Some("t2")
    );
}

#[tokio::test]
async fn a_revoked_device_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    client.capture(case("event:0102"), &[]).await.unwrap();
    let body = ErrorBody {
        code: ErrorCode::DeviceRevoked,
        message: "revoked".into(),
        details: serde_json::Value::Null,
    };
    server
        .state()
        .push_script
        .push_back(Script::Fail(TransportError::Unauthenticated(body)));
    assert!(matches!(
        client.sync().await,
        Err(ClientError::DeviceRevoked)
    ));
    assert_eq!(client.status().await.unwrap().pending, 1);
}

#[tokio::test]
async fn photo_manifests_hash_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.jpg");
    std::fs::write(&path, b"not really a jpeg").unwrap();
    let photo = photo_from_file(&path, PhotoRole::Before, OffsetDateTime::now_utc()).unwrap();
    assert_eq!(photo.manifest.size, 17);
    assert_eq!(
        photo.manifest.sha256,
        crate::signing::sha256_hex(b"not really a jpeg")
    );
    let (client, _, _) = enrolled(&dir).await;
    let Operation::CaseCreateV1(mut c) = case("event:0102") else {
        unreachable!()
    };
    c.photos = vec![photo.manifest.clone()];
    client
        .capture(Operation::CaseCreateV1(c), std::slice::from_ref(&photo))
        .await
        .unwrap();
    let pending = client.store().pending_photos().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, photo.manifest.sha256);
}

fn case_with_photos(photos: &[LocalPhoto]) -> Operation {
    let Operation::CaseCreateV1(mut c) = case("event:0102") else {
        unreachable!()
    };
    c.photos = photos.iter().map(|p| p.manifest.clone()).collect();
    Operation::CaseCreateV1(c)
}

fn photo_file(dir: &tempfile::TempDir, name: &str, len: usize, seed: u8) -> (Vec<u8>, LocalPhoto) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let path = dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    let photo = photo_from_file(&path, PhotoRole::Before, OffsetDateTime::now_utc()).unwrap();
    (bytes, photo)
}

#[tokio::test]
async fn photos_upload_in_checksummed_chunks_and_resume_after_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, sleeper) = enrolled(&dir).await;
    let client = client.with_upload_chunk(1000);
    let (bytes, photo) = photo_file(&dir, "a.jpg", 4_500, 1);
    client
        .capture(
            case_with_photos(std::slice::from_ref(&photo)),
            std::slice::from_ref(&photo),
        )
        .await
        .unwrap();
    {
        let mut st = server.state();
        // The first chunk arrives but its answer is lost; the retry is cut mid-body (nothing
        // kept); the next arrives, answer lost again.
        st.patch_script.push_back(Script::DropResponse);
        st.patch_script
            .push_back(Script::Fail(TransportError::Network(
                "connection reset".into(),
            )));
        st.patch_script.push_back(Script::DropResponse);
    }
    let report = client.sync().await.unwrap();
    assert_eq!(report.upload.uploaded, 1, "{report:?}");
    assert_eq!(report.upload.resumed, 1);
    assert_eq!(
        server.state().photos.get(&photo.manifest.sha256),
        Some(&bytes)
    );
    // Every interruption was followed by a backoff and a HEAD.
    assert_eq!(sleeper.waits().len(), 3);
    assert_eq!(server.state().head_calls, 3);
    assert_eq!(server.state().create_calls, 1);
    let stored = client
        .store()
        .photo(&photo.manifest.sha256)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, PhotoState::Uploaded);
    assert_eq!(client.status().await.unwrap().photos.uploaded, 1);
    // Nothing left to do.
    let report = client.sync().await.unwrap();
    assert_eq!(report.upload, UploadReport::default());
    assert_eq!(server.state().create_calls, 1);
}

#[tokio::test]
async fn a_faulty_upload_request_ends_the_round_and_leaves_the_photo_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    let (bytes, photo) = photo_file(&dir, "a.jpg", 2_000, 6);
    client
        .capture(
            case_with_photos(std::slice::from_ref(&photo)),
            std::slice::from_ref(&photo),
        )
        .await
        .unwrap();
    client.push().await.unwrap();
    let refusal = http_error(415, ErrorCode::UnsupportedContentType, json!(null));
    server.state().patch_script.push_back(Script::Fail(refusal));
    assert!(matches!(
        client.upload_photos().await,
        Err(ClientError::Transport(TransportError::Http {
            status: 415,
            ..
        }))
    ));
    let kept = client
        .store()
        .photo(&photo.manifest.sha256)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.state, PhotoState::Pending, "not refused for good");
    // The next round uploads it.
    assert_eq!(client.upload_photos().await.unwrap().uploaded, 1);
    assert_eq!(
        server.state().photos.get(&photo.manifest.sha256),
        Some(&bytes)
    );
}

#[tokio::test]
async fn a_stored_upload_is_resumed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    let client = client.with_upload_chunk(1000);
    let (bytes, photo) = photo_file(&dir, "a.jpg", 3_500, 2);
    client
        .capture(
            case_with_photos(std::slice::from_ref(&photo)),
            std::slice::from_ref(&photo),
        )
        .await
        .unwrap();
    client.push().await.unwrap();
    // The network goes away after two chunks: the round fails, the upload is kept.
    {
        let mut st = server.state();
        st.patch_script.push_back(Script::DropResponse);
        st.patch_script.push_back(Script::DropResponse);
        for _ in 0..10 {
            st.patch_script
                .push_back(Script::Fail(TransportError::Network("no signal".into())));
        }
    }
    let client = client.with_policy(RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    });
    assert!(matches!(
        client.upload_photos().await,
        Err(ClientError::Transport(TransportError::Network(_)))
    ));
    let kept = client
        .store()
        .photo(&photo.manifest.sha256)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.state, PhotoState::Pending);
    assert!(kept.upload_url.is_some());
    client.store().close().await;
    drop(client);

    server.state().patch_script.clear();
    let (client, _) = client_at(&dir.path().join("field.db"), &server).await;
    let report = client.upload_photos().await.unwrap();
    assert_eq!(report.uploaded, 1);
    assert_eq!(report.resumed, 1);
    assert_eq!(report.bytes_sent, 1_500, "only the rest is sent");
    assert_eq!(
        server.state().create_calls,
        1,
        "the stored upload was reused"
    );
    assert_eq!(
        server.state().photos.get(&photo.manifest.sha256),
        Some(&bytes)
    );
}

#[tokio::test]
async fn refusals_are_recorded_and_verified_photos_are_done_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _) = enrolled(&dir).await;
    let (known_bytes, known) = photo_file(&dir, "known.jpg", 2_000, 3);
    let (_, changed) = photo_file(&dir, "changed.jpg", 2_000, 4);
    let (_, gone) = photo_file(&dir, "gone.jpg", 100, 5);
    let photos = [known.clone(), changed.clone(), gone.clone()];
    client
        .capture(case_with_photos(&photos), &photos)
        .await
        .unwrap();
    // Not acknowledged yet: nothing to upload.
    assert!(client.upload_photos().await.unwrap() == UploadReport::default());
    server
        .state()
        .photos
        .insert(known.manifest.sha256.clone(), known_bytes);
    // Same size, other bytes: the server finds out at the end.
    std::fs::write(&changed.path, vec![0u8; 2_000]).unwrap();
    std::fs::remove_file(&gone.path).unwrap();

    let report = client.sync().await.unwrap();
    assert_eq!(report.upload.uploaded, 1);
    assert_eq!(report.upload.already_verified, 1);
    assert_eq!(report.upload.refused, 2);
    let status = client.status().await.unwrap();
    assert_eq!(status.photos.uploaded, 1);
    assert_eq!(status.photos.refused, 2);
    let codes: Vec<_> = status
        .refused_photos
        .iter()
        .map(|p| (p.sha256.clone(), p.error_code.clone().unwrap()))
        .collect();
    assert!(codes.contains(&(changed.manifest.sha256.clone(), "hash_mismatch".into())));
    assert!(codes.contains(&(gone.manifest.sha256.clone(), "file_missing".into())));
    // Refused photos are not tried again.
    let calls = server.state().create_calls;
    client.sync().await.unwrap();
    assert_eq!(server.state().create_calls, calls);
}

#[tokio::test]
async fn a_version_1_store_keeps_its_photos_when_upgraded() {
    use sqlx::ConnectOptions as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(store::SCHEMA_V1)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO outbox (seq, op_id, op_type, op, sig, hash, state, queued_at) \
         VALUES (1, 'x', 'case.create@1', '{}', 's', 'h', 'acked', '2024-01-01T00:00:00Z'); \
         INSERT INTO photos (sha256, path, size, seq) VALUES ('ab', '/p.jpg', 10, 1);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let store = Store::open(&path).await.unwrap();
    let photo = store.photo("ab").await.unwrap().unwrap();
    assert_eq!(photo.state, PhotoState::Pending);
    assert_eq!((photo.size, photo.offset, photo.upload_url), (10, 0, None));
    assert_eq!(store.photos_to_upload().await.unwrap().len(), 1);
}
