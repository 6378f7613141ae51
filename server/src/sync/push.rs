//! `POST /v1/sync/push`: applies a device's signed, hash-chained operations exactly once.
//!
//! A batch is one transaction. The device row is locked first (PostgreSQL) or writers are
//! serialised (SQLite), so one device's batches apply strictly in turn. Cases the batch touches
//! are loaded once, the operations are applied in memory in sequence order, and everything they
//! produce is written with multi-row inserts at the end, together with each operation's result
//! and the device's new sequence: the effect and its acknowledgement commit together or not at
//! all. A retry finds the stored results and replays them.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::VerifyingKey;
use gridline_sync::case::{CaseField, CaseState};
use gridline_sync::conflict::{resolve_edit, CaseFields, ChangedBy, EditContext, Editor};
use gridline_sync::ops::{
    CaseCommentV1, CaseCreateV1, CaseEditV1, CaseTransitionV1, PhotoManifest, PhotoRole,
    RoundFinishV1, RoundStartV1,
};
use gridline_sync::signing::{check_chain, decode_public_key, op_hash, verify_operation};
use gridline_sync::workflow::{check_transition, TransitionActor};
use gridline_sync::{
    ConflictRecord, ErrorCode, OpResult, OpStatus, Operation, OperationBody, PushRequest,
    PushResponse, Receipt, ResendFrom, SignedOperation,
};
use serde_json::json;
use uuid::Uuid;

use crate::access::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::model::Zone;
use crate::store::cases::{
    self, CaseRow, ConflictRow, EventRow, HistoryRow, HistoryValue, PhotoRow,
};
use crate::store::changes::{self, PendingChange};
use crate::store::sync::{self as sync_store, RejectionRow, RoundRow, SyncOpRow};
use crate::store::{devices, ms_from_time, new_id, now_ms, reference, review, WriteTx};
use crate::sync::SyncService;

/// Applies a push request; see the module docs.
pub async fn push(svc: &SyncService, user: &AuthUser, req: PushRequest) -> ApiResult<PushResponse> {
    if !gridline_sync::is_supported_protocol(req.protocol) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedProtocol,
            format!(
                "protocol {} is not supported; this server speaks {:?}",
                req.protocol,
                gridline_sync::SUPPORTED_PROTOCOLS
            ),
        ));
    }
    let device_id = user.require_device()?;
    if req.device_id != device_id {
        return Err(ApiError::forbidden("the token is bound to another device"));
    }
    // The body's size is bounded by the route (`PUSH_BODY_LIMIT`), the count here: both 413.
    if req.operations.len() > gridline_sync::MAX_BATCH_OPS {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "at most {} operations per push",
                gridline_sync::MAX_BATCH_OPS
            ),
        )
        .with_details(json!({
            "max_operations": gridline_sync::MAX_BATCH_OPS,
            "max_bytes": gridline_sync::MAX_BATCH_BYTES,
        })));
    }
    // Admission: a batch waits here, in arrival order, for one of as many slots as there are
    // database connections, and gets 503 + Retry-After rather than waiting past half the
    // request timeout. Unbounded, every batch would verify at once and then queue on the pool
    // and the change-log lock, all finishing late (and timed-out work is redone).
    let wait = std::time::Duration::from_secs(svc.config.limits.request_timeout_secs.max(2) / 2);
    let _slot = match tokio::time::timeout(wait, svc.push_slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => {
            metrics::counter!("gridline_sync_push_busy_total").increment(1);
            return Err(ApiError::unavailable(
                "the server is busy with other pushes; retry later",
            ));
        }
    };
    let server_now = now_ms();
    let skew_ms = ms_from_time(req.device_time) - server_now;
    let skewed = skew_ms.unsigned_abs() > svc.config.sync.skew_flag_secs * 1000;

    let device = devices::get(&svc.db.pool, device_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("unknown device"))?;
    let key = decode_public_key(&device.public_key).map_err(ApiError::internal)?;
    // Signatures are checked before the transaction, on the blocking pool: CPU work that would
    // otherwise stall the async workers driving other requests' transactions.
    let (operations, mut verified) = tokio::task::spawn_blocking(move || {
        let verified: Vec<Verified> = req
            .operations
            .iter()
            .map(|signed| verify(&key, device_id, signed))
            .collect();
        (req.operations, verified)
    })
    .await
    .map_err(ApiError::internal)?;
    number_by_place(&mut verified)?;

    let scope = user.scope(&svc.db).await?;
    let zones = reference::zones(&svc.db.pool, None).await?;
    let taxonomy: HashSet<String> = reference::taxonomy(&svc.db.pool)
        .await?
        .into_iter()
        .map(|t| t.key)
        .collect();

    let mut tx = svc.db.begin_write().await?;
    let device = devices::get_for_update(tx.conn(), svc.db.backend, device_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("unknown device"))?;
    let next_seq = device.next_seq;

    if let Some(first) = verified.iter().find_map(|v| v.seq()) {
        if first > next_seq {
            let behind = req.acked_through.is_some_and(|a| a as i64 >= next_seq);
            let (code, msg) = if behind {
                (
                    ErrorCode::SequenceBehind,
                    "the server holds fewer operations than this phone has receipts for; resend",
                )
            } else {
                (
                    ErrorCode::SequenceGap,
                    "operations are missing before this batch; resend",
                )
            };
            let body = ResendFrom {
                resend_from: next_seq as u64,
            }
            .error_body(code, msg);
            return Err(ApiError::new(body.code, body.message).with_details(body.details));
        }
    }

    let mut batch = Batch::new(
        user,
        scope,
        device.clone(),
        zones,
        taxonomy,
        server_now,
        skew_ms,
        skewed,
    );
    batch.prefetch(&mut tx, &verified).await?;
    let mut results = Vec::with_capacity(verified.len());
    for (signed, v) in operations.iter().zip(&verified) {
        match batch.step(signed, v)? {
            Step::Result(r) => results.push(r),
            Step::Stop(r) => {
                results.push(r);
                break;
            }
        }
    }
    let acked_through = batch.next_seq - 1;
    let last_hash = batch.last_hash.clone();
    let flagged = batch.flagged;
    let mut declared: Vec<String> = batch.photos.iter().map(|p| p.sha256.clone()).collect();
    declared.sort();
    declared.dedup();
    let pending = batch.flush(&mut tx).await?;
    sync_store::update_device(
        tx.conn(),
        device_id,
        acked_through + 1,
        &last_hash,
        skew_ms,
        server_now,
        flagged,
    )
    .await?;
    // Last: numbering changes takes the change-log lock, held only until commit.
    changes::append(tx.conn(), &pending).await?;
    tx.commit().await?;
    flag_already_verified(svc, &declared).await;

    let server_time = crate::store::time_from_ms(server_now);
    let receipt = Receipt::sign(
        &svc.keys.current.signing,
        device_id,
        acked_through as u64,
        last_hash,
        server_time,
    );
    metrics::counter!("gridline_sync_ops_total").increment(results.len() as u64);
    Ok(PushResponse {
        protocol: gridline_sync::PROTOCOL_VERSION,
        server_time,
        results,
        acked_through: acked_through as u64,
        clock_skew_ms: skew_ms,
        receipt,
    })
}

/// A case may declare a photo whose bytes arrived earlier (for another case, or before a
/// reset): its EXIF checks against this case run now. Best effort after commit: a failure is
/// logged, and the flags are recomputed whenever the photo is verified again.
async fn flag_already_verified(svc: &SyncService, shas: &[String]) {
    if shas.is_empty() {
        return;
    }
    let verified = match svc.db.pool.acquire().await {
        Ok(mut conn) => crate::store::photos::verified_among(&mut conn, shas).await,
        Err(e) => Err(e),
    };
    match verified {
        Ok(photos) => {
            for photo in photos {
                if let Err(e) = crate::photos::flag_declaring_cases(&svc.photos, &photo).await {
                    tracing::warn!(error = %e, sha = %photo.sha256, "could not flag a re-declared photo");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look up declared photos"),
    }
}

/// The outcome of checking one operation's signature.
enum Verified {
    Ok {
        body: OperationBody,
        hash: String,
    },
    /// The signature or the text is bad; `seq`/`op_id` are read without trusting them, for the
    /// result only.
    Bad {
        seq: Option<i64>,
        op_id: Option<Uuid>,
        code: ErrorCode,
        message: String,
    },
}

impl Verified {
    fn seq(&self) -> Option<i64> {
        match self {
            Verified::Ok { body, .. } => Some(body.seq as i64),
            Verified::Bad { seq, .. } => *seq,
        }
    }
}

fn verify(key: &VerifyingKey, device_id: Uuid, signed: &SignedOperation) -> Verified {
    match verify_operation(key, signed) {
        Ok(body) if body.device_id != device_id => Verified::Bad {
            seq: Some(body.seq as i64),
            op_id: Some(body.op_id),
            code: ErrorCode::BadSignature,
            message: "the operation names another device".into(),
        },
        Ok(body) => Verified::Ok {
            hash: op_hash(&signed.op),
            body,
        },
        Err(e) => {
            // Only a refused operation is read without a valid signature, for its result: as
            // loosely as its text allows, so that the result names it whenever it can.
            let unverified: Option<serde_json::Value> = serde_json::from_str(&signed.op).ok();
            let field = |key: &str| unverified.as_ref().and_then(|v| v.get(key));
            Verified::Bad {
                seq: field("seq").and_then(serde_json::Value::as_i64),
                op_id: field("op_id")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok()),
                code: e.code(),
                message: e.to_string(),
            }
        }
    }
}

/// A push's operations have consecutive seqs: operation `i` is the first one's seq plus `i`.
/// A verified operation that says otherwise refuses the whole batch (422 naming it): answering
/// up to it would leave the rest without a result. An operation that did not verify is given
/// the seq of its place, which its own text may not tell (or may tell wrongly), so that its
/// result names the entry of the phone's queue it came from.
fn number_by_place(verified: &mut [Verified]) -> ApiResult<()> {
    let mut first: Option<i64> = None;
    for (place, v) in verified.iter().enumerate() {
        let Verified::Ok { body, .. } = v else {
            continue;
        };
        let (place, seq) = (place as i64, body.seq as i64);
        let expected = *first.get_or_insert(seq - place);
        if expected < 1 || seq != expected + place {
            let message = if expected < 1 {
                format!("seq {seq} cannot have {place} operations before it")
            } else {
                format!(
                    "seq {seq} where seq {} belongs: a push's operations have consecutive seqs",
                    expected + place
                )
            };
            return Err(ApiError::invalid(
                &format!("operations[{place}].seq"),
                message,
            ));
        }
    }
    if let Some(first) = first {
        for (place, v) in verified.iter_mut().enumerate() {
            if let Verified::Bad { seq, .. } = v {
                *seq = Some(first + place as i64);
            }
        }
    }
    Ok(())
}

enum Step {
    Result(OpResult),
    /// An integrity failure: reported, not acknowledged; nothing after it is processed.
    Stop(OpResult),
}

struct Batch<'a> {
    user: &'a AuthUser,
    scope: Scope,
    device: devices::DeviceRow,
    zones: HashMap<Uuid, Zone>,
    taxonomy: HashSet<String>,
    now: i64,
    skew_ms: i64,
    skewed: bool,
    next_seq: i64,
    last_hash: String,
    flagged: Option<&'static str>,
    /// Cases touched by the batch, as they stand after the operations applied so far.
    cases: HashMap<Uuid, CaseRow>,
    history: HashMap<Uuid, Vec<HistoryRow>>,
    /// Who each touched case is dispatched to: only they may report it rectified.
    assignees: HashMap<Uuid, Vec<Uuid>>,
    new_cases: Vec<Uuid>,
    dirty: HashSet<Uuid>,
    replays: HashMap<i64, (String, String)>,
    /// Stored events whose ids the batch's comments use, so that a resent comment is told
    /// from another comment under a taken id.
    existing_events: HashMap<Uuid, EventRow>,
    /// The photos already declared for the touched cases, and their (case, hash) pairs.
    stored_photos: Vec<PhotoRow>,
    existing_photos: HashSet<(Uuid, String)>,
    /// Sizes of the photos the batch declares that the server already holds.
    stored_sizes: HashMap<String, i64>,
    /// Op ids of the batch's new operations already stored (for any device), and those this
    /// batch has acknowledged so far: an op id is used once.
    stored_op_ids: HashSet<Uuid>,
    batch_op_ids: HashSet<Uuid>,
    /// Rounds the batch refers to, stored or started in it, as they stand so far.
    rounds: HashMap<Uuid, RoundRow>,
    rounds_new: Vec<Uuid>,
    rounds_finished: Vec<Uuid>,
    // Write set, flushed at the end.
    ops: Vec<SyncOpRow>,
    new_history: Vec<HistoryRow>,
    photos: Vec<PhotoRow>,
    events: Vec<EventRow>,
    conflicts: Vec<ConflictRow>,
    rejections: Vec<RejectionRow>,
    changes: Vec<PendingChange>,
}

impl<'a> Batch<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        user: &'a AuthUser,
        scope: Scope,
        device: devices::DeviceRow,
        zones: Vec<Zone>,
        taxonomy: HashSet<String>,
        now: i64,
        skew_ms: i64,
        skewed: bool,
    ) -> Self {
        Batch {
            user,
            scope,
            next_seq: device.next_seq,
            last_hash: device.last_hash.clone(),
            device,
            zones: zones.into_iter().map(|z| (z.id, z)).collect(),
            taxonomy,
            now,
            skew_ms,
            skewed,
            flagged: None,
            cases: HashMap::new(),
            history: HashMap::new(),
            assignees: HashMap::new(),
            new_cases: Vec::new(),
            dirty: HashSet::new(),
            replays: HashMap::new(),
            existing_events: HashMap::new(),
            stored_photos: Vec::new(),
            existing_photos: HashSet::new(),
            stored_sizes: HashMap::new(),
            stored_op_ids: HashSet::new(),
            batch_op_ids: HashSet::new(),
            rounds: HashMap::new(),
            rounds_new: Vec::new(),
            rounds_finished: Vec::new(),
            ops: Vec::new(),
            new_history: Vec::new(),
            photos: Vec::new(),
            events: Vec::new(),
            conflicts: Vec::new(),
            rejections: Vec::new(),
            changes: Vec::new(),
        }
    }

    /// Loads, in a few queries, every case the batch refers to and the stored results of any
    /// operations it repeats.
    async fn prefetch(&mut self, tx: &mut WriteTx, verified: &[Verified]) -> ApiResult<()> {
        let mut ids = Vec::new();
        let mut comment_ids = Vec::new();
        let mut round_ids = Vec::new();
        let mut op_ids = Vec::new();
        let mut photo_shas = Vec::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for v in verified {
            if let Verified::Ok { body, .. } = v {
                let seq = body.seq as i64;
                if seq < self.next_seq {
                    lo = lo.min(seq);
                    hi = hi.max(seq);
                } else {
                    op_ids.push(body.op_id);
                    let uuid_at = |key: &str| {
                        body.payload
                            .get(key)
                            .and_then(|v| v.as_str())
                            .and_then(|s| Uuid::parse_str(s).ok())
                    };
                    ids.extend(uuid_at("case_id"));
                    comment_ids.extend(uuid_at("comment_id"));
                    photo_shas.extend(crate::photos::declared_hashes(&body.payload));
                    round_ids.extend(uuid_at("round_id"));
                }
            }
        }
        if lo <= hi {
            self.replays = sync_store::stored_results(tx.conn(), self.device.id, lo, hi).await?;
        }
        if !op_ids.is_empty() {
            self.stored_op_ids = sync_store::op_ids_used(tx.conn(), &op_ids)
                .await?
                .into_iter()
                .collect();
        }
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            // Supervisors transition cases too (routes/review.rs): lock while reading.
            let backend = tx.backend;
            self.cases = cases::load_many_locked(tx.conn(), backend, &ids).await?;
            self.assignees = review::assignees(tx.conn(), &ids).await?;
            for h in cases::history_many(tx.conn(), &ids).await? {
                self.history.entry(h.case_id).or_default().push(h);
            }
            self.stored_photos = cases::photos_many(tx.conn(), &ids).await?;
            self.existing_photos = self
                .stored_photos
                .iter()
                .map(|p| (p.case_id, p.sha256.clone()))
                .collect();
        }
        self.stored_sizes = crate::photos::stored_sizes(tx.conn(), &photo_shas).await?;
        if !round_ids.is_empty() {
            self.rounds = sync_store::rounds_many(tx.conn(), &round_ids)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
        }
        if !comment_ids.is_empty() {
            self.existing_events = cases::events_by_id(tx.conn(), &comment_ids)
                .await?
                .into_iter()
                .map(|e| (e.id, e))
                .collect();
        }
        Ok(())
    }

    fn step(&mut self, signed: &SignedOperation, v: &Verified) -> ApiResult<Step> {
        let (body, hash) = match v {
            Verified::Bad {
                seq,
                op_id,
                code,
                message,
            } => {
                let seq = seq.unwrap_or(self.next_seq);
                if seq < self.next_seq {
                    // A tampered copy of an operation already applied: report, change nothing.
                    return Ok(Step::Stop(rejected_result(
                        seq,
                        op_id.unwrap_or_default(),
                        *code,
                        message,
                    )));
                }
                self.integrity_failure(signed, seq, *op_id, *code, message);
                return Ok(Step::Stop(rejected_result(
                    seq,
                    op_id.unwrap_or_default(),
                    *code,
                    message,
                )));
            }
            Verified::Ok { body, hash } => (body, hash),
        };
        let seq = body.seq as i64;
        if seq < self.next_seq {
            return Ok(match self.replays.get(&seq) {
                Some((stored_hash, result)) if stored_hash == hash => {
                    Step::Result(replayed(result)?)
                }
                Some(_) => Step::Stop(rejected_result(
                    seq,
                    body.op_id,
                    ErrorCode::BrokenChain,
                    "a different operation was already acknowledged at this sequence number",
                )),
                // Acknowledged earlier in this same batch (a repeated entry): same answer.
                None => match self.ops.iter().find(|o| o.seq == seq && &o.hash == hash) {
                    Some(o) => Step::Result(replayed(&o.result)?),
                    None => Step::Stop(rejected_result(
                        seq,
                        body.op_id,
                        ErrorCode::BrokenChain,
                        "sequence reused",
                    )),
                },
            });
        }
        if seq > self.next_seq {
            // The batch starts at or before the next seq and is consecutive (`number_by_place`),
            // and every operation before this one advanced the sequence or was a replay.
            return Err(ApiError::internal(format!(
                "seq {seq} reached with {} next",
                self.next_seq
            )));
        }
        if check_chain(&self.last_hash, body).is_err() {
            let msg = "prev does not match the hash of this device's previous operation";
            self.integrity_failure(signed, seq, Some(body.op_id), ErrorCode::BrokenChain, msg);
            return Ok(Step::Stop(rejected_result(
                seq,
                body.op_id,
                ErrorCode::BrokenChain,
                msg,
            )));
        }

        let mut result = if self.stored_op_ids.contains(&body.op_id)
            || self.batch_op_ids.contains(&body.op_id)
        {
            rejected_result(
                seq,
                body.op_id,
                ErrorCode::IdReused,
                "this op_id is already taken by another operation",
            )
        } else {
            match Operation::from_body(body) {
                Err(e) => rejected_result(seq, body.op_id, e.code(), &e.to_string()),
                Ok(op) => self.apply(body, &op),
            }
        };
        result.seq = body.seq;
        result.op_id = body.op_id;
        if result.status == OpStatus::Rejected {
            self.rejections.push(RejectionRow {
                id: new_id(),
                device_id: self.device.id,
                user_id: self.user.user_id,
                seq,
                op_id: Some(body.op_id),
                op_text: signed.op.clone(),
                sig: signed.sig.clone(),
                code: result
                    .code
                    .map(|c| c.as_str())
                    .unwrap_or("rejected")
                    .to_owned(),
                message: result.message.clone().unwrap_or_default(),
                acknowledged: true,
                received_at: self.now,
            });
        }
        self.ops.push(SyncOpRow {
            device_id: self.device.id,
            seq,
            op_id: body.op_id,
            hash: hash.clone(),
            op_type: body.op_type.clone(),
            status: result.status.as_str().to_owned(),
            result: serde_json::to_string(&result).map_err(ApiError::internal)?,
            queued_at: ms_from_time(body.queued_at),
            received_at: self.now,
            skew_ms: Some(self.skew_ms),
        });
        self.batch_op_ids.insert(body.op_id);
        self.next_seq += 1;
        self.last_hash = hash.clone();
        Ok(Step::Result(result))
    }

    fn integrity_failure(
        &mut self,
        signed: &SignedOperation,
        seq: i64,
        op_id: Option<Uuid>,
        code: ErrorCode,
        message: &str,
    ) {
        tracing::warn!(device = %self.device.id, seq, code = %code, "sync integrity failure");
        self.flagged = Some(code.as_str());
        self.rejections.push(RejectionRow {
            id: new_id(),
            device_id: self.device.id,
            user_id: self.user.user_id,
            seq,
            op_id,
            op_text: signed.op.chars().take(64 * 1024).collect(),
            sig: signed.sig.chars().take(1024).collect(),
            code: code.as_str().to_owned(),
            message: message.to_owned(),
            acknowledged: false,
            received_at: self.now,
        });
    }

    fn apply(&mut self, body: &OperationBody, op: &Operation) -> OpResult {
        if let Err(message) = crate::photos::check_declared_sizes(&self.stored_sizes, op.photos()) {
            return rejected(ErrorCode::InvalidRequest, &message);
        }
        match op {
            Operation::CaseCreateV1(p) => self.create(body, p),
            Operation::CaseEditV1(p) => self.edit(body, p),
            Operation::CaseCommentV1(p) => self.comment(p),
            Operation::CaseTransitionV1(p) => self.transition(p),
            Operation::RoundStartV1(p) => self.round_start(p),
            Operation::RoundFinishV1(p) => self.round_finish(p),
        }
    }

    fn level(&self) -> &'static str {
        if self.user.is_supervisor_level() {
            "supervisor"
        } else {
            "inspector"
        }
    }

    fn create(&mut self, body: &OperationBody, p: &CaseCreateV1) -> OpResult {
        if let Some(existing) = self.cases.get(&p.case_id) {
            // The same capture queued again under a new sequence number: its effect is there.
            // Anything else under this id is refused (and kept), never taken for a resend.
            return if self.is_same_capture(existing, p) {
                duplicate_of_applied(existing.id, existing.version)
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this case_id already names a case with other content",
                )
            };
        }
        let Some(zone) = self.zones.get(&p.zone_id) else {
            return rejected(ErrorCode::InvalidRequest, "unknown zone_id");
        };
        if !self.scope.contains(p.zone_id) {
            return rejected(ErrorCode::OutOfScope, "that zone is outside your roster");
        }
        if !self.taxonomy.contains(&p.category_code) {
            return rejected(
                ErrorCode::InvalidRequest,
                "unknown category_code (use a taxonomy key such as event:0102)",
            );
        }
        let mut flags = Vec::new();
        if !crate::geo::contains(&zone.boundary, p.location.lon, p.location.lat) {
            flags.push("location_outside_zone".to_owned());
        }
        if self.skewed {
            flags.push("clock_skew".to_owned());
        }
        let case = CaseRow {
            id: p.case_id,
            zone_id: p.zone_id,
            reporter_id: self.user.user_id,
            device_id: Some(self.device.id),
            source: "inspection".into(),
            state: CaseState::Reported,
            category_code: p.category_code.clone(),
            description: p.description.clone(),
            severity: p.severity,
            asset_code: p.asset_code.clone(),
            lat: p.location.lat,
            lon: p.location.lon,
            accuracy_m: p.location.accuracy_m,
            captured_at: ms_from_time(p.captured_at),
            queued_at: ms_from_time(body.queued_at),
            received_at: self.now,
            round_id: p.round_id,
            version: 1,
            locked_at: None,
            flags,
            created_at: self.now,
            updated_at: self.now,
        };
        let fields = fields_of(&case);
        for field in CaseField::ALL {
            self.record_history(case.id, 1, *field, &fields);
        }
        self.add_photos(case.id, &p.photos);
        self.events.push(EventRow {
            id: new_id(),
            case_id: case.id,
            version: 1,
            kind: "created".into(),
            actor_id: self.user.user_id,
            from_state: None,
            to_state: Some(CaseState::Reported.as_str().into()),
            comment: None,
            data: None,
            at: self.now,
        });
        self.changes.push(PendingChange::upsert(
            "case",
            case.id,
            Some(case.zone_id.to_string()),
        ));
        let result = OpResult {
            status: OpStatus::Applied,
            entity_id: Some(case.id),
            version: Some(1),
            ..blank()
        };
        self.new_cases.push(case.id);
        self.cases.insert(case.id, case);
        result
    }

    /// Whether `p` is, field for field (at stored precision), the capture that created `case`:
    /// same reporter, evidence and original values, and the same photos declared with it.
    fn is_same_capture(&self, case: &CaseRow, p: &CaseCreateV1) -> bool {
        let history = self.history.get(&case.id).map(Vec::as_slice).unwrap_or(&[]);
        let original = fields_at(history, 1, &fields_of(case));
        let incoming = CaseFields {
            category_code: p.category_code.clone(),
            description: p.description.clone(),
            severity: p.severity,
            asset_code: p.asset_code.clone(),
        };
        let photo_key = |sha: &str, size: i64, at: i64, gps: (Option<f64>, Option<f64>)| {
            (
                sha.to_owned(),
                size,
                at,
                gps.0.map(f64::to_bits),
                gps.1.map(f64::to_bits),
            )
        };
        // The photos declared with the case: `before` photos declared when it was created.
        let mut stored: Vec<_> = self
            .stored_photos
            .iter()
            .chain(&self.photos)
            .filter(|ph| {
                ph.case_id == case.id && ph.role == "before" && ph.declared_at == case.created_at
            })
            .map(|ph| {
                photo_key(
                    &ph.sha256,
                    ph.size,
                    ph.captured_at,
                    (ph.gps_lat, ph.gps_lon),
                )
            })
            .collect();
        let mut declared: Vec<_> = p
            .photos
            .iter()
            .map(|ph| {
                let gps = (
                    ph.gps.as_ref().map(|g| g.lat),
                    ph.gps.as_ref().map(|g| g.lon),
                );
                photo_key(
                    &ph.sha256,
                    ph.size as i64,
                    ms_from_time(ph.captured_at),
                    gps,
                )
            })
            .collect();
        stored.sort();
        declared.sort();
        case.reporter_id == self.user.user_id
            && case.zone_id == p.zone_id
            && case.captured_at == ms_from_time(p.captured_at)
            && case.lat == p.location.lat
            && case.lon == p.location.lon
            && case.accuracy_m == p.location.accuracy_m
            && case.round_id == p.round_id
            && original == incoming
            && stored == declared
    }

    fn record_history(
        &mut self,
        case_id: Uuid,
        version: i64,
        field: CaseField,
        fields: &CaseFields,
    ) {
        let row = HistoryRow {
            case_id,
            version,
            field: field.as_str().to_owned(),
            value: fields.value(field).to_string(),
            changed_by: self.user.user_id,
            level: self.level().to_owned(),
            at: self.now,
        };
        self.history.entry(case_id).or_default().push(row.clone());
        self.new_history.push(row);
    }

    fn add_photos(&mut self, case_id: Uuid, photos: &[PhotoManifest]) {
        let mut seen: HashSet<String> = self
            .photos
            .iter()
            .filter(|p| p.case_id == case_id)
            .map(|p| p.sha256.clone())
            .collect();
        for ph in photos {
            if self.existing_photos.contains(&(case_id, ph.sha256.clone()))
                || !seen.insert(ph.sha256.clone())
            {
                continue;
            }
            self.photos.push(PhotoRow {
                case_id,
                sha256: ph.sha256.clone(),
                size: ph.size as i64,
                captured_at: ms_from_time(ph.captured_at),
                gps_lat: ph.gps.as_ref().map(|g| g.lat),
                gps_lon: ph.gps.as_ref().map(|g| g.lon),
                role: serde_json::to_value(ph.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "before".into()),
                declared_by: self.user.user_id,
                declared_at: self.now,
            });
        }
    }

    /// The case for an operation, if it exists and is in the caller's scope.
    fn case_in_scope(&self, id: Uuid) -> Result<CaseRow, OpResult> {
        match self.cases.get(&id) {
            None => Err(rejected(ErrorCode::CaseNotFound, "no such case")),
            Some(c) if !self.scope.contains(c.zone_id) => Err(rejected(
                ErrorCode::OutOfScope,
                "that case is outside your roster",
            )),
            Some(c) => Ok(c.clone()),
        }
    }

    fn edit(&mut self, body: &OperationBody, p: &CaseEditV1) -> OpResult {
        let mut case = match self.case_in_scope(p.case_id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        if p.base_version < 1 || p.base_version > case.version {
            return rejected(
                ErrorCode::InvalidRequest,
                "base_version is not a version of this case",
            );
        }
        if let Some(code) = &p.changes.category_code {
            if !self.taxonomy.contains(code) {
                return rejected(ErrorCode::InvalidRequest, "unknown category_code");
            }
        }
        let history = self.history.get(&case.id).cloned().unwrap_or_default();
        let base = fields_at(&history, p.base_version, &fields_of(&case));
        let server = fields_of(&case);
        let me = self.user.user_id;
        let changed_by = |field: CaseField| {
            history
                .iter()
                .filter(|h| h.field == field.as_str() && h.version > p.base_version)
                .max_by_key(|h| h.version)
                .map(|h| {
                    if h.changed_by == me {
                        ChangedBy::SameUser
                    } else if h.level == "supervisor" {
                        ChangedBy::Supervisor
                    } else {
                        ChangedBy::OtherInspector
                    }
                })
                .unwrap_or(ChangedBy::Nobody)
        };
        let editor = if self.user.is_supervisor_level() {
            Editor::Supervisor
        } else {
            Editor::Inspector
        };
        let ctx = EditContext {
            editor,
            state: case.state,
            locked: case.locked_at.is_some(),
        };
        let resolution = resolve_edit(ctx, &base, &server, changed_by, &p.changes);
        let records = resolution.records();
        self.record_conflicts(&case, body.op_id, &records);
        if resolution.status == OpStatus::Rejected {
            if !records.is_empty() {
                // Nothing written, but the case now shows the refused values: pullers must
                // get it again, or their copy lacks the conflicts the server shows.
                self.changes.push(PendingChange::upsert(
                    "case",
                    case.id,
                    Some(case.zone_id.to_string()),
                ));
            }
            let code = resolution.code.unwrap_or(ErrorCode::Conflict);
            return OpResult {
                status: OpStatus::Rejected,
                code: Some(code),
                message: Some(format!("edit refused: {code}")),
                entity_id: Some(case.id),
                version: Some(case.version),
                conflicts: records,
                ..blank()
            };
        }
        let write = resolution.to_write(&p.changes);
        if !write.is_empty() {
            case.version += 1;
            if let Some(v) = write.category_code {
                case.category_code = v;
            }
            if let Some(v) = write.description {
                case.description = v;
            }
            if let Some(v) = write.severity {
                case.severity = v;
            }
            if let Some(v) = write.asset_code {
                case.asset_code = v;
            }
            case.updated_at = self.now;
            let fields = fields_of(&case);
            for f in resolution.fields.iter().filter(|f| f.writes()) {
                self.record_history(case.id, case.version, f.field, &fields);
            }
            self.events.push(EventRow {
                id: new_id(),
                case_id: case.id,
                version: case.version,
                kind: "edited".into(),
                actor_id: self.user.user_id,
                from_state: None,
                to_state: None,
                comment: None,
                data: Some(json!({"conflicts": records.len()}).to_string()),
                at: self.now,
            });
            self.touch(case.clone());
        } else if !records.is_empty() {
            // Nothing written, but the conflict records changed what the case shows.
            self.changes.push(PendingChange::upsert(
                "case",
                case.id,
                Some(case.zone_id.to_string()),
            ));
        }
        OpResult {
            status: resolution.status,
            entity_id: Some(case.id),
            version: Some(case.version),
            conflicts: records,
            ..blank()
        }
    }

    fn record_conflicts(&mut self, case: &CaseRow, op_id: Uuid, records: &[ConflictRecord]) {
        for r in records {
            let id = new_id();
            let text = |v: &serde_json::Value| v.to_string();
            self.conflicts.push(ConflictRow {
                id,
                case_id: case.id,
                zone_id: case.zone_id,
                op_id,
                user_id: self.user.user_id,
                field: r.field.as_str().to_owned(),
                base_value: text(&r.base_value),
                server_value: text(&r.server_value),
                incoming_value: text(&r.incoming_value),
                resolution: serde_json::to_value(r.resolution)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                rule_id: r.rule_id.clone(),
                created_at: self.now,
            });
            self.changes.push(PendingChange::upsert(
                "conflict",
                id,
                Some(case.zone_id.to_string()),
            ));
        }
    }

    /// Marks a case changed: written at the end, and sent to pullers.
    fn touch(&mut self, case: CaseRow) {
        self.changes.push(PendingChange::upsert(
            "case",
            case.id,
            Some(case.zone_id.to_string()),
        ));
        if !self.new_cases.contains(&case.id) {
            self.dirty.insert(case.id);
        }
        self.cases.insert(case.id, case);
    }

    fn comment(&mut self, p: &CaseCommentV1) -> OpResult {
        let mut case = match self.case_in_scope(p.case_id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let taken = self
            .existing_events
            .get(&p.comment_id)
            .or_else(|| self.events.iter().find(|e| e.id == p.comment_id));
        if let Some(event) = taken {
            // The same comment queued again: its effect is there. Anything else under this id
            // is refused (and kept).
            let same = event.kind == "comment"
                && event.case_id == p.case_id
                && event.actor_id == self.user.user_id
                && event.comment.as_deref() == Some(p.text.as_str());
            return if same {
                duplicate_of_applied(case.id, case.version)
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this comment_id already names another comment",
                )
            };
        }
        case.version += 1;
        case.updated_at = self.now;
        self.events.push(EventRow {
            id: p.comment_id,
            case_id: case.id,
            version: case.version,
            kind: "comment".into(),
            actor_id: self.user.user_id,
            from_state: None,
            to_state: None,
            comment: Some(p.text.clone()),
            data: None,
            at: self.now,
        });
        let result = OpResult {
            status: OpStatus::Applied,
            entity_id: Some(case.id),
            version: Some(case.version),
            ..blank()
        };
        self.touch(case);
        result
    }

    fn transition(&mut self, p: &CaseTransitionV1) -> OpResult {
        let mut case = match self.case_in_scope(p.case_id) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let actor = TransitionActor {
            is_reporter: case.reporter_id == self.user.user_id,
            is_assignee: self
                .assignees
                .get(&case.id)
                .is_some_and(|a| a.contains(&self.user.user_id)),
        };
        let has_after_photo = p.photos.iter().any(|ph| ph.role == PhotoRole::After);
        match check_transition(p.action, case.state, actor, has_after_photo) {
            Err(code) => OpResult {
                status: OpStatus::Rejected,
                code: Some(code),
                message: Some(format!(
                    "{:?} is not allowed from {}",
                    p.action,
                    case.state.as_str()
                )),
                entity_id: Some(case.id),
                version: Some(case.version),
                ..blank()
            },
            Ok(to) => {
                let from = case.state;
                case.state = to;
                case.version += 1;
                case.updated_at = self.now;
                self.add_photos(case.id, &p.photos);
                self.events.push(EventRow {
                    id: new_id(),
                    case_id: case.id,
                    version: case.version,
                    kind: "transition".into(),
                    actor_id: self.user.user_id,
                    from_state: Some(from.as_str().into()),
                    to_state: Some(to.as_str().into()),
                    comment: p.comment.clone(),
                    data: None,
                    at: self.now,
                });
                let result = OpResult {
                    status: OpStatus::Applied,
                    entity_id: Some(case.id),
                    version: Some(case.version),
                    ..blank()
                };
                self.touch(case);
                result
            }
        }
    }

    fn round_start(&mut self, p: &RoundStartV1) -> OpResult {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let started_at = ms_from_time(p.started_at);
        if let Some(round) = self.rounds.get(&p.round_id) {
            // The same round queued again: its effect is there. Anything else under this id is
            // refused (and kept).
            let same = round.user_id == self.user.user_id
                && round.zone_id == p.zone_id
                && round.kind == kind
                && round.started_at == started_at;
            return if same {
                duplicate_of_applied(round.id, round_version(round))
            } else {
                rejected(
                    ErrorCode::IdReused,
                    "this round_id already names another round",
                )
            };
        }
        if !self.scope.contains(p.zone_id) || !self.zones.contains_key(&p.zone_id) {
            return rejected(ErrorCode::OutOfScope, "that zone is outside your roster");
        }
        self.rounds.insert(
            p.round_id,
            RoundRow {
                id: p.round_id,
                zone_id: p.zone_id,
                user_id: self.user.user_id,
                kind,
                started_at,
                finished_at: None,
            },
        );
        self.rounds_new.push(p.round_id);
        self.changes.push(PendingChange::upsert(
            "round",
            p.round_id,
            Some(p.zone_id.to_string()),
        ));
        OpResult {
            status: OpStatus::Applied,
            entity_id: Some(p.round_id),
            version: Some(1),
            ..blank()
        }
    }

    fn round_finish(&mut self, p: &RoundFinishV1) -> OpResult {
        let at = ms_from_time(p.finished_at);
        let Some(round) = self.rounds.get_mut(&p.round_id) else {
            return rejected(ErrorCode::NotFound, "no such round");
        };
        if round.user_id != self.user.user_id {
            return rejected(ErrorCode::Forbidden, "that round is another user's");
        }
        match round.finished_at {
            // The same finish queued again.
            Some(done) if done == at => duplicate_of_applied(round.id, round_version(round)),
            Some(_) => rejected(
                ErrorCode::Conflict,
                "this round was already finished at another time",
            ),
            None => {
                round.finished_at = Some(at);
                let zone = round.zone_id;
                if !self.rounds_finished.contains(&p.round_id) {
                    self.rounds_finished.push(p.round_id);
                }
                self.changes.push(PendingChange::upsert(
                    "round",
                    p.round_id,
                    Some(zone.to_string()),
                ));
                OpResult {
                    status: OpStatus::Applied,
                    entity_id: Some(p.round_id),
                    version: Some(2),
                    ..blank()
                }
            }
        }
    }

    /// Writes everything the batch produced, except the change-log entries: those are returned,
    /// to be numbered by the transaction's last statement.
    async fn flush(self, tx: &mut WriteTx) -> ApiResult<Vec<PendingChange>> {
        let conn = tx.conn();
        let new_cases: Vec<CaseRow> = self
            .new_cases
            .iter()
            .filter_map(|id| self.cases.get(id).cloned())
            .collect();
        cases::insert_cases(conn, &new_cases).await?;
        let mut dirty: Vec<&CaseRow> = self
            .dirty
            .iter()
            .filter_map(|id| self.cases.get(id))
            .collect();
        // In id order, like the locks: a stable order for the row writes.
        dirty.sort_by_key(|c| c.id);
        cases::update_cases(conn, &dirty).await?;
        cases::insert_history(conn, &self.new_history).await?;
        cases::insert_photos(conn, &self.photos).await?;
        cases::insert_events(conn, &self.events).await?;
        cases::insert_conflicts(conn, &self.conflicts).await?;
        sync_store::insert_ops(conn, &self.ops).await?;
        sync_store::insert_rejections(conn, &self.rejections).await?;
        let changes = self.changes;
        // A round started in this batch is inserted as it stands (finished too, if it was).
        for round in self.rounds_new.iter().filter_map(|id| self.rounds.get(id)) {
            sync_store::insert_round(conn, round, self.device.id).await?;
        }
        for round in self
            .rounds_finished
            .iter()
            .filter_map(|id| self.rounds.get(id))
        {
            if let (false, Some(at)) = (self.rounds_new.contains(&round.id), round.finished_at) {
                sync_store::finish_round(conn, round.id, at).await?;
            }
        }
        Ok(changes)
    }
}

fn blank() -> OpResult {
    OpResult {
        seq: 0,
        op_id: Uuid::nil(),
        status: OpStatus::Applied,
        first_status: None,
        code: None,
        message: None,
        entity_id: None,
        version: None,
        conflicts: vec![],
    }
}

/// The stored result of an operation sent again: `duplicate`, with what happened the first
/// time (for one that was itself a `duplicate` of an applied original: `applied`).
fn replayed(stored: &str) -> ApiResult<OpResult> {
    let mut r: OpResult = serde_json::from_str(stored).map_err(ApiError::internal)?;
    r.first_status = Some(r.effective_status());
    r.status = OpStatus::Duplicate;
    Ok(r)
}

/// The result of a new operation whose effect is already there (the same capture or comment
/// queued again): `duplicate` of an `applied` original, nothing new written.
fn duplicate_of_applied(entity_id: Uuid, version: i64) -> OpResult {
    OpResult {
        status: OpStatus::Duplicate,
        first_status: Some(OpStatus::Applied),
        entity_id: Some(entity_id),
        version: Some(version),
        ..blank()
    }
}

/// A round's version: 1 once started, 2 once finished.
fn round_version(round: &RoundRow) -> i64 {
    if round.finished_at.is_some() {
        2
    } else {
        1
    }
}

fn rejected(code: ErrorCode, message: &str) -> OpResult {
    OpResult {
        status: OpStatus::Rejected,
        code: Some(code),
        message: Some(message.to_owned()),
        ..blank()
    }
}

fn rejected_result(seq: i64, op_id: Uuid, code: ErrorCode, message: &str) -> OpResult {
    OpResult {
        seq: seq.max(0) as u64,
        op_id,
        ..rejected(code, message)
    }
}

pub fn fields_of(c: &CaseRow) -> CaseFields {
    CaseFields {
        category_code: c.category_code.clone(),
        description: c.description.clone(),
        severity: c.severity,
        asset_code: c.asset_code.clone(),
    }
}

/// The fields as they stood at `version`, from the history (latest value at or before it).
/// Stored rows were decoded when loaded (`cases::history_many`) and this batch's rows come from
/// validated operations, so a value that does not decode cannot occur here.
fn fields_at(history: &[HistoryRow], version: i64, current: &CaseFields) -> CaseFields {
    let mut out = current.clone();
    for field in CaseField::ALL {
        let value = history
            .iter()
            .filter(|h| h.field == field.as_str() && h.version <= version)
            .max_by_key(|h| h.version)
            .and_then(|h| cases::decode_history_value(&h.field, &h.value).ok());
        match value {
            Some(HistoryValue::CategoryCode(v)) => out.category_code = v,
            Some(HistoryValue::Description(v)) => out.description = v,
            Some(HistoryValue::Severity(v)) => out.severity = v,
            Some(HistoryValue::AssetCode(v)) => out.asset_code = v,
            None => {}
        }
    }
    out
}
