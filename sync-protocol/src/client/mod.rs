//! The reference phone client: a durable outbox in SQLite and the sync loop.
//!
//! - [`Client::capture`] queues an operation offline; when it returns, the operation is saved.
//! - [`Client::sync`] pushes the queue in batches (retrying transient failures with backoff,
//!   honouring `resend_from`), records every result and receipt, then pulls until `has_more` is
//!   false, handling `reset_required`.
//! - [`Client::upload_photos`] (part of `sync`, after the push) uploads the photos of
//!   acknowledged operations with tus, resuming interrupted uploads (see [`upload`]).
//! - [`Client::inbox`] lists the user's notices as last pulled; [`Client::mark_read`] queues a
//!   read receipt (`notice.read@1`) offline, shown read at once and pushed on the next sync.
//! - [`Client::plans`] lists the inspection plans the user is assigned to, as last pulled;
//!   [`Client::start_plan_round`] (`round.start@2`), [`Client::submit_checklist`]
//!   (`round.checklist@1`, its photos uploaded like a case's) and [`Client::record_track`]
//!   (`round.track@1`) queue a plan's round offline.
//!
//! The Kotlin and Swift apps implement the same behaviour; `PROTOCOL.md` is their specification.

pub mod backoff;
pub mod store;
pub mod transport;
pub mod upload;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io::Read as _;
use std::path::Path;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::case::ConflictRecord;
use crate::error::ErrorCode;
use crate::ops::{
    ChecklistResponse, NoticeReadV1, Operation, OperationError, PhotoManifest, PhotoRole,
    RoundChecklistV1, RoundStartV2, RoundTrackV1,
};
use crate::plan::PlanView;
use crate::signing::{decode_public_key, encode_public_key, GENESIS_HASH};
use crate::validation::ValidationErrors;
use crate::wire::{
    EnrolDeviceRequest, EntityKind, LoginRequest, OpStatus, PullQuery, PushRequest, PushResponse,
    RefreshRequest, DEFAULT_PULL_LIMIT, MAX_BATCH_BYTES, MAX_BATCH_OPS, PROTOCOL_VERSION,
};

pub use backoff::{RecordingSleeper, RetryPolicy, Sleeper, TokioSleeper};
pub use store::{
    Identity, LocalPhoto, MirrorEntity, OutboxEntry, OutboxState, PhotoCounts, PhotoState,
    PhotoUpload, Store, StoreError, StoredReceipt,
};
pub use transport::{HttpTransport, Transport, TransportError};
pub use upload::{
    ChunkSizer, UploadChunk, UploadCreated, UploadReport, DEFAULT_UPLOAD_CHUNK, MIN_UPLOAD_CHUNK,
};

/// What can go wrong in the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("invalid operation: {0}")]
    Invalid(#[from] OperationError),
    #[error("this device is not enrolled; run enrol first")]
    NotEnrolled,
    #[error("this store already belongs to device {0}")]
    AlreadyEnrolled(Uuid),
    #[error("the session expired; log in again")]
    LoginRequired,
    #[error("this device was revoked by the server")]
    DeviceRevoked,
    #[error("the server needs a newer app (protocol {PROTOCOL_VERSION} is not supported); the queue is kept")]
    UpgradeRequired,
    #[error("the server claims operations this phone never made (resend from {resend_from}, last seq {last_seq})")]
    ServerAhead { resend_from: u64, last_seq: u64 },
    #[error("the server made no progress on the queue")]
    NoProgress,
    #[error("photo {path}: {message}")]
    Photo { path: String, message: String },
}

/// What one push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    pub requests: u32,
    pub acked: u64,
    pub conflicts: u64,
    pub rejected: u64,
    /// The server asked for a resend from this seq (last time, if several).
    pub resent_from: Option<u64>,
    /// The server's sequence was behind ours (e.g. restored from backup).
    pub server_was_behind: bool,
    /// Some receipt failed verification or did not match our chain.
    pub unverified_receipt: bool,
}

/// What one pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    pub pages: u32,
    pub changes: u64,
    /// The server answered `reset_required`; the mirror was rebuilt.
    pub reset: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub push: PushReport,
    pub upload: UploadReport,
    pub pull: PullReport,
}

/// The client's state at a glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub device_id: Uuid,
    pub server_url: String,
    pub username: Option<String>,
    pub enrolled: bool,
    pub last_seq: u64,
    pub last_hash: String,
    pub pending: u64,
    pub acked: u64,
    pub conflicts: u64,
    pub rejected: u64,
    pub deferred: u64,
    pub last_receipt: Option<StoredReceipt>,
    pub clock_skew_ms: Option<i64>,
    pub cursor: Option<String>,
    pub photos: PhotoCounts,
    /// Photos the server refused for good, with why.
    pub refused_photos: Vec<PhotoUpload>,
}

/// A notice of the user's inbox, as last pulled, with the phone's own reading.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    pub id: Uuid,
    /// `case.dispatched`, `case.returned`, … (the server's `NoticeView.kind`).
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub zone_id: Option<Uuid>,
    pub data: serde_json::Value,
    pub created_at: OffsetDateTime,
    /// When it was read: the server's receipt, else the phone's own queued one.
    pub read_at: Option<OffsetDateTime>,
    /// Read on this phone, and the receipt not pushed and pulled back yet.
    pub read_pending: bool,
}

/// An operation of ours that the server answered with a conflict or a rejection.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConflict {
    pub seq: u64,
    pub op_id: Uuid,
    pub op_type: String,
    pub status: OpStatus,
    pub code: Option<ErrorCode>,
    pub message: Option<String>,
    pub records: Vec<ConflictRecord>,
}

/// Computes a photo's manifest from its file: SHA-256 and size, streamed.
pub fn photo_from_file(
    path: &Path,
    role: PhotoRole,
    captured_at: OffsetDateTime,
) -> Result<LocalPhoto, ClientError> {
    let err = |e: std::io::Error| ClientError::Photo {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(LocalPhoto {
        path: path.display().to_string(),
        manifest: PhotoManifest {
            sha256: hex::encode(hasher.finalize()),
            size,
            captured_at,
            gps: None,
            role,
        },
    })
}

/// The phone client.
pub struct Client<T, S = TokioSleeper> {
    store: Store,
    transport: T,
    sleeper: S,
    policy: RetryPolicy,
    upload_chunk: u64,
}

impl<T: Transport, S: Sleeper> Client<T, S> {
    pub fn new(store: Store, transport: T, sleeper: S) -> Self {
        Self {
            store,
            transport,
            sleeper,
            policy: RetryPolicy::default(),
            upload_chunk: DEFAULT_UPLOAD_CHUNK,
        }
    }

    /// The largest upload `PATCH`, bytes (at least 1); smaller on a slow link.
    pub fn with_upload_chunk(mut self, bytes: u64) -> Self {
        self.upload_chunk = bytes.max(1);
        self
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    async fn identity(&self) -> Result<Identity, ClientError> {
        self.store.identity().await?.ok_or(ClientError::NotEnrolled)
    }

    /// The identity, which must be confirmed by the server (for talking to it).
    async fn enrolled_identity(&self) -> Result<Identity, ClientError> {
        let identity = self.identity().await?;
        if identity.enrolled {
            Ok(identity)
        } else {
            Err(ClientError::NotEnrolled)
        }
    }

    /// Enrols this phone: logs in, creates (or reuses, on retry) the device id and key, registers
    /// the public key and stores the device-bound tokens and the server's receipt key.
    ///
    /// The key is stored before the server is asked, so a lost response is retried with the same
    /// device id and key (enrolment is idempotent on the server).
    pub async fn enrol(
        &self,
        server_url: &str,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<Identity, ClientError> {
        let mut identity = match self.store.identity().await? {
            Some(id) if id.enrolled => return Err(ClientError::AlreadyEnrolled(id.device_id)),
            Some(id) => id,
            None => {
                let id = Identity {
                    device_id: Uuid::now_v7(),
                    signing_key: SigningKey::generate(&mut rand::rngs::OsRng),
                    server_url: server_url.to_owned(),
                    device_name: device_name.to_owned(),
                    enrolled: false,
                    user_id: None,
                    username: Some(username.to_owned()),
                    access_token: None,
                    refresh_token: None,
                    receipt_key_id: None,
                    receipt_public_key: None,
                };
                self.store.save_identity(&id).await?;
                id
            }
        };
        let login = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_id: None,
        };
        let tokens = self.retrying(|| self.transport.login(&login)).await?;
        let req = EnrolDeviceRequest {
            device_id: identity.device_id,
            public_key: encode_public_key(&identity.signing_key.verifying_key()),
            name: identity.device_name.clone(),
        };
        let enrolled = self
            .retrying(|| self.transport.enrol(tokens.access_token.clone(), &req))
            .await?;
        identity.enrolled = true;
        identity.user_id = Some(enrolled.tokens.user.id);
        identity.username = Some(enrolled.tokens.user.username.clone());
        identity.access_token = Some(enrolled.tokens.access_token.clone());
        identity.refresh_token = Some(enrolled.tokens.refresh_token.clone());
        identity.receipt_key_id = Some(enrolled.receipt_key.key_id.clone());
        identity.receipt_public_key = Some(enrolled.receipt_key.public_key.clone());
        self.store.save_identity(&identity).await?;
        Ok(identity)
    }

    /// Logs in again (e.g. after the refresh token expired) with tokens bound to this device.
    pub async fn login(&self, password: &str) -> Result<(), ClientError> {
        let identity = self.identity().await?;
        let req = LoginRequest {
            username: identity.username.clone().unwrap_or_default(),
            password: password.to_owned(),
            device_id: Some(identity.device_id),
        };
        let tokens = self.retrying(|| self.transport.login(&req)).await?;
        self.store.set_tokens(&tokens).await?;
        Ok(())
    }

    /// Validates and queues an operation. When this returns `Ok`, the operation is saved: it is
    /// committed to disk with its seq, chain hash and signature.
    pub async fn capture(
        &self,
        op: Operation,
        photos: &[LocalPhoto],
    ) -> Result<OutboxEntry, ClientError> {
        op.validate().map_err(OperationError::Invalid)?;
        let identity = self.identity().await?;
        Ok(self
            .store
            .append(
                &identity.signing_key,
                identity.device_id,
                &op,
                photos,
                OffsetDateTime::now_utc(),
            )
            .await?)
    }

    /// Pushes the queue, uploads the photos of acknowledged operations, then pulls. Push comes
    /// first so that a reset never loses anything, and so that the server knows the photos'
    /// hashes before their bytes arrive.
    pub async fn sync(&self) -> Result<SyncReport, ClientError> {
        let push = self.push().await?;
        let upload = self.upload_photos().await?;
        let pull = self.pull().await?;
        Ok(SyncReport { push, upload, pull })
    }

    /// Retries transient failures with backoff; returns other errors at once.
    async fn retrying<R, F, Fut>(&self, mut call: F) -> Result<R, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R, TransportError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_transient() && attempt + 1 < self.policy.max_attempts => {
                    let wait = self
                        .policy
                        .delay(attempt, e.retry_after(), rand::random::<f64>());
                    self.sleeper.sleep(wait).await;
                    attempt += 1;
                }
                Err(TransportError::UpgradeRequired(_)) => {
                    return Err(ClientError::UpgradeRequired)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Like [`Self::retrying`], with the stored access token, refreshing it once on 401.
    async fn authorised<R, F, Fut>(&self, call: F) -> Result<R, ClientError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<R, TransportError>>,
    {
        self.authorised_with(true, call).await
    }

    /// [`Self::authorised`], with retries of transient failures (`retry`) or without them
    /// (the caller handles those itself).
    async fn authorised_with<R, F, Fut>(&self, retry: bool, mut call: F) -> Result<R, ClientError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<R, TransportError>>,
    {
        let mut refreshed = false;
        loop {
            let token = self.identity().await?.access_token.unwrap_or_default();
            let result = if retry {
                self.retrying(|| call(token.clone())).await
            } else {
                call(token.clone()).await.map_err(|e| match e {
                    TransportError::UpgradeRequired(_) => ClientError::UpgradeRequired,
                    e => e.into(),
                })
            };
            match result {
                Err(ClientError::Transport(TransportError::Unauthenticated(body))) => {
                    match body.code {
                        ErrorCode::DeviceRevoked => return Err(ClientError::DeviceRevoked),
                        _ if refreshed => return Err(ClientError::LoginRequired),
                        _ => {
                            self.refresh().await?;
                            refreshed = true;
                        }
                    }
                }
                other => return other,
            }
        }
    }

    async fn refresh(&self) -> Result<(), ClientError> {
        let identity = self.identity().await?;
        let Some(refresh_token) = identity.refresh_token else {
            return Err(ClientError::LoginRequired);
        };
        let req = RefreshRequest { refresh_token };
        match self.retrying(|| self.transport.refresh(&req)).await {
            Ok(tokens) => {
                self.store.set_tokens(&tokens).await?;
                Ok(())
            }
            Err(ClientError::Transport(TransportError::Unauthenticated(body)))
                if body.code == ErrorCode::DeviceRevoked =>
            {
                Err(ClientError::DeviceRevoked)
            }
            Err(ClientError::Transport(TransportError::Unauthenticated(_))) => {
                Err(ClientError::LoginRequired)
            }
            Err(e) => Err(e),
        }
    }

    /// Pushes every pending operation, in `seq` order, in batches.
    pub async fn push(&self) -> Result<PushReport, ClientError> {
        let identity = self.enrolled_identity().await?;
        let receipt_key = identity
            .receipt_public_key
            .as_deref()
            .and_then(|k| decode_public_key(k).ok());
        let mut report = PushReport::default();
        let mut resends = 0;
        loop {
            let batch = self
                .store
                .pending_batch(MAX_BATCH_OPS, MAX_BATCH_BYTES - 1024)
                .await?;
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                break;
            };
            let (first_seq, last_seq) = (first.seq, last.seq);
            let acked_through = self.store.acked_through().await?;
            let req = PushRequest {
                protocol: PROTOCOL_VERSION,
                device_id: identity.device_id,
                device_time: OffsetDateTime::now_utc(),
                operations: batch.iter().map(|e| e.signed.clone()).collect(),
                acked_through: (acked_through > 0).then_some(acked_through),
            };
            report.requests += 1;
            match self
                .authorised(|token| self.transport.push(token, &req))
                .await
            {
                Ok(response) => {
                    let local_last = self.store.counts().await?.last_seq;
                    if response.acked_through > local_last {
                        return Err(ClientError::ServerAhead {
                            resend_from: response.acked_through + 1,
                            last_seq: local_last,
                        });
                    }
                    let verified = self.check_receipt(&response, receipt_key.as_ref()).await?;
                    report.unverified_receipt |= !verified;
                    self.store
                        .record_push(&response, verified, OffsetDateTime::now_utc())
                        .await?;
                    for r in &response.results {
                        match r.effective_status() {
                            OpStatus::Conflict => report.conflicts += 1,
                            OpStatus::Rejected => report.rejected += 1,
                            _ => {}
                        }
                    }
                    let acked_in_batch = response
                        .acked_through
                        .min(last_seq)
                        .saturating_sub(first_seq - 1);
                    report.acked += acked_in_batch;
                    if acked_in_batch == 0 {
                        return Err(ClientError::NoProgress);
                    }
                }
                Err(ClientError::Transport(TransportError::Resend { code, resend_from })) => {
                    resends += 1;
                    let local_last = self.store.counts().await?.last_seq;
                    if resend_from == 0 || resend_from > local_last + 1 {
                        return Err(ClientError::ServerAhead {
                            resend_from,
                            last_seq: local_last,
                        });
                    }
                    if resends > 3 {
                        return Err(ClientError::NoProgress);
                    }
                    if code == ErrorCode::SequenceBehind || resend_from <= acked_through {
                        report.server_was_behind = true;
                    }
                    self.store.mark_pending_from(resend_from).await?;
                    report.resent_from = Some(resend_from);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// A receipt counts as verified when its signature checks out with the key pinned at
    /// enrolment and it names our own hash at `acked_through`.
    async fn check_receipt(
        &self,
        response: &PushResponse,
        key: Option<&ed25519_dalek::VerifyingKey>,
    ) -> Result<bool, ClientError> {
        let receipt = &response.receipt;
        let Some(key) = key else {
            return Ok(false);
        };
        if receipt.verify(key).is_err() || receipt.acked_through != response.acked_through {
            return Ok(false);
        }
        let ours = if receipt.acked_through == 0 {
            Some(GENESIS_HASH.to_owned())
        } else {
            self.store.hash_at(receipt.acked_through).await?
        };
        Ok(ours.as_deref() == Some(receipt.last_hash.as_str()))
    }

    /// Pulls until `has_more` is false. On `reset_required`: pushes first, drops the mirror and
    /// the cursor, and pulls from scratch (once per call).
    pub async fn pull(&self) -> Result<PullReport, ClientError> {
        self.enrolled_identity().await?;
        let mut report = PullReport::default();
        loop {
            let query = PullQuery {
                protocol: PROTOCOL_VERSION,
                cursor: self.store.cursor().await?,
                limit: Some(DEFAULT_PULL_LIMIT),
                inbox: Some(true),
                plans: Some(true),
            };
            match self
                .authorised(|token| self.transport.pull(token, &query))
                .await
            {
                Ok(page) => {
                    report.pages += 1;
                    report.changes += page.changes.len() as u64;
                    self.store
                        .apply_pull(&page.changes, &page.cursor, OffsetDateTime::now_utc())
                        .await?;
                    if !page.has_more {
                        break;
                    }
                }
                Err(ClientError::Transport(TransportError::ResetRequired)) if !report.reset => {
                    self.push().await?;
                    self.store.reset_mirror().await?;
                    report.reset = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        let identity = self.identity().await?;
        let counts = self.store.counts().await?;
        Ok(Status {
            device_id: identity.device_id,
            server_url: identity.server_url,
            username: identity.username,
            enrolled: identity.enrolled,
            last_seq: counts.last_seq,
            last_hash: counts.last_hash.unwrap_or_else(|| GENESIS_HASH.to_owned()),
            pending: counts.pending,
            acked: counts.acked,
            conflicts: counts.conflict,
            rejected: counts.rejected,
            deferred: counts.deferred,
            last_receipt: self.store.last_receipt().await?,
            clock_skew_ms: self.store.clock_skew_ms().await?,
            cursor: self.store.cursor().await?,
            photos: self.store.photo_counts().await?,
            refused_photos: self.store.refused_photos().await?,
        })
    }

    /// Our operations that the server answered with a conflict or a rejection, with records.
    /// (Conflicts the server records on cases in our scope also arrive by pull, as
    /// `conflict` entities: see [`Self::mirror`].)
    pub async fn conflicts(&self) -> Result<Vec<LocalConflict>, ClientError> {
        Ok(self
            .store
            .problem_entries()
            .await?
            .into_iter()
            .filter_map(|e| {
                let result = e.result?;
                Some(LocalConflict {
                    seq: e.seq,
                    op_id: e.op_id,
                    op_type: e.op_type,
                    status: result.effective_status(),
                    code: result.code,
                    message: result.message,
                    records: result.conflicts,
                })
            })
            .collect())
    }

    /// The user's inbox as last pulled, newest first, each notice with its read receipt: the
    /// server's, or one this phone queued that the server has not confirmed yet.
    pub async fn inbox(&self) -> Result<Vec<InboxItem>, ClientError> {
        let queued = self.store.queued_reads().await?;
        let mut items = Vec::new();
        for m in self.store.mirror_list(EntityKind::Notice).await? {
            let field = |k: &str| m.data.get(k).cloned().unwrap_or(serde_json::Value::Null);
            let parse = |k: &str| -> Result<Option<OffsetDateTime>, StoreError> {
                match field(k).as_str() {
                    None => Ok(None),
                    Some(t) => {
                        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                            .map(Some)
                            .map_err(|e| StoreError::Corrupt(format!("notice {}: {k}: {e}", m.id)))
                    }
                }
            };
            let uuid = |k: &str| field(k).as_str().and_then(|t| Uuid::parse_str(t).ok());
            let id = Uuid::parse_str(&m.id)
                .map_err(|e| StoreError::Corrupt(format!("notice id {}: {e}", m.id)))?;
            let server_read = parse("read_at")?;
            let local_read = queued.get(&id).copied();
            items.push(InboxItem {
                id,
                kind: field("kind").as_str().unwrap_or_default().to_owned(),
                case_id: uuid("case_id"),
                zone_id: uuid("zone_id"),
                data: field("data"),
                created_at: parse("created_at")?.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                read_at: server_read.or(local_read),
                read_pending: server_read.is_none() && local_read.is_some(),
            });
        }
        items.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
        Ok(items)
    }

    /// Marks a notice of the inbox read, offline: queues `notice.read@1` with the phone's
    /// time. The server records the first reading (here or on the console) and answers
    /// `notice_not_found` for a notice that is not the user's.
    pub async fn mark_read(&self, notice_id: Uuid) -> Result<OutboxEntry, ClientError> {
        self.capture(
            Operation::NoticeReadV1(NoticeReadV1 {
                notice_id,
                read_at: OffsetDateTime::now_utc(),
            }),
            &[],
        )
        .await
    }

    /// The inspection plans the user is assigned to, as last pulled (a plan the user is taken
    /// off arrives as a tombstone and is gone from here), by name.
    pub async fn plans(&self) -> Result<Vec<PlanView>, ClientError> {
        let mut plans = self
            .store
            .mirror_list(EntityKind::Plan)
            .await?
            .into_iter()
            .map(|m| {
                serde_json::from_value::<PlanView>(m.data)
                    .map_err(|e| StoreError::Corrupt(format!("plan {}: {e}", m.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        plans.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        Ok(plans)
    }

    /// Starts a round for the occurrence of `plan` that starts at `occurrence_at` (one of
    /// the plan's `upcoming[].starts_at`), in `zone_id`, offline: queues `round.start@2` with
    /// the plan's kind. Returns the new round's id.
    pub async fn start_plan_round(
        &self,
        plan: &PlanView,
        zone_id: Uuid,
        occurrence_at: OffsetDateTime,
    ) -> Result<(Uuid, OutboxEntry), ClientError> {
        let round_id = Uuid::now_v7();
        let entry = self
            .capture(
                Operation::RoundStartV2(RoundStartV2 {
                    round_id,
                    zone_id,
                    kind: plan.kind,
                    started_at: OffsetDateTime::now_utc(),
                    plan_id: Some(plan.id),
                    occurrence_at: Some(occurrence_at),
                }),
                &[],
            )
            .await?;
        Ok((round_id, entry))
    }

    /// Queues `plan`'s checklist as completed on round `round_id`, offline: each answer with
    /// the files of its `before` photos (which become the response's `photos`). Checked
    /// against the plan's template first, as the server will. The photos upload on sync like
    /// a case's: a failed item with a category becomes a case that declares them.
    pub async fn submit_checklist(
        &self,
        plan: &PlanView,
        round_id: Uuid,
        answers: Vec<(ChecklistResponse, Vec<LocalPhoto>)>,
    ) -> Result<OutboxEntry, ClientError> {
        let mut responses = Vec::with_capacity(answers.len());
        let mut files = Vec::new();
        for (mut response, photos) in answers {
            response.photos = photos.iter().map(|p| p.manifest.clone()).collect();
            files.extend(photos);
            responses.push(response);
        }
        let mut e = ValidationErrors::new();
        crate::plan::check_against_template(&plan.checklist, &responses, "responses", &mut e);
        e.into_result().map_err(OperationError::Invalid)?;
        self.capture(
            Operation::RoundChecklistV1(RoundChecklistV1 {
                round_id,
                completed_at: OffsetDateTime::now_utc(),
                responses,
            }),
            &files,
        )
        .await
    }

    /// Queues the track of round `round_id`, the positions (`(lat, lon)`, WGS-84) sampled
    /// during it, offline (`round.track@1`).
    pub async fn record_track(
        &self,
        round_id: Uuid,
        positions: &[(f64, f64)],
    ) -> Result<OutboxEntry, ClientError> {
        let track = RoundTrackV1::encode(round_id, positions).map_err(|message| {
            let mut e = ValidationErrors::new();
            e.push("polyline", message);
            OperationError::Invalid(e)
        })?;
        self.capture(Operation::RoundTrackV1(track), &[]).await
    }

    /// The mirrored server state of one kind.
    pub async fn mirror(&self, entity: EntityKind) -> Result<Vec<MirrorEntity>, ClientError> {
        Ok(self.store.mirror_list(entity).await?)
    }
}
