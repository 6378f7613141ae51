//! The ledger's transparency log (see `ledger::log`): the leaves as stored, issuing and reading
//! signed checkpoints, and checking them against the entries.
//!
//! A checkpoint is issued inside the transaction that appends entries (or closes a period),
//! after taking the `ledger` counter row as an append does: on PostgreSQL that row lock orders
//! issuance with appends, so a checkpoint covers exactly the entries committed before it and
//! those of its own transaction.

use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};

use super::now_ms;
use crate::ledger::log::{self, Checkpoint, CheckpointKeys, Frontier, Leaf, Problem};

type R<T> = Result<T, sqlx::Error>;

/// The leaves of the entries after `seq` `after`, at most `limit` (all with `None`), in `seq`
/// order.
pub async fn leaves<'c, E: Executor<'c, Database = Any>>(
    e: E,
    after: i64,
    limit: Option<i64>,
) -> R<Vec<Leaf>> {
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT hash FROM ledger_entries WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit.unwrap_or(i64::MAX))
            .fetch_all(e)
            .await?;
    hashes
        .iter()
        .map(|h| {
            log::leaf(h).ok_or_else(|| {
                sqlx::Error::Decode(
                    format!("a ledger entry's hash is not 64 hex digits: {h:?}").into(),
                )
            })
        })
        .collect()
}

/// Issues a checkpoint over every entry, signed with the server's current key, and stores it
/// with its frontier. Only the entries after the last checkpoint are read and hashed, onto
/// that checkpoint's frontier, when the frontier gives the root it signed; otherwise (the first
/// checkpoint, or a stored frontier that does not match) every entry is.
pub async fn issue_checkpoint(
    conn: &mut AnyConnection,
    keys: &impl CheckpointKeys,
) -> R<Checkpoint> {
    sqlx::query("UPDATE counters SET value = value WHERE name = 'ledger'")
        .execute(&mut *conn)
        .await?;
    let last = sqlx::query(&format!(
        "{CHECKPOINT_SELECT}, frontier FROM ledger_checkpoints ORDER BY seq DESC LIMIT 1"
    ))
    .fetch_optional(&mut *conn)
    .await?;
    let base = match &last {
        Some(row) => {
            let cp = checkpoint_from_row(row)?;
            let frontier: String = row.try_get("frontier")?;
            let base = u64::try_from(cp.tree_size)
                .ok()
                .and_then(|size| Frontier::from_text(size, &frontier))
                .filter(|f| hex::encode(f.root()) == cp.root_hash)
                .filter(|_| {
                    keys.verifying_key(&cp.key_id)
                        .is_some_and(|k| cp.signed_by(k))
                });
            if base.is_none() {
                tracing::warn!(
                    tree_size = cp.tree_size,
                    "the last ledger checkpoint's frontier does not give its signed root: \
                     hashing the whole ledger"
                );
            }
            base
        }
        None => None,
    };
    let mut frontier = base.unwrap_or_default();
    let after = i64::try_from(frontier.size()).unwrap_or(i64::MAX);
    for leaf in leaves(&mut *conn, after, None).await? {
        frontier.push(&leaf);
    }
    let (kid, signing) = keys.signer();
    let cp = Checkpoint::issue(frontier.size(), &frontier.root(), now_ms(), kid, signing);
    sqlx::query(
        "INSERT INTO ledger_checkpoints \
         (seq, tree_size, root_hash, issued_at, key_id, public_key, signature, frontier) \
         SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5, $6, $7 FROM ledger_checkpoints",
    )
    .bind(cp.tree_size)
    .bind(&cp.root_hash)
    .bind(cp.timestamp)
    .bind(&cp.key_id)
    .bind(&cp.public_key)
    .bind(&cp.signature)
    .bind(frontier.to_text())
    .execute(&mut *conn)
    .await?;
    Ok(cp)
}

const CHECKPOINT_SELECT: &str =
    "SELECT tree_size, root_hash, issued_at, key_id, public_key, signature";

fn checkpoint_from_row(r: &sqlx::any::AnyRow) -> R<Checkpoint> {
    Ok(Checkpoint {
        tree_size: r.try_get("tree_size")?,
        root_hash: r.try_get("root_hash")?,
        timestamp: r.try_get("issued_at")?,
        key_id: r.try_get("key_id")?,
        public_key: r.try_get("public_key")?,
        signature: r.try_get("signature")?,
    })
}

/// The checkpoint issued last, if any.
pub async fn latest_checkpoint<'c, E: Executor<'c, Database = Any>>(e: E) -> R<Option<Checkpoint>> {
    sqlx::query(&format!(
        "{CHECKPOINT_SELECT} FROM ledger_checkpoints ORDER BY seq DESC LIMIT 1"
    ))
    .fetch_optional(e)
    .await?
    .as_ref()
    .map(checkpoint_from_row)
    .transpose()
}

/// Every checkpoint stored, oldest first.
pub async fn checkpoints<'c, E: Executor<'c, Database = Any>>(e: E) -> R<Vec<Checkpoint>> {
    sqlx::query(&format!(
        "{CHECKPOINT_SELECT} FROM ledger_checkpoints ORDER BY seq"
    ))
    .fetch_all(e)
    .await?
    .iter()
    .map(checkpoint_from_row)
    .collect()
}

/// The number of entries in the ledger.
pub async fn tree_size<'c, E: Executor<'c, Database = Any>>(e: E) -> R<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries")
        .fetch_one(e)
        .await
}

/// The outcome of checking checkpoints against the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReport {
    /// Entries in the ledger.
    pub entries: i64,
    /// Checkpoints stored in the database, all checked.
    pub stored: usize,
    /// Each stored checkpoint that does not hold (in issue order), and its problem.
    pub stored_problems: Vec<(Checkpoint, Problem)>,
    /// The problem of each of the given (saved) checkpoints, `None` where it holds.
    pub given: Vec<Option<Problem>>,
}

impl LogReport {
    pub fn ok(&self) -> bool {
        self.stored_problems.is_empty() && self.given.iter().all(Option::is_none)
    }
}

/// Checks every stored checkpoint and the `given` ones (checkpoints saved elsewhere, e.g. from
/// `GET /v1/ledger/checkpoint`) against the entries and the server's keys: each must be signed
/// by a key of `keys`, cover no more entries than the ledger has, and have the root of the
/// ledger's first `tree_size` entries. Stored hashes are taken as they are: that they match the
/// entries is the hash chain's check (`store::ledger::verify_chain`).
pub async fn verify_log(
    pool: &AnyPool,
    keys: &impl CheckpointKeys,
    given: &[Checkpoint],
) -> R<LogReport> {
    // One read transaction, so that entries and checkpoints are seen as of one moment.
    let mut read = pool.begin().await?;
    let stored = checkpoints(&mut *read).await?;
    let leaves = leaves(&mut *read, 0, None).await?;
    read.rollback().await?;
    let entries = i64::try_from(leaves.len()).unwrap_or(i64::MAX);
    let all: Vec<Checkpoint> = stored.iter().chain(given).cloned().collect();
    let problems = log::check(leaves, &all, |kid| keys.verifying_key(kid).cloned());
    let mut report = LogReport {
        entries,
        stored: stored.len(),
        stored_problems: Vec::new(),
        given: vec![None; given.len()],
    };
    for (i, problem) in problems {
        match i.checked_sub(stored.len()) {
            None => report.stored_problems.push((stored[i].clone(), problem)),
            Some(g) => report.given[g] = Some(problem),
        }
    }
    Ok(report)
}
