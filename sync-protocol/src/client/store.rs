//! The phone's durable state in one SQLite file: identity, the outbox, receipts, the mirror of
//! server state, the pull cursor and declared photos.
//!
//! The file runs in WAL mode with `synchronous=FULL`, so a committed transaction survives power
//! loss. Capturing an operation (next `seq`, `prev` hash, signature, photos) is one `BEGIN
//! IMMEDIATE` transaction: only after it commits is the operation "saved". A trigger makes the
//! database itself refuse to delete an unacknowledged operation.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row as _;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ops::{Operation, PhotoManifest};
use crate::signing::{op_hash, sign_operation, GENESIS_HASH};
use crate::wire::{
    Change, EntityKind, OpResult, OpStatus, OperationBody, PushResponse, Receipt, SignedOperation,
    TokenResponse,
};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(crate) const SCHEMA_V1: &str = r#"
CREATE TABLE identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    device_id TEXT NOT NULL,
    -- The Ed25519 secret key. A production phone keeps it in the platform keystore instead.
    signing_key BLOB NOT NULL CHECK (length(signing_key) = 32),
    server_url TEXT NOT NULL,
    device_name TEXT NOT NULL,
    enrolled INTEGER NOT NULL DEFAULT 0,
    user_id TEXT,
    username TEXT,
    access_token TEXT,
    refresh_token TEXT,
    receipt_key_id TEXT,
    receipt_public_key TEXT
);

CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY CHECK (seq >= 1),
    op_id TEXT NOT NULL UNIQUE,
    op_type TEXT NOT NULL,
    op TEXT NOT NULL,
    sig TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'acked')),
    status TEXT,
    result TEXT,
    queued_at TEXT NOT NULL
);

-- Unacknowledged operations are never deleted, and signed text never changes.
CREATE TRIGGER outbox_keep_pending BEFORE DELETE ON outbox WHEN OLD.state = 'pending'
BEGIN SELECT RAISE(ABORT, 'unacknowledged operations are never deleted'); END;
CREATE TRIGGER outbox_immutable BEFORE UPDATE OF seq, op_id, op, sig, hash ON outbox
BEGIN SELECT RAISE(ABORT, 'signed operations are immutable'); END;

CREATE TABLE receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    acked_through INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    server_time TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    -- 1: signature verifies with the pinned key and last_hash matches our own chain.
    verified INTEGER NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE mirror (
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (entity, id)
);

CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cursor TEXT,
    clock_skew_ms INTEGER,
    last_push_at TEXT,
    last_pull_at TEXT
);
INSERT INTO sync_state (id) VALUES (1);

CREATE TABLE photos (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    seq INTEGER NOT NULL REFERENCES outbox (seq),
    upload_state TEXT NOT NULL DEFAULT 'pending' CHECK (upload_state IN ('pending', 'uploaded'))
);

PRAGMA user_version = 1;
"#;

/// Version 2: photo uploads are resumable across restarts (the tus upload URL and the offset the
/// server last confirmed are kept), and a photo the server refused for good says why.
const SCHEMA_V2: &str = r#"
CREATE TABLE photos_v2 (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    seq INTEGER NOT NULL REFERENCES outbox (seq),
    upload_state TEXT NOT NULL DEFAULT 'pending'
        CHECK (upload_state IN ('pending', 'uploaded', 'refused')),
    -- The tus upload (`Location` of its creation), once created.
    upload_url TEXT,
    -- The offset the server last confirmed for that upload.
    upload_offset INTEGER NOT NULL DEFAULT 0,
    -- Why the server refused the photo for good (an error code) and what it said.
    error_code TEXT,
    error_message TEXT
);
INSERT INTO photos_v2 (sha256, path, size, seq, upload_state)
    SELECT sha256, path, size, seq, upload_state FROM photos;
DROP TABLE photos;
ALTER TABLE photos_v2 RENAME TO photos;

PRAGMA user_version = 2;
"#;

/// What the phone knows about itself.
#[derive(Clone)]
pub struct Identity {
    pub device_id: Uuid,
    pub signing_key: SigningKey,
    pub server_url: String,
    pub device_name: String,
    /// The server confirmed the enrolment.
    pub enrolled: bool,
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub receipt_key_id: Option<String>,
    /// Base64 Ed25519 key that signs receipts, pinned at enrolment.
    pub receipt_public_key: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never print.
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .field("server_url", &self.server_url)
            .field("enrolled", &self.enrolled)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether the server has acknowledged an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Acked,
}

/// One operation in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub seq: u64,
    pub op_id: Uuid,
    pub op_type: String,
    pub signed: SignedOperation,
    pub hash: String,
    pub state: OutboxState,
    /// The server's result, once it sent one.
    pub result: Option<OpResult>,
    pub queued_at: OffsetDateTime,
}

/// A receipt as kept by the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    pub receipt: Receipt,
    pub verified: bool,
    pub received_at: OffsetDateTime,
}

/// One entity of the server-state mirror.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorEntity {
    pub entity: EntityKind,
    pub id: String,
    pub version: i64,
    pub data: serde_json::Value,
}

/// Counts for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub acked: u64,
    pub conflict: u64,
    pub rejected: u64,
    pub deferred: u64,
    pub last_seq: u64,
    pub last_hash: Option<String>,
}

/// Where a declared photo stands in its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoState {
    /// Not on the server yet (or not confirmed verified).
    Pending,
    /// The server verified the whole file.
    Uploaded,
    /// The server refused it for good (`error_code` says why); it is not tried again.
    Refused,
}

impl PhotoState {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoState::Pending => "pending",
            PhotoState::Uploaded => "uploaded",
            PhotoState::Refused => "refused",
        }
    }
}

impl FromStr for PhotoState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(PhotoState::Pending),
            "uploaded" => Ok(PhotoState::Uploaded),
            "refused" => Ok(PhotoState::Refused),
            other => Err(corrupt(other)),
        }
    }
}

/// A declared photo file and its upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoUpload {
    pub sha256: String,
    pub path: String,
    pub size: u64,
    /// The operation that declared it.
    pub seq: u64,
    pub state: PhotoState,
    /// The tus upload URL, once created (kept so that a restart resumes it).
    pub upload_url: Option<String>,
    /// The offset the server last confirmed.
    pub offset: u64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The declaring operation's status from the server (`applied`, `deferred`, …), if known.
    pub op_status: Option<String>,
}

/// Photo counts for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhotoCounts {
    pub pending: u64,
    pub uploaded: u64,
    pub refused: u64,
}

/// A photo file declared by a queued operation.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPhoto {
    pub path: String,
    pub manifest: PhotoManifest,
}

fn fmt_time(t: OffsetDateTime) -> Result<String, StoreError> {
    t.format(&Rfc3339).map_err(corrupt)
}

fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(corrupt)
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(corrupt)
}

fn seq_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(corrupt)
}

fn seq_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(corrupt)
}

/// The durable phone store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // One connection: the client's writes are serialised in-process, and `BEGIN IMMEDIATE`
        // serialises them against other processes.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        match version {
            0 => {
                sqlx::raw_sql(SCHEMA_V1).execute(&mut *tx).await?;
                sqlx::raw_sql(SCHEMA_V2).execute(&mut *tx).await?;
            }
            1 => {
                sqlx::raw_sql(SCHEMA_V2).execute(&mut *tx).await?;
            }
            2 => {}
            other => {
                return Err(StoreError::Corrupt(format!(
                    "store schema version {other} is newer than this client"
                )))
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // -- identity ------------------------------------------------------------------------------

    pub async fn identity(&self) -> Result<Option<Identity>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM identity WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let key: Vec<u8> = row.try_get("signing_key")?;
        let key: [u8; 32] = key.try_into().map_err(|_| corrupt("signing key length"))?;
        let user_id: Option<String> = row.try_get("user_id")?;
        Ok(Some(Identity {
            device_id: parse_uuid(row.try_get("device_id")?)?,
            signing_key: SigningKey::from_bytes(&key),
            server_url: row.try_get("server_url")?,
            device_name: row.try_get("device_name")?,
            enrolled: row.try_get("enrolled")?,
            user_id: user_id.as_deref().map(parse_uuid).transpose()?,
            username: row.try_get("username")?,
            access_token: row.try_get("access_token")?,
            refresh_token: row.try_get("refresh_token")?,
            receipt_key_id: row.try_get("receipt_key_id")?,
            receipt_public_key: row.try_get("receipt_public_key")?,
        }))
    }

    /// Creates or replaces the identity.
    pub async fn save_identity(&self, id: &Identity) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO identity (id, device_id, signing_key, server_url, device_name, \
             enrolled, user_id, username, access_token, refresh_token, receipt_key_id, \
             receipt_public_key) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.device_id.to_string())
        .bind(id.signing_key.to_bytes().to_vec())
        .bind(&id.server_url)
        .bind(&id.device_name)
        .bind(id.enrolled)
        .bind(id.user_id.map(|u| u.to_string()))
        .bind(&id.username)
        .bind(&id.access_token)
        .bind(&id.refresh_token)
        .bind(&id.receipt_key_id)
        .bind(&id.receipt_public_key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores fresh tokens (after login or refresh).
    pub async fn set_tokens(&self, tokens: &TokenResponse) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE identity SET access_token = ?, refresh_token = ?, user_id = ?, username = ? \
             WHERE id = 1",
        )
        .bind(&tokens.access_token)
        .bind(&tokens.refresh_token)
        .bind(tokens.user.id.to_string())
        .bind(&tokens.user.username)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // -- outbox --------------------------------------------------------------------------------

    /// Queues `op`: assigns the next `seq`, links it to the previous operation's hash, signs it
    /// and records its photos, all in one transaction. When this returns `Ok` the operation is
    /// saved.
    pub async fn append(
        &self,
        key: &SigningKey,
        device_id: Uuid,
        op: &Operation,
        photos: &[LocalPhoto],
        queued_at: OffsetDateTime,
    ) -> Result<OutboxEntry, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let last = sqlx::query("SELECT seq, hash FROM outbox ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match last {
            Some(row) => (
                seq_u64(row.try_get("seq")?)? + 1,
                row.try_get::<String, _>("hash")?,
            ),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let body = OperationBody {
            op_id: Uuid::now_v7(),
            device_id,
            seq,
            prev,
            op_type: op.op_type().to_owned(),
            queued_at,
            payload: op.payload(),
        };
        let signed = sign_operation(key, &body);
        let hash = op_hash(&signed.op);
        sqlx::query(
            "INSERT INTO outbox (seq, op_id, op_type, op, sig, hash, state, queued_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        )
        .bind(seq_i64(seq)?)
        .bind(body.op_id.to_string())
        .bind(&body.op_type)
        .bind(&signed.op)
        .bind(&signed.sig)
        .bind(&hash)
        .bind(fmt_time(queued_at)?)
        .execute(&mut *tx)
        .await?;
        for photo in photos {
            sqlx::query(
                "INSERT INTO photos (sha256, path, size, seq) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&photo.manifest.sha256)
            .bind(&photo.path)
            .bind(i64::try_from(photo.manifest.size).map_err(corrupt)?)
            .bind(seq_i64(seq)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(OutboxEntry {
            seq,
            op_id: body.op_id,
            op_type: body.op_type,
            signed,
            hash,
            state: OutboxState::Pending,
            result: None,
            queued_at,
        })
    }

    fn entry_from_row(row: &SqliteRow) -> Result<OutboxEntry, StoreError> {
        let state: String = row.try_get("state")?;
        let result: Option<String> = row.try_get("result")?;
        Ok(OutboxEntry {
            seq: seq_u64(row.try_get("seq")?)?,
            op_id: parse_uuid(row.try_get("op_id")?)?,
            op_type: row.try_get("op_type")?,
            signed: SignedOperation {
                op: row.try_get("op")?,
                sig: row.try_get("sig")?,
            },
            hash: row.try_get("hash")?,
            state: state.parse()?,
            result: result
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(corrupt)?,
            queued_at: parse_time(row.try_get("queued_at")?)?,
        })
    }

    /// Every operation, in `seq` order.
    pub async fn entries(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM outbox ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::entry_from_row).collect()
    }

    /// The next batch to push: consecutive pending operations from the lowest pending `seq`,
    /// at most `max_ops` of them and at most `max_bytes` of operation text and signatures.
    pub async fn pending_batch(
        &self,
        max_ops: usize,
        max_bytes: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query("SELECT * FROM outbox WHERE state = 'pending' ORDER BY seq LIMIT ?")
            .bind(i64::try_from(max_ops).map_err(corrupt)?)
            .fetch_all(&self.pool)
            .await?;
        let mut batch: Vec<OutboxEntry> = Vec::new();
        let mut bytes = 0;
        for row in &rows {
            let entry = Self::entry_from_row(row)?;
            let size = entry.signed.push_bytes_bound();
            let contiguous = batch.last().is_none_or(|last| last.seq + 1 == entry.seq);
            if !contiguous || (!batch.is_empty() && bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            batch.push(entry);
        }
        Ok(batch)
    }

    /// Highest `seq` such that it and every lower one is acknowledged.
    pub async fn acked_through(&self) -> Result<u64, StoreError> {
        let first_pending: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(match (first_pending, last) {
            (Some(p), _) => seq_u64(p - 1)?,
            (None, Some(l)) => seq_u64(l)?,
            (None, None) => 0,
        })
    }

    /// The hash of the operation at `seq`, if any.
    pub async fn hash_at(&self, seq: u64) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT hash FROM outbox WHERE seq = ?")
            .bind(seq_i64(seq)?)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records a push response in one transaction: every result, the acknowledgement, the
    /// receipt and the clock skew.
    pub async fn record_push(
        &self,
        response: &PushResponse,
        receipt_verified: bool,
        received_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for result in &response.results {
            let json = serde_json::to_string(result).map_err(corrupt)?;
            sqlx::query("UPDATE outbox SET status = ?, result = ? WHERE seq = ? AND op_id = ?")
                .bind(result.effective_status().as_str())
                .bind(json)
                .bind(seq_i64(result.seq)?)
                .bind(result.op_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE outbox SET state = 'acked' WHERE seq <= ? AND state = 'pending'")
            .bind(seq_i64(response.acked_through)?)
            .execute(&mut *tx)
            .await?;
        let r = &response.receipt;
        sqlx::query(
            "INSERT INTO receipts (acked_through, last_hash, server_time, key_id, signature, \
             verified, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq_i64(r.acked_through)?)
        .bind(&r.last_hash)
        .bind(fmt_time(r.server_time)?)
        .bind(&r.key_id)
        .bind(&r.signature)
        .bind(receipt_verified)
        .bind(fmt_time(received_at)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sync_state SET clock_skew_ms = ?, last_push_at = ? WHERE id = 1")
            .bind(response.clock_skew_ms)
            .bind(fmt_time(received_at)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks every operation from `seq` on as pending again (the server asked for a resend).
    /// Their earlier results stay until new ones arrive.
    pub async fn mark_pending_from(&self, seq: u64) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE outbox SET state = 'pending' WHERE seq >= ?")
            .bind(seq_i64(seq)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(state = 'pending'), 0) AS pending, \
               COALESCE(SUM(state = 'acked'), 0) AS acked, \
               COALESCE(SUM(status = 'conflict'), 0) AS conflict, \
               COALESCE(SUM(status = 'rejected'), 0) AS rejected, \
               COALESCE(SUM(status = 'deferred'), 0) AS deferred, \
               COALESCE(MAX(seq), 0) AS last_seq \
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        let last_seq = seq_u64(row.try_get("last_seq")?)?;
        Ok(OutboxCounts {
            pending: seq_u64(row.try_get("pending")?)?,
            acked: seq_u64(row.try_get("acked")?)?,
            conflict: seq_u64(row.try_get("conflict")?)?,
            rejected: seq_u64(row.try_get("rejected")?)?,
            deferred: seq_u64(row.try_get("deferred")?)?,
            last_seq,
            last_hash: self.hash_at(last_seq).await?,
        })
    }

    /// Operations whose result is a conflict or a rejection.
    pub async fn problem_entries(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE status IN ('conflict', 'rejected') ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::entry_from_row).collect()
    }

    pub async fn last_receipt(&self) -> Result<Option<StoredReceipt>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM receipts ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let device_id = self
            .identity()
            .await?
            .map(|i| i.device_id)
            .unwrap_or_default();
        Ok(Some(StoredReceipt {
            receipt: Receipt {
                device_id,
                acked_through: seq_u64(row.try_get("acked_through")?)?,
                last_hash: row.try_get("last_hash")?,
                server_time: parse_time(row.try_get("server_time")?)?,
                key_id: row.try_get("key_id")?,
                signature: row.try_get("signature")?,
            },
            verified: row.try_get("verified")?,
            received_at: parse_time(row.try_get("received_at")?)?,
        }))
    }

    pub async fn receipt_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM receipts")
            .fetch_one(&self.pool)
            .await?;
        seq_u64(n)
    }

    pub async fn clock_skew_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT clock_skew_ms FROM sync_state WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    // -- pull ----------------------------------------------------------------------------------

    pub async fn cursor(&self) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM sync_state WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Applies one pull page and advances the cursor, in one transaction.
    pub async fn apply_pull(
        &self,
        changes: &[Change],
        cursor: &str,
        pulled_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for change in changes {
            match change {
                Change::Upsert {
                    entity,
                    id,
                    version,
                    data,
                } => {
                    // Never go back to an older version if pages overlap.
                    sqlx::query(
                        "INSERT INTO mirror (entity, id, version, data) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (entity, id) DO UPDATE SET version = excluded.version, \
                         data = excluded.data WHERE excluded.version >= mirror.version",
                    )
                    .bind(entity.as_str())
                    .bind(id)
                    .bind(version)
                    .bind(data.get())
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Remove { entity, id } | Change::Tombstone { entity, id } => {
                    sqlx::query("DELETE FROM mirror WHERE entity = ? AND id = ?")
                        .bind(entity.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        sqlx::query("UPDATE sync_state SET cursor = ?, last_pull_at = ? WHERE id = 1")
            .bind(cursor)
            .bind(fmt_time(pulled_at)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drops all server-derived state (mirror and cursor), for `reset_required`. The outbox,
    /// receipts and identity are the phone's own and stay.
    pub async fn reset_mirror(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM mirror").execute(&mut *tx).await?;
        sqlx::query("UPDATE sync_state SET cursor = NULL WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    fn mirror_from_row(row: &SqliteRow) -> Result<MirrorEntity, StoreError> {
        let entity: String = row.try_get("entity")?;
        let data: String = row.try_get("data")?;
        Ok(MirrorEntity {
            entity: EntityKind::parse(&entity).ok_or_else(|| corrupt(entity))?,
            id: row.try_get("id")?,
            version: row.try_get("version")?,
            data: serde_json::from_str(&data).map_err(corrupt)?,
        })
    }

    pub async fn mirror_get(
        &self,
        entity: EntityKind,
        id: &str,
    ) -> Result<Option<MirrorEntity>, StoreError> {
        let row = sqlx::query("SELECT * FROM mirror WHERE entity = ? AND id = ?")
            .bind(entity.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::mirror_from_row).transpose()
    }

    pub async fn mirror_list(&self, entity: EntityKind) -> Result<Vec<MirrorEntity>, StoreError> {
        let rows = sqlx::query("SELECT * FROM mirror WHERE entity = ? ORDER BY id")
            .bind(entity.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::mirror_from_row).collect()
    }

    /// Photos declared by queued operations that are not uploaded yet.
    pub async fn pending_photos(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT sha256, path, size FROM photos WHERE upload_state = 'pending' ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("sha256")?,
                    r.try_get("path")?,
                    seq_u64(r.try_get("size")?)?,
                ))
            })
            .collect()
    }

    fn photo_from_row(row: &SqliteRow) -> Result<PhotoUpload, StoreError> {
        let state: String = row.try_get("upload_state")?;
        Ok(PhotoUpload {
            sha256: row.try_get("sha256")?,
            path: row.try_get("path")?,
            size: seq_u64(row.try_get("size")?)?,
            seq: seq_u64(row.try_get("seq")?)?,
            state: state.parse()?,
            upload_url: row.try_get("upload_url")?,
            offset: seq_u64(row.try_get("upload_offset")?)?,
            error_code: row.try_get("error_code")?,
            error_message: row.try_get("error_message")?,
            op_status: row.try_get("status")?,
        })
    }

    /// Photos to upload: not uploaded yet and declared by an operation the server has
    /// acknowledged (before that, the server would not know the hash). In capture order.
    pub async fn photos_to_upload(&self) -> Result<Vec<PhotoUpload>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.*, o.status FROM photos p JOIN outbox o ON o.seq = p.seq \
             WHERE p.upload_state = 'pending' AND o.state = 'acked' ORDER BY p.seq, p.rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::photo_from_row).collect()
    }

    /// One photo and its upload.
    pub async fn photo(&self, sha256: &str) -> Result<Option<PhotoUpload>, StoreError> {
        let row = sqlx::query(
            "SELECT p.*, o.status FROM photos p JOIN outbox o ON o.seq = p.seq \
             WHERE p.sha256 = ?",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::photo_from_row).transpose()
    }

    /// Photos the server refused for good.
    pub async fn refused_photos(&self) -> Result<Vec<PhotoUpload>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.*, o.status FROM photos p JOIN outbox o ON o.seq = p.seq \
             WHERE p.upload_state = 'refused' ORDER BY p.seq, p.rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::photo_from_row).collect()
    }

    pub async fn photo_counts(&self) -> Result<PhotoCounts, StoreError> {
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(upload_state = 'pending'), 0) AS pending, \
               COALESCE(SUM(upload_state = 'uploaded'), 0) AS uploaded, \
               COALESCE(SUM(upload_state = 'refused'), 0) AS refused \
             FROM photos",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(PhotoCounts {
            pending: seq_u64(row.try_get("pending")?)?,
            uploaded: seq_u64(row.try_get("uploaded")?)?,
            refused: seq_u64(row.try_get("refused")?)?,
        })
    }

    /// Records the upload a photo goes to (or forgets it, with `None`) and its confirmed offset.
    pub async fn set_photo_upload(
        &self,
        sha256: &str,
        upload_url: Option<&str>,
        offset: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE photos SET upload_url = ?, upload_offset = ? WHERE sha256 = ?")
            .bind(upload_url)
            .bind(seq_i64(offset)?)
            .bind(sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the offset the server confirmed.
    pub async fn set_photo_offset(&self, sha256: &str, offset: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE photos SET upload_offset = ? WHERE sha256 = ?")
            .bind(seq_i64(offset)?)
            .bind(sha256)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The server verified the photo.
    pub async fn mark_photo_uploaded(&self, sha256: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE photos SET upload_state = 'uploaded', upload_offset = size, \
             error_code = NULL, error_message = NULL WHERE sha256 = ?",
        )
        .bind(sha256)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The server refused the photo for good; it is not tried again.
    pub async fn mark_photo_refused(
        &self,
        sha256: &str,
        code: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE photos SET upload_state = 'refused', upload_url = NULL, \
             error_code = ?, error_message = ? WHERE sha256 = ?",
        )
        .bind(code)
        .bind(message)
        .bind(sha256)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The read receipts this phone queued (`notice.read@1`), by notice: the earliest reading of
    /// each. Every one is kept, acknowledged or not: the inbox shows it until the server's own
    /// receipt arrives by pull.
    pub async fn queued_reads(
        &self,
    ) -> Result<std::collections::HashMap<Uuid, OffsetDateTime>, StoreError> {
        let rows = sqlx::query(
            "SELECT op FROM outbox WHERE op_type = ? \
             AND (status IS NULL OR status <> 'rejected') ORDER BY seq",
        )
        .bind(crate::ops::op_types::NOTICE_READ_V1)
        .fetch_all(&self.pool)
        .await?;
        let mut reads = std::collections::HashMap::new();
        for row in &rows {
            let body: OperationBody = serde_json::from_str(row.try_get("op")?).map_err(corrupt)?;
            if let Ok(Operation::NoticeReadV1(r)) = Operation::parse(&body.op_type, &body.payload) {
                reads.entry(r.notice_id).or_insert(r.read_at);
            }
        }
        Ok(reads)
    }

    /// Whether an operation with this status exists (for tests and diagnostics).
    pub async fn count_status(&self, status: OpStatus) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = ?")
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await?;
        seq_u64(n)
    }

    /// Runs raw SQL; for tests that check the database's own guards.
    #[cfg(test)]
    pub(crate) async fn execute_raw(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(sql).execute(&self.pool).await?.rows_affected())
    }
}

impl FromStr for OutboxState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(OutboxState::Pending),
            "acked" => Ok(OutboxState::Acked),
            other => Err(corrupt(other)),
        }
    }
}
