//! Deduction proposals, the hash-chained ledger, period closing and what scoring reads.
//!
//! Appends are serialised by the `ledger` counter row, taken as the first statement of the
//! append: on PostgreSQL its row lock is held until commit, so the next append reads this
//! entry's hash as its `prev_hash`; on SQLite writers are serialised anyway. The chain is
//! therefore linear under any concurrency. The database itself refuses UPDATE and DELETE of
//! entries (triggers in `0004_ledger.sql`), and on SQLite an insert that would replace one
//! (`0009_ledger_log.sql`). Signed checkpoints over the entries are `store::ledger_log`'s.

use std::borrow::Cow;
use std::collections::BTreeMap;

use futures::TryStreamExt;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};
use uuid::Uuid;

use super::decode;
use super::json_rows::Cols;
use super::{now_ms, placeholders, WriteTx};
use crate::ledger::chain::{self, ChainBreak, Entry, GENESIS};
use crate::ledger::scoring::{Indicators, ScoredEntry, ScoredGroup, ZoneRef};
use crate::model::{Basis, PeriodStatus, ProposalStatus};

type R<T> = Result<T, sqlx::Error>;

// ---- proposals --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ProposalRow {
    pub id: Uuid,
    pub case_id: Option<Uuid>,
    pub zone_id: Uuid,
    pub period_id: Uuid,
    pub source: String,
    pub rulebook_id: Uuid,
    pub rule_code: String,
    pub raw_points_milli: i64,
    pub category_code: Option<String>,
    pub found_at: i64,
    pub note: String,
    pub status: ProposalStatus,
    pub proposed_by: Uuid,
    pub proposed_at: i64,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
    pub ledger_entry_id: Option<Uuid>,
    /// SHA-256 of the request that made it (see `ledger::proposals::propose`).
    pub request_sha256: Option<String>,
    /// What it deducts for: the finding, or the case's lateness.
    pub basis: Basis,
}

const PROPOSAL_COLUMNS: &str = "id, case_id, zone_id, period_id, source, rulebook_id, rule_code, \
    raw_points_milli, category_code, found_at, note, status, proposed_by, proposed_at, decided_by, \
    decided_at, reason, ledger_entry_id, request_sha256, basis";

fn opt_uuid(r: &sqlx::any::AnyRow, col: &str) -> R<Option<Uuid>> {
    r.opt_uuid(col)
}

fn uuid(r: &sqlx::any::AnyRow, col: &str) -> R<Uuid> {
    r.uuid(col)
}

fn proposal_from_row(r: &sqlx::any::AnyRow) -> R<ProposalRow> {
    Ok(ProposalRow {
        id: uuid(r, "id")?,
        case_id: opt_uuid(r, "case_id")?,
        zone_id: uuid(r, "zone_id")?,
        period_id: uuid(r, "period_id")?,
        source: r.try_get("source")?,
        rulebook_id: uuid(r, "rulebook_id")?,
        rule_code: r.try_get("rule_code")?,
        raw_points_milli: r.try_get("raw_points_milli")?,
        category_code: r.try_get("category_code")?,
        found_at: r.try_get("found_at")?,
        note: r.try_get("note")?,
        status: decode::parse(
            "deduction_proposals.status",
            &r.try_get::<String, _>("status")?,
        )?,
        proposed_by: uuid(r, "proposed_by")?,
        proposed_at: r.try_get("proposed_at")?,
        decided_by: opt_uuid(r, "decided_by")?,
        decided_at: r.try_get("decided_at")?,
        reason: r.try_get("reason")?,
        ledger_entry_id: opt_uuid(r, "ledger_entry_id")?,
        request_sha256: r.try_get("request_sha256")?,
        basis: decode::parse(
            "deduction_proposals.basis",
            &r.try_get::<String, _>("basis")?,
        )?,
    })
}

/// Inserts a new proposal; one on a case holds the case for its basis (`open_case_id` and
/// `basis`, unique together), so a second open proposal of the same basis on the same case
/// fails with a unique violation.
pub async fn insert_proposal(conn: &mut AnyConnection, p: &ProposalRow) -> R<()> {
    insert_proposal_sql(conn, p, "").await?;
    Ok(())
}

/// Inserts a new proposal unless its case is held for its basis already (or its id is taken):
/// `false` then, with nothing written and the transaction still usable.
pub async fn insert_proposal_if_free(conn: &mut AnyConnection, p: &ProposalRow) -> R<bool> {
    Ok(insert_proposal_sql(conn, p, " ON CONFLICT DO NOTHING").await? == 1)
}

async fn insert_proposal_sql(conn: &mut AnyConnection, p: &ProposalRow, tail: &str) -> R<u64> {
    let done = sqlx::query(&format!(
        "INSERT INTO deduction_proposals ({PROPOSAL_COLUMNS}, open_case_id) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
         $20, $2){tail}"
    ))
    .bind(p.id.to_string())
    .bind(p.case_id.map(|c| c.to_string()))
    .bind(p.zone_id.to_string())
    .bind(p.period_id.to_string())
    .bind(&p.source)
    .bind(p.rulebook_id.to_string())
    .bind(&p.rule_code)
    .bind(p.raw_points_milli)
    .bind(p.category_code.clone())
    .bind(p.found_at)
    .bind(&p.note)
    .bind(p.status.as_str())
    .bind(p.proposed_by.to_string())
    .bind(p.proposed_at)
    .bind(p.decided_by.map(|c| c.to_string()))
    .bind(p.decided_at)
    .bind(p.reason.clone())
    .bind(p.ledger_entry_id.map(|c| c.to_string()))
    .bind(p.request_sha256.clone())
    .bind(p.basis.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The proposal that holds a case for `basis`: pending, or approved with an entry not reversed.
pub async fn open_proposal_of_case(
    conn: &mut AnyConnection,
    case_id: Uuid,
    basis: Basis,
) -> R<Option<(Uuid, ProposalStatus)>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT id, status FROM deduction_proposals WHERE open_case_id = $1 AND basis = $2",
    )
    .bind(case_id.to_string())
    .bind(basis.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|(id, status)| {
        Ok((
            super::parse_uuid("deduction_proposals.id", &id)?,
            decode::parse("deduction_proposals.status", &status)?,
        ))
    })
    .transpose()
}

/// Frees the case of a proposal whose ledger entry is reversed: it may be proposed again.
pub async fn release_case(conn: &mut AnyConnection, proposal_id: &str) -> R<()> {
    sqlx::query("UPDATE deduction_proposals SET open_case_id = NULL WHERE id = $1")
        .bind(proposal_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The proposal of a deduction entry of `basis` on the case that has not been reversed, if
/// any: read from the ledger itself, so it holds even for entries older than `open_case_id`
/// (an entry's basis is its proposal's; an entry with no proposal counts as a finding's).
pub async fn standing_deduction_of_case(
    conn: &mut AnyConnection,
    case_id: Uuid,
    basis: Basis,
) -> R<Option<Option<String>>> {
    sqlx::query_scalar(
        "SELECT e.proposal_id FROM ledger_entries e \
         LEFT JOIN deduction_proposals p ON p.id = e.proposal_id \
         WHERE e.case_id = $1 AND e.kind = 'deduction' AND COALESCE(p.basis, 'finding') = $2 \
         AND NOT EXISTS (SELECT 1 FROM ledger_entries r WHERE r.reverses_id = e.id) LIMIT 1",
    )
    .bind(case_id.to_string())
    .bind(basis.as_str())
    .fetch_optional(conn)
    .await
}

/// Where a case stands against its deadline, for a deduction for lateness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    pub dispatched_at: i64,
    pub deadline_at: i64,
    /// Whether the case is late at the instant asked about: its deadline has passed and it is
    /// still being rectified (dispatched, in progress; a rectification returned for rework
    /// after the deadline included), or it was not sent for verification by the deadline. The
    /// zones' `overdue` indicator counts only the second.
    pub late: bool,
}

/// The case's deadline and whether it is late at `now`; `None` for a case never dispatched
/// with a deadline.
pub async fn case_lateness(
    conn: &mut AnyConnection,
    case_id: Uuid,
    now: i64,
) -> R<Option<Lateness>> {
    let row: Option<(Option<i64>, Option<i64>, i64)> = sqlx::query_as(
        "SELECT dispatched_at, deadline_at, \
           CAST(CASE WHEN deadline_at < $2 AND (state IN ('dispatched', 'in_progress') \
             OR NOT EXISTS (SELECT 1 FROM case_events ev WHERE ev.case_id = cases.id \
               AND ev.to_state = 'pending_verification' AND ev.at <= cases.deadline_at)) \
           THEN 1 ELSE 0 END AS BIGINT) \
         FROM cases WHERE id = $1",
    )
    .bind(case_id.to_string())
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some((Some(dispatched_at), Some(deadline_at), late)) => Some(Lateness {
            dispatched_at,
            deadline_at,
            late: late == 1,
        }),
        _ => None,
    })
}

pub async fn proposal<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: Uuid,
) -> R<Option<ProposalRow>> {
    sqlx::query(&format!(
        "SELECT {PROPOSAL_COLUMNS} FROM deduction_proposals WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(e)
    .await?
    .as_ref()
    .map(proposal_from_row)
    .transpose()
}

/// Proposals in some zones (`None`: all), optionally in one status, newest first.
pub async fn proposals<'c, E: Executor<'c, Database = Any>>(
    e: E,
    zones: Option<&[Uuid]>,
    status: Option<&str>,
    limit: i64,
) -> R<Vec<ProposalRow>> {
    let mut sql = format!(
        "SELECT {PROPOSAL_COLUMNS} FROM deduction_proposals WHERE ($1 IS NULL OR status = $1)"
    );
    if let Some(z) = zones {
        if z.is_empty() {
            return Ok(vec![]);
        }
        sql.push_str(&format!(" AND zone_id IN ({})", placeholders(3, z.len())));
    }
    sql.push_str(" ORDER BY id DESC LIMIT $2");
    let mut q = sqlx::query(&sql).bind(status).bind(limit);
    for z in zones.unwrap_or(&[]) {
        q = q.bind(z.to_string());
    }
    q.fetch_all(e)
        .await?
        .iter()
        .map(proposal_from_row)
        .collect()
}

/// Decides a proposal that is still `proposed`; `false` when someone else decided it first.
/// A rejection frees the case for a new proposal.
/// The condition in the UPDATE is what makes two concurrent approvals produce one entry: on
/// PostgreSQL the second waits for the first's row lock and then finds the status changed.
pub async fn decide_proposal(
    conn: &mut AnyConnection,
    id: Uuid,
    status: ProposalStatus,
    by: Uuid,
    reason: Option<&str>,
    ledger_entry_id: Option<Uuid>,
) -> R<bool> {
    let done = sqlx::query(
        "UPDATE deduction_proposals SET status = $1, decided_by = $2, decided_at = $3, \
         reason = $4, ledger_entry_id = $5, \
         open_case_id = CASE WHEN $1 = 'rejected' THEN NULL ELSE open_case_id END \
         WHERE id = $6 AND status = 'proposed'",
    )
    .bind(status.as_str())
    .bind(by.to_string())
    .bind(now_ms())
    .bind(reason)
    .bind(ledger_entry_id.map(|l| l.to_string()))
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---- entries ----------------------------------------------------------------------------------

/// The columns the hash covers, in the canonical order (`proposed_by`, stored beside them, is
/// read and written with them but never hashed).
const ENTRY_COLUMNS: &str = "seq, id, kind, zone_id, period_id, rulebook_version, rule_code, \
    source, category_code, work_category, raw_points_milli, coefficient_milli, \
    weighted_points_milli, roster, approved_by, approved_at, found_at, case_id, case_version, \
    evidence, proposal_id, reverses_id, reason, prev_hash, hash";

fn entry_from_row(r: &sqlx::any::AnyRow) -> R<Entry> {
    Ok(Entry {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        zone_id: r.try_get("zone_id")?,
        period_id: r.try_get("period_id")?,
        rulebook_version: r.try_get("rulebook_version")?,
        rule_code: r.try_get("rule_code")?,
        source: r.try_get("source")?,
        category_code: r.try_get("category_code")?,
        work_category: r.try_get("work_category")?,
        raw_points_milli: r.try_get("raw_points_milli")?,
        coefficient_milli: r.try_get("coefficient_milli")?,
        weighted_points_milli: r.try_get("weighted_points_milli")?,
        roster: r.try_get("roster")?,
        approved_by: r.try_get("approved_by")?,
        approved_at: r.try_get("approved_at")?,
        found_at: r.try_get("found_at")?,
        case_id: r.try_get("case_id")?,
        case_version: r.try_get("case_version")?,
        evidence: r.try_get("evidence")?,
        proposal_id: r.try_get("proposal_id")?,
        reverses_id: r.try_get("reverses_id")?,
        reason: r.try_get("reason")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
        proposed_by: r.try_get("proposed_by")?,
    })
}

/// Appends `entry` at the end of the chain: fills in `seq`, `prev_hash` and `hash`. Call it
/// before anything else that takes a counter (the change log) so locks are always taken in the
/// same order.
pub async fn append(conn: &mut AnyConnection, mut entry: Entry) -> R<Entry> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'ledger' RETURNING value",
    )
    .fetch_one(&mut *conn)
    .await?;
    let prev: Option<String> = sqlx::query_scalar("SELECT hash FROM ledger_entries WHERE seq = $1")
        .bind(seq - 1)
        .fetch_optional(&mut *conn)
        .await?;
    entry.seq = seq;
    entry.prev_hash = prev.unwrap_or_else(|| GENESIS.to_owned());
    entry.hash = chain::entry_hash(&entry);
    let e = &entry;
    sqlx::query(&format!(
        "INSERT INTO ledger_entries ({ENTRY_COLUMNS}, proposed_by) VALUES ($1, $2, $3, $4, $5, $6, \
         $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, \
         $25, $26)"
    ))
    .bind(e.seq)
    .bind(&e.id)
    .bind(&e.kind)
    .bind(&e.zone_id)
    .bind(&e.period_id)
    .bind(e.rulebook_version)
    .bind(&e.rule_code)
    .bind(&e.source)
    .bind(e.category_code.clone())
    .bind(e.work_category.clone())
    .bind(e.raw_points_milli)
    .bind(e.coefficient_milli)
    .bind(e.weighted_points_milli)
    .bind(&e.roster)
    .bind(&e.approved_by)
    .bind(e.approved_at)
    .bind(e.found_at)
    .bind(e.case_id.clone())
    .bind(e.case_version)
    .bind(&e.evidence)
    .bind(e.proposal_id.clone())
    .bind(e.reverses_id.clone())
    .bind(e.reason.clone())
    .bind(&e.prev_hash)
    .bind(&e.hash)
    .bind(e.proposed_by.clone())
    .execute(&mut *conn)
    .await?;
    Ok(entry)
}

pub async fn entry<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Option<Entry>> {
    sqlx::query(&format!(
        "SELECT {ENTRY_COLUMNS}, proposed_by FROM ledger_entries WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(e)
    .await?
    .as_ref()
    .map(entry_from_row)
    .transpose()
}

/// The reversal of an entry, if it has one.
pub async fn reversal_of<'c, E: Executor<'c, Database = Any>>(e: E, id: Uuid) -> R<Option<String>> {
    sqlx::query_scalar("SELECT id FROM ledger_entries WHERE reverses_id = $1")
        .bind(id.to_string())
        .fetch_optional(e)
        .await
}

/// An entry with what a person reads beside it in an export: the note of the proposal it was
/// approved from and the description of its case.
pub struct ExportedEntry {
    pub entry: Entry,
    pub note: Option<String>,
    pub case_description: Option<String>,
}

/// Like [`entries`], with each entry's proposal note and case description.
pub async fn export_entries<'c, E: Executor<'c, Database = Any>>(
    e: E,
    period: Option<Uuid>,
    zones: Option<&[Uuid]>,
    after: i64,
    limit: i64,
) -> R<Vec<ExportedEntry>> {
    // Correlated subqueries rather than joins: the entry's own columns stay unqualified, as
    // `ENTRY_COLUMNS` names them.
    const EXTRA: &str = "(SELECT note FROM deduction_proposals \
        WHERE deduction_proposals.id = ledger_entries.proposal_id) AS proposal_note, \
        (SELECT description FROM cases WHERE cases.id = ledger_entries.case_id) AS case_description";
    entry_rows(e, EXTRA, period, zones, after, limit)
        .await?
        .iter()
        .map(|r| {
            Ok(ExportedEntry {
                entry: entry_from_row(r)?,
                note: r.try_get("proposal_note")?,
                case_description: r.try_get("case_description")?,
            })
        })
        .collect()
}

/// Entries in `seq` order after `after`, filtered by period and zones.
pub async fn entries<'c, E: Executor<'c, Database = Any>>(
    e: E,
    period: Option<Uuid>,
    zones: Option<&[Uuid]>,
    after: i64,
    limit: i64,
) -> R<Vec<Entry>> {
    entry_rows(e, "", period, zones, after, limit)
        .await?
        .iter()
        .map(entry_from_row)
        .collect()
}

/// The rows of a page of entries (see [`entries`]), with `extra` columns after the entry's.
async fn entry_rows<'c, E: Executor<'c, Database = Any>>(
    e: E,
    extra: &str,
    period: Option<Uuid>,
    zones: Option<&[Uuid]>,
    after: i64,
    limit: i64,
) -> R<Vec<sqlx::any::AnyRow>> {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {extra}")
    };
    let mut sql = format!(
        "SELECT {ENTRY_COLUMNS}, proposed_by{extra} FROM ledger_entries WHERE seq > $1 \
         AND ($2 IS NULL OR period_id = $2)"
    );
    if let Some(z) = zones {
        if z.is_empty() {
            return Ok(vec![]);
        }
        sql.push_str(&format!(" AND zone_id IN ({})", placeholders(4, z.len())));
    }
    sql.push_str(" ORDER BY seq LIMIT $3");
    let mut q = sqlx::query(&sql)
        .bind(after)
        .bind(period.map(|p| p.to_string()))
        .bind(limit);
    for z in zones.unwrap_or(&[]) {
        q = q.bind(z.to_string());
    }
    q.fetch_all(e).await
}

/// The hashed fields of an entry read with [`ENTRY_COLUMNS`], borrowed from the row, and its
/// stored hash.
fn fields_from_row(r: &sqlx::any::AnyRow) -> R<(chain::Fields<'_>, &str)> {
    Ok((
        chain::Fields {
            seq: r.try_get(0)?,
            id: r.try_get(1)?,
            kind: r.try_get(2)?,
            zone_id: r.try_get(3)?,
            period_id: r.try_get(4)?,
            rulebook_version: r.try_get(5)?,
            rule_code: r.try_get(6)?,
            source: r.try_get(7)?,
            category_code: r.try_get(8)?,
            work_category: r.try_get(9)?,
            raw_points_milli: r.try_get(10)?,
            coefficient_milli: r.try_get(11)?,
            weighted_points_milli: r.try_get(12)?,
            roster: r.try_get(13)?,
            approved_by: r.try_get(14)?,
            approved_at: r.try_get(15)?,
            found_at: r.try_get(16)?,
            case_id: r.try_get(17)?,
            case_version: r.try_get(18)?,
            evidence: r.try_get(19)?,
            proposal_id: r.try_get(20)?,
            reverses_id: r.try_get(21)?,
            reason: r.try_get(22)?,
            prev_hash: r.try_get(23)?,
        },
        r.try_get(24)?,
    ))
}

/// Rows handed from the reader to the hashing thread at a time.
const VERIFY_BATCH: usize = 256;

/// Entries read per query on SQLite (see [`verify_chain`]); about 3 MB of JSON.
pub const SQLITE_VERIFY_CHUNK: i64 = 4096;

/// What the reader hands the hashing thread.
enum Batch {
    Rows(Vec<sqlx::any::AnyRow>),
    /// A JSON array of entries, each the array of [`ENTRY_COLUMNS`]' values (SQLite).
    Json(String),
}

/// An entry as SQLite's `json_array` of [`ENTRY_COLUMNS`] writes it; strings are borrowed
/// from the JSON text unless they hold escapes.
#[derive(serde::Deserialize)]
struct JsonEntry<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    i64,
    i64,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    i64,
    #[serde(borrow)] Option<Cow<'a, str>>,
    Option<i64>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

impl JsonEntry<'_> {
    fn fields(&self) -> (chain::Fields<'_>, &str) {
        (
            chain::Fields {
                seq: self.0,
                id: &self.1,
                kind: &self.2,
                zone_id: &self.3,
                period_id: &self.4,
                rulebook_version: self.5,
                rule_code: &self.6,
                source: &self.7,
                category_code: self.8.as_deref(),
                work_category: self.9.as_deref(),
                raw_points_milli: self.10,
                coefficient_milli: self.11,
                weighted_points_milli: self.12,
                roster: &self.13,
                approved_by: &self.14,
                approved_at: self.15,
                found_at: self.16,
                case_id: self.17.as_deref(),
                case_version: self.18,
                evidence: &self.19,
                proposal_id: self.20.as_deref(),
                reverses_id: self.21.as_deref(),
                reason: self.22.as_deref(),
                prev_hash: &self.23,
            },
            &self.24,
        )
    }
}

/// One stretch of the chain being checked on its own: it starts from the `seq` and `prev_hash`
/// its first entry claims; [`verify_chain_with`] joins the stretches.
#[derive(Default)]
struct Stretch {
    check: Option<chain::ChainCheck>,
    /// `seq` and `prev_hash` of the first entry.
    first: Option<(i64, String)>,
    checked: i64,
}

impl Stretch {
    /// Checks one entry; the break, if any.
    fn step(&mut self, fields: &chain::Fields, hash: &str) -> Option<ChainBreak> {
        let check = self.check.get_or_insert_with(|| {
            self.first = Some((fields.seq, fields.prev_hash.to_owned()));
            chain::ChainCheck::new(fields.seq, fields.prev_hash)
        });
        if let Some(problem) = check.check(fields, hash) {
            return Some(ChainBreak {
                seq: fields.seq,
                id: fields.id.to_owned(),
                problem: problem.to_owned(),
            });
        }
        self.checked += 1;
        None
    }

    /// Checks one batch; the first break, if any.
    fn batch(&mut self, batch: &Batch) -> R<Option<ChainBreak>> {
        match batch {
            Batch::Rows(rows) => {
                for r in rows {
                    let (fields, hash) = fields_from_row(r)?;
                    if let Some(found) = self.step(&fields, hash) {
                        return Ok(Some(found));
                    }
                }
            }
            Batch::Json(text) => {
                // A value of another type than the column's (possible in SQLite, whose
                // columns are not typed) does not parse: an error, as a failed decode is on
                // PostgreSQL.
                let entries: Vec<JsonEntry> = serde_json::from_str(text).map_err(|e| {
                    sqlx::Error::Decode(
                        format!("a ledger entry as read for verification: {e}").into(),
                    )
                })?;
                for e in &entries {
                    let (fields, hash) = e.fields();
                    if let Some(found) = self.step(&fields, hash) {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Recomputes the whole chain; returns the number of entries checked and the first break, if
/// any, in `seq` order.
///
/// Each entry's check needs only its own fields and its predecessor's stored hash, so the chain
/// is cut into as many `seq` ranges as there are cores, each read and hashed on its own (a
/// reader streaming rows while a blocking thread hashes what was read, memory flat), and the
/// ranges are joined in order: a range's first entry must follow the previous range's last.
/// Entries are append-only, so ranges read in separate transactions still join; entries
/// appended meanwhile (beyond the last `seq` seen at the start) are left for the next run.
///
/// PostgreSQL streams rows. SQLite hands every row from its worker thread to the async side on
/// its own (a channel send and a wake-up per row, two thirds of the time in a profile of
/// 100,000 entries), so there each query returns [`SQLITE_VERIFY_CHUNK`] entries as one JSON
/// value (`json_group_array` of `json_array`s, in `seq` order).
pub async fn verify_chain(pool: &AnyPool) -> R<(i64, Option<ChainBreak>)> {
    let sqlite = pool.connect_options().database_url.scheme() == "sqlite";
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    verify_chain_with(pool, sqlite.then_some(SQLITE_VERIFY_CHUNK), parts).await
}

/// [`verify_chain`] in `parts` ranges, reading `chunk` entries per JSON query (SQLite only) or
/// streaming rows when `None`. Public so that tests can cross range and chunk boundaries with a
/// few entries.
pub async fn verify_chain_with(
    pool: &AnyPool,
    chunk: Option<i64>,
    parts: usize,
) -> R<(i64, Option<ChainBreak>)> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT MIN(seq), MAX(seq) FROM ledger_entries")
            .fetch_one(pool)
            .await?;
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok((0, None));
    };
    // In i128: `seq` is whatever the table holds, tampered with or not.
    let (lo, hi, parts) = (i128::from(lo), i128::from(hi), parts.max(1) as i128);
    let span = (hi - lo) / parts + 1;
    let ranges: Vec<(i64, i64)> = (0..parts)
        .map(|k| (lo + k * span, (lo + (k + 1) * span - 1).min(hi)))
        .filter(|(a, b)| a <= b)
        .map(|(a, b)| (a as i64, b as i64))
        .collect();
    let stretches =
        futures::future::join_all(ranges.into_iter().map(|r| check_range(pool, chunk, r))).await;
    let (mut next_seq, mut prev) = (1, GENESIS.to_owned());
    let mut checked = 0;
    for stretch in stretches {
        // In order: a break in an earlier range is the first break, whatever came after.
        let (stretch, found) = stretch?;
        let Some((first_seq, first_prev)) = &stretch.first else {
            continue;
        };
        if *first_seq != next_seq || *first_prev != prev {
            let problem = if *first_seq != next_seq {
                "seq_gap"
            } else {
                "prev_hash_mismatch"
            };
            let id = found_id(pool, *first_seq).await?;
            return Ok((
                checked,
                Some(ChainBreak {
                    seq: *first_seq,
                    id,
                    problem: problem.to_owned(),
                }),
            ));
        }
        checked += stretch.checked;
        if found.is_some() {
            return Ok((checked, found));
        }
        if let Some(check) = &stretch.check {
            let (n, p) = check.expects();
            (next_seq, prev) = (n, p.to_owned());
        }
    }
    Ok((checked, None))
}

/// The id of the entry at `seq`, for a break found where two ranges join.
async fn found_id(pool: &AnyPool, seq: i64) -> R<String> {
    sqlx::query_scalar("SELECT id FROM ledger_entries WHERE seq = $1")
        .bind(seq)
        .fetch_one(pool)
        .await
}

/// Reads and checks the entries with `seq` in `a..=b`: the stretch, and its first break.
async fn check_range(
    pool: &AnyPool,
    chunk: Option<i64>,
    (a, b): (i64, i64),
) -> R<(Stretch, Option<ChainBreak>)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(4);
    let checker = tokio::task::spawn_blocking(move || -> R<(Stretch, Option<ChainBreak>)> {
        let mut stretch = Stretch::default();
        while let Some(batch) = rx.blocking_recv() {
            if let Some(found) = stretch.batch(&batch)? {
                return Ok((stretch, Some(found)));
            }
        }
        Ok((stretch, None))
    });
    let read = match chunk {
        Some(chunk) => read_json_chunks(pool, chunk.max(1), (a, b), &tx).await,
        None => read_rows(pool, (a, b), &tx).await,
    };
    drop(tx);
    let (stretch, found) = checker
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("chain verification stopped: {e}")))??;
    if found.is_none() {
        // Intact so far is not intact if the rest could not be read.
        read?;
    }
    Ok((stretch, found))
}

/// Streams the entries with `seq` in `a..=b` as rows, in batches of [`VERIFY_BATCH`]. Stops
/// early (with `Ok`) when the checker has stopped at a break.
async fn read_rows(
    pool: &AnyPool,
    (a, b): (i64, i64),
    tx: &tokio::sync::mpsc::Sender<Batch>,
) -> R<()> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq >= $1 AND seq <= $2 ORDER BY seq"
    );
    let mut stream = sqlx::query(&sql).bind(a).bind(b).fetch(pool);
    let mut batch = Vec::with_capacity(VERIFY_BATCH);
    while let Some(row) = stream.try_next().await? {
        batch.push(row);
        if batch.len() == VERIFY_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(VERIFY_BATCH));
            if tx.send(Batch::Rows(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Batch::Rows(batch)).await;
    }
    Ok(())
}

/// Reads the entries with `seq` in `a..=b`, `chunk` per query, each chunk one JSON array, in one
/// read transaction. SQLite only (`json_group_array … ORDER BY` needs 3.44).
async fn read_json_chunks(
    pool: &AnyPool,
    chunk: i64,
    (a, b): (i64, i64),
    tx: &tokio::sync::mpsc::Sender<Batch>,
) -> R<()> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(MAX(seq), 0), \
           COALESCE(json_group_array(json_array({ENTRY_COLUMNS}) ORDER BY seq), '[]') \
         FROM (SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq > $1 AND seq <= $3 \
               ORDER BY seq LIMIT $2)"
    );
    let mut read = pool.begin().await?;
    let mut after = a.saturating_sub(1);
    loop {
        let row = sqlx::query(&sql)
            .bind(after)
            .bind(chunk)
            .bind(b)
            .fetch_one(&mut *read)
            .await?;
        let n: i64 = row.try_get(0)?;
        if n == 0 {
            break;
        }
        after = row.try_get(1)?;
        if tx.send(Batch::Json(row.try_get(2)?)).await.is_err() || n < chunk {
            break;
        }
    }
    read.rollback().await?;
    Ok(())
}

// ---- periods ----------------------------------------------------------------------------------

const PERIOD_STATUS: &str = "periods.status";

/// The status of a period, locking its row on PostgreSQL so that closing it waits for appends
/// in flight (and appends wait for a close in flight).
pub async fn lock_period(tx: &mut WriteTx, id: Uuid) -> R<Option<PeriodStatus>> {
    let sql = format!(
        "SELECT status FROM periods WHERE id = $1{}",
        tx.backend.for_update()
    );
    let status: Option<String> = sqlx::query_scalar(&sql)
        .bind(id.to_string())
        .fetch_optional(tx.conn())
        .await?;
    decode::parse_opt(PERIOD_STATUS, status.as_deref())
}

/// The period whose time range contains `at`.
pub async fn period_at<'c, E: Executor<'c, Database = Any>>(
    e: E,
    at: i64,
) -> R<Option<(Uuid, PeriodStatus)>> {
    let row = sqlx::query("SELECT id, status FROM periods WHERE starts_at <= $1 AND ends_at > $1")
        .bind(at)
        .fetch_optional(e)
        .await?;
    row.map(|r| {
        let status: String = r.try_get("status")?;
        Ok((uuid(&r, "id")?, decode::parse(PERIOD_STATUS, &status)?))
    })
    .transpose()
}

/// The first open period starting at or after `at`: where a correction to a closed period goes
/// when no open period covers today.
pub async fn open_period_from<'c, E: Executor<'c, Database = Any>>(
    e: E,
    at: i64,
) -> R<Option<Uuid>> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM periods WHERE status = 'open' AND starts_at >= $1 ORDER BY starts_at LIMIT 1",
    )
    .bind(at)
    .fetch_optional(e)
    .await?;
    id.map(|s| super::parse_uuid("periods.id", &s)).transpose()
}

/// The proposals of a period still waiting for a decision, oldest first.
pub async fn pending_proposals(conn: &mut AnyConnection, period: Uuid) -> R<Vec<ProposalRow>> {
    sqlx::query(&format!(
        "SELECT {PROPOSAL_COLUMNS} FROM deduction_proposals \
         WHERE period_id = $1 AND status = 'proposed' ORDER BY id"
    ))
    .bind(period.to_string())
    .fetch_all(conn)
    .await?
    .iter()
    .map(proposal_from_row)
    .collect()
}

/// Ends an open period at `at`, before its planned end (an early close): the time after it is
/// free for the next period.
pub async fn end_period_at(conn: &mut AnyConnection, id: Uuid, at: i64) -> R<()> {
    sqlx::query(
        "UPDATE periods SET ends_at = $1 WHERE id = $2 AND status = 'open' AND ends_at > $1",
    )
    .bind(at)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn close_period(conn: &mut AnyConnection, id: Uuid, by: Uuid, at: i64) -> R<bool> {
    let done = sqlx::query(
        "UPDATE periods SET status = 'closed', closed_at = $1, closed_by = $2 \
         WHERE id = $3 AND status = 'open'",
    )
    .bind(at)
    .bind(by.to_string())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_result(
    conn: &mut AnyConnection,
    period: Uuid,
    formula_version: &str,
    body: &str,
    sha256: &str,
) -> R<()> {
    sqlx::query(
        "INSERT INTO period_results (period_id, formula_version, body, sha256, computed_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(period.to_string())
    .bind(formula_version)
    .bind(body)
    .bind(sha256)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// The ranking stored when the period closed: (formula version, body, sha256).
pub async fn result<'c, E: Executor<'c, Database = Any>>(
    e: E,
    period: Uuid,
) -> R<Option<(String, String, String)>> {
    let row = sqlx::query(
        "SELECT formula_version, body, sha256 FROM period_results WHERE period_id = $1",
    )
    .bind(period.to_string())
    .fetch_optional(e)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("formula_version")?,
            r.try_get("body")?,
            r.try_get("sha256")?,
        ))
    })
    .transpose()
}

// ---- what scoring reads -----------------------------------------------------------------------

pub async fn zone_refs<'c, E: Executor<'c, Database = Any>>(e: E) -> R<Vec<ZoneRef>> {
    let rows = sqlx::query("SELECT id, code, name FROM zones ORDER BY code")
        .fetch_all(e)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ZoneRef {
                id: r.try_get("id")?,
                code: r.try_get("code")?,
                name: r.try_get("name")?,
            })
        })
        .collect()
}

/// Every entry of the period as scoring reads it: the input of the reference
/// [`crate::ledger::scoring::compute`], against which [`scored_groups`] is tested.
pub async fn scored_entries<'c, E: Executor<'c, Database = Any>>(
    e: E,
    period: Uuid,
) -> R<Vec<ScoredEntry>> {
    let rows = sqlx::query(
        "SELECT zone_id, weighted_points_milli, work_category, source, rule_code, kind \
         FROM ledger_entries WHERE period_id = $1 ORDER BY seq",
    )
    .bind(period.to_string())
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ScoredEntry {
                zone_id: r.try_get("zone_id")?,
                weighted_points_milli: r.try_get("weighted_points_milli")?,
                work_category: r.try_get("work_category")?,
                source: r.try_get("source")?,
                rule_code: r.try_get("rule_code")?,
                is_reversal: r.try_get::<String, _>("kind")? == "reversal",
            })
        })
        .collect()
}

/// The period's entries summed per zone, work category, source and rule: what
/// [`crate::ledger::scoring::compute_grouped`] ranks, in one aggregate query instead of every
/// entry. (Sums are cast so that PostgreSQL returns BIGINT, not NUMERIC.)
pub async fn scored_groups<'c, E: Executor<'c, Database = Any>>(
    e: E,
    period: Uuid,
) -> R<Vec<ScoredGroup>> {
    let rows = sqlx::query(
        "SELECT zone_id, work_category, source, rule_code, \
           CAST(SUM(weighted_points_milli) AS BIGINT) AS points, \
           CAST(COUNT(*) AS BIGINT) AS entries, \
           CAST(SUM(CASE WHEN kind = 'reversal' THEN 1 ELSE 0 END) AS BIGINT) AS reversals \
         FROM ledger_entries WHERE period_id = $1 \
         GROUP BY zone_id, work_category, source, rule_code",
    )
    .bind(period.to_string())
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ScoredGroup {
                zone_id: r.try_get("zone_id")?,
                work_category: r.try_get("work_category")?,
                source: r.try_get("source")?,
                rule_code: r.try_get("rule_code")?,
                weighted_points_milli: r.try_get("points")?,
                entries: r.try_get("entries")?,
                reversals: r.try_get("reversals")?,
            })
        })
        .collect()
}

/// The indicators of every zone for the period `[starts, ends)`, judged as of `as_of` (at most
/// the period's end): everything is read from capture times and the append-only case events
/// before `as_of`, so a finished period always gives the same numbers.
pub async fn indicators(
    conn: &mut AnyConnection,
    starts: i64,
    as_of: i64,
) -> R<BTreeMap<String, Indicators>> {
    let mut out: BTreeMap<String, Indicators> = BTreeMap::new();
    // A confidential case (an unannounced inspection's, not yet revealed) counts from its
    // reveal: before, the zone's row would tell its chiefs that cases were raised. The nil id
    // is nobody's: the cases hidden from it are exactly the confidential ones.
    let confidential =
        |case: &str| super::cases::hidden_case_sql(case, "'00000000-0000-0000-0000-000000000000'");
    // Integer sums are cast so that PostgreSQL returns BIGINT, not NUMERIC (which Any cannot
    // decode).
    let rows = sqlx::query(&format!(
        "SELECT zone_id, \
           CAST(SUM(CASE WHEN captured_at >= $1 AND captured_at < $2 THEN 1 ELSE 0 END) AS BIGINT) AS found, \
           CAST(SUM(CASE WHEN captured_at >= $1 AND captured_at < $2 AND filed_at < $2 THEN 1 ELSE 0 END) AS BIGINT) AS filed, \
           CAST(SUM(CASE WHEN deadline_at >= $1 AND deadline_at < $2 AND NOT EXISTS ( \
                SELECT 1 FROM case_events ev WHERE ev.case_id = cases.id \
                AND ev.to_state = 'pending_verification' AND ev.at <= cases.deadline_at) \
                THEN 1 ELSE 0 END) AS BIGINT) AS overdue \
         FROM cases WHERE ((captured_at >= $1 AND captured_at < $2) \
           OR (deadline_at >= $1 AND deadline_at < $2)) AND NOT {} GROUP BY zone_id",
        confidential("cases.id")
    ))
    .bind(starts)
    .bind(as_of)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let slot = out.entry(r.try_get("zone_id")?).or_default();
        slot.cases_found = r.try_get::<Option<i64>, _>("found")?.unwrap_or(0);
        slot.filed = r.try_get::<Option<i64>, _>("filed")?.unwrap_or(0);
        slot.overdue = r.try_get::<Option<i64>, _>("overdue")?.unwrap_or(0);
    }
    let rows = sqlx::query(&format!(
        "SELECT c.zone_id, \
           CAST(SUM(CASE WHEN ev.to_state = 'closed' THEN 1 ELSE 0 END) AS BIGINT) AS closed, \
           CAST(SUM(CASE WHEN ev.to_state = 'closed' AND c.deadline_at IS NOT NULL \
                AND ev.at <= c.deadline_at THEN 1 ELSE 0 END) AS BIGINT) AS on_time, \
           CAST(SUM(CASE WHEN ev.from_state = 'pending_verification' AND ev.to_state = 'in_progress' \
                THEN 1 ELSE 0 END) AS BIGINT) AS rework \
         FROM case_events ev JOIN cases c ON c.id = ev.case_id \
         WHERE ev.kind = 'transition' AND ev.at >= $1 AND ev.at < $2 AND NOT {} \
         GROUP BY c.zone_id",
        confidential("c.id")
    ))
    .bind(starts)
    .bind(as_of)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let slot = out.entry(r.try_get("zone_id")?).or_default();
        slot.closed = r.try_get::<Option<i64>, _>("closed")?.unwrap_or(0);
        slot.closed_on_time = r.try_get::<Option<i64>, _>("on_time")?.unwrap_or(0);
        slot.rework = r.try_get::<Option<i64>, _>("rework")?.unwrap_or(0);
    }
    let rows = sqlx::query(
        "SELECT c.zone_id, \
           CAST(SUM(CASE WHEN cb.outcome <> 'unreachable' THEN 1 ELSE 0 END) AS BIGINT) AS reached, \
           CAST(SUM(CASE WHEN cb.outcome IN ('satisfied', 'basically_satisfied') \
                THEN 1 ELSE 0 END) AS BIGINT) AS satisfied \
         FROM case_callbacks cb JOIN cases c ON c.id = cb.case_id \
         WHERE cb.called_at >= $1 AND cb.called_at < $2 GROUP BY c.zone_id",
    )
    .bind(starts)
    .bind(as_of)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let slot = out.entry(r.try_get("zone_id")?).or_default();
        slot.callbacks = r.try_get::<Option<i64>, _>("reached")?.unwrap_or(0);
        slot.satisfied = r.try_get::<Option<i64>, _>("satisfied")?.unwrap_or(0);
    }
    let rows = sqlx::query(
        "SELECT zone_id, CAST(COUNT(*) AS BIGINT) AS received, \
           CAST(SUM(CASE WHEN EXISTS (SELECT 1 FROM case_events ev WHERE ev.case_id = cases.id \
                AND ev.kind = 'transition' AND ev.from_state = 'reported' \
                AND ev.at <= cases.received_at + $3) THEN 1 ELSE 0 END) AS BIGINT) AS responded \
         FROM cases WHERE source IN ('hotline', 'public_report', 'department_transfer') \
           AND received_at >= $1 AND received_at < $2 GROUP BY zone_id",
    )
    .bind(starts)
    .bind(as_of)
    .bind(crate::ledger::scoring::RESPONSE_WINDOW_MS)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let slot = out.entry(r.try_get("zone_id")?).or_default();
        slot.public_reports = r.try_get::<Option<i64>, _>("received")?.unwrap_or(0);
        slot.responded_in_time = r.try_get::<Option<i64>, _>("responded")?.unwrap_or(0);
    }
    Ok(out)
}

/// The heads of the ledger and of the change log: every write that can move a ranking (an
/// entry posted or reversed, a case of the period changing state, a zone or period edited)
/// advances one of them, so an equal pair means the same inputs.
pub async fn heads<'c, E: Executor<'c, Database = Any>>(e: E) -> R<(i64, i64)> {
    let row = sqlx::query(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM ledger_entries) AS ledger, \
                (SELECT COALESCE(MAX(seq), 0) FROM changes) AS changes",
    )
    .fetch_one(e)
    .await?;
    Ok((row.try_get("ledger")?, row.try_get("changes")?))
}
