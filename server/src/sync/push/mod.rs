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
use gridline_sync::case::{CaseField, CaseSource, CaseState};
use gridline_sync::conflict::{resolve_edit, CaseFields, ChangedBy, EditContext, Editor};
use gridline_sync::ops::{
    CaseCommentV1, CaseCreateV1, CaseEditV1, CaseTransitionV1, CaseVerifyV1, NoticeReadV1,
    PhotoManifest, PhotoRole, RoundChecklistV1, RoundFinishV1, RoundStartV2, RoundTrackV1,
};
use gridline_sync::plan::Checklist;
use gridline_sync::signing::{check_chain, decode_public_key, op_hash, verify_operation};
use gridline_sync::workflow::{check_transition, TransitionActor};
use gridline_sync::{
    ConflictRecord, EntityKind, ErrorCode, OpResult, OpStatus, Operation, OperationBody,
    PushRequest, PushResponse, Receipt, ResendFrom, Role, SignedOperation,
};
use serde_json::json;
use uuid::Uuid;

use crate::access::{AuthUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::model::Zone;
use crate::recurrence::Recurrence;
use crate::store::cases::{
    self, CaseRow, ConflictRow, EventRow, HistoryRow, HistoryValue, PhotoRow,
};
use crate::store::changes::{self, PendingChange};
use crate::store::plans::PlanRow;
use crate::store::sync::{self as sync_store, RejectionRow, RoundRow, SyncOpRow};
use crate::store::{devices, ms_from_time, new_id, now_ms, reference, review, WriteTx};
use crate::sync::SyncService;

mod batch;
mod case_ops;
mod notice_ops;
mod round_ops;

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
    /// Stored rounds given a checklist or a track by the batch.
    rounds_recorded: Vec<Uuid>,
    /// The plans of the rounds the batch refers to or starts.
    plans: HashMap<Uuid, PlanEntry>,
    /// The notices the batch's read receipts name that are in the caller's inbox, as they
    /// stand so far.
    inbox: HashMap<Uuid, InboxEntry>,
    /// Read receipts to record: the notice and when it was read.
    reads: Vec<(Uuid, i64)>,
    // Write set, flushed at the end.
    ops: Vec<SyncOpRow>,
    new_history: Vec<HistoryRow>,
    photos: Vec<PhotoRow>,
    events: Vec<EventRow>,
    conflicts: Vec<ConflictRow>,
    rejections: Vec<RejectionRow>,
    changes: Vec<PendingChange>,
}

/// A plan a round of the batch is made for, with what its rules need decoded.
struct PlanEntry {
    row: PlanRow,
    checklist: Checklist,
    recurrence: Recurrence,
}

impl PlanEntry {
    /// Decodes a stored plan; its recurrence and checklist were checked when it was made.
    fn new(row: PlanRow) -> ApiResult<Self> {
        let checklist = serde_json::from_str(&row.checklist)
            .map_err(|e| ApiError::internal(format!("plan {} checklist: {e}", row.id)))?;
        let recurrence = Recurrence::parse(&row.rrule, &row.dtstart, &row.time_zone)
            .map_err(|e| ApiError::internal(format!("plan {}: {}", row.id, e.message)))?;
        Ok(Self {
            row,
            checklist,
            recurrence,
        })
    }
}

/// A notice in the caller's inbox, for `notice.read@1`.
struct InboxEntry {
    created_at: i64,
    read_at: Option<i64>,
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

/// A round's version: 1 once started, plus one for each of its finish, checklist and track.
fn round_version(round: &RoundRow) -> i64 {
    1 + i64::from(round.finished_at.is_some())
        + i64::from(round.checklist.is_some())
        + i64::from(round.track.is_some())
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
