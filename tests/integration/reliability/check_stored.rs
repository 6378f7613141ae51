//! The photo and ledger checkers: every photo acknowledged is in the blob store with its
//! bytes, every deduction approved is posted once, and the ledger's hash chain verifies.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use object_store::ObjectStore;
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use super::fail_on;

/// A photo a client declared; `acknowledged` when the server confirmed it verified.
#[derive(Debug, Clone)]
pub struct ExpectedPhoto {
    pub sha256: String,
    pub size: u64,
    pub acknowledged: bool,
}

/// What [`check_photos`] looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct PhotosChecked {
    /// Photos acknowledged to the clients, each found stored once with the right bytes.
    pub acknowledged: usize,
    /// Photo rows marked verified in the database, each with its bytes in the store.
    pub verified_rows: usize,
    /// Upload rows checked for partial state (complete or still receiving).
    pub uploads: usize,
}

/// The SHA-256 (hex) and length of the object at `key`, or why it cannot be read.
async fn blob_digest(
    blobs: &dyn ObjectStore,
    key: &object_store::path::Path,
) -> Result<(String, usize), String> {
    use sha2::Digest;
    let got = blobs.get(key).await.map_err(|e| e.to_string())?;
    let bytes = got.bytes().await.map_err(|e| e.to_string())?;
    Ok((hex::encode(sha2::Sha256::digest(&bytes)), bytes.len()))
}

/// Compares the photos clients saw acknowledged with the database and the blob store itself:
/// each is a `verified` row with its size, and `photos/{sha256}` holds bytes hashing to it.
/// No partial state: every `verified` row has its bytes, and every original its row; every
/// complete upload's photo is
/// verified; every upload still receiving has contiguous pieces, all in the store, adding up
/// to what it says it received. Panics with every discrepancy found.
pub async fn check_photos(
    pool: &AnyPool,
    blobs: &dyn ObjectStore,
    expected: &[ExpectedPhoto],
) -> PhotosChecked {
    let mut problems = Vec::new();
    let mut checked = PhotosChecked::default();
    let mut rows: HashMap<String, (String, i64)> = HashMap::new();
    for r in sqlx::query("SELECT sha256, status, size FROM photos")
        .fetch_all(pool)
        .await
        .expect("photos")
    {
        let sha: String = r.try_get("sha256").expect("sha256");
        let status: String = r.try_get("status").expect("status");
        let size: i64 = r.try_get("size").expect("size");
        rows.insert(sha, (status, size));
    }
    let mut seen = HashSet::new();
    for p in expected.iter().filter(|p| p.acknowledged) {
        if !seen.insert(p.sha256.as_str()) {
            continue;
        }
        checked.acknowledged += 1;
        match rows.get(&p.sha256) {
            Some((status, size)) if status == "verified" && *size == p.size as i64 => {}
            other => problems.push(format!(
                "photo {} acknowledged, but the database has {other:?}",
                p.sha256
            )),
        }
    }
    for (sha, (status, size)) in &rows {
        if status != "verified" {
            continue;
        }
        checked.verified_rows += 1;
        match blob_digest(blobs, &gridline_server::photos::original_path(sha)).await {
            Ok((digest, len)) if digest == *sha && len as i64 == *size => {}
            Ok((digest, len)) => problems.push(format!(
                "photo {sha} verified, but the store holds {len} bytes hashing to {digest}"
            )),
            Err(e) => problems.push(format!("photo {sha} verified, but not in the store: {e}")),
        }
    }

    // Each original stored once, under its name, and none without its row: the clients drove
    // every upload to the end, so an original written by a request killed before it could
    // record the photo has been recorded by the retry.
    let listed: Vec<_> = blobs
        .list(Some(&object_store::path::Path::from("photos")))
        .collect()
        .await;
    for meta in listed {
        match meta {
            Ok(meta) => {
                let sha = meta.location.filename().unwrap_or_default();
                if rows.get(sha).is_none_or(|(s, _)| s != "verified") {
                    problems.push(format!("{} stored with no verified photo", meta.location));
                }
            }
            Err(e) => problems.push(format!("cannot list the photo store: {e}")),
        }
    }

    let mut parts: HashMap<String, Vec<(i64, i64, String)>> = HashMap::new();
    for r in sqlx::query("SELECT upload_id, start, length, object_key FROM upload_parts")
        .fetch_all(pool)
        .await
        .expect("upload parts")
    {
        parts
            .entry(r.try_get("upload_id").expect("upload_id"))
            .or_default()
            .push((
                r.try_get("start").expect("start"),
                r.try_get("length").expect("length"),
                r.try_get("object_key").expect("object_key"),
            ));
    }
    for r in sqlx::query("SELECT id, sha256, length, received, state FROM uploads")
        .fetch_all(pool)
        .await
        .expect("uploads")
    {
        checked.uploads += 1;
        let id: String = r.try_get("id").expect("id");
        let sha: String = r.try_get("sha256").expect("sha256");
        let length: i64 = r.try_get("length").expect("length");
        let received: i64 = r.try_get("received").expect("received");
        let state: String = r.try_get("state").expect("state");
        if received > length {
            problems.push(format!(
                "upload {id}: {received} of {length} bytes received"
            ));
        }
        match state.as_str() {
            "complete" => {
                if rows.get(&sha).is_none_or(|(s, _)| s != "verified") || received != length {
                    problems.push(format!(
                        "upload {id} complete, but photo {sha} is not verified"
                    ));
                }
            }
            "receiving" => {
                let mut pieces = parts.remove(&id).unwrap_or_default();
                pieces.sort();
                let mut at = 0;
                for (start, len, key) in &pieces {
                    if *start != at {
                        problems.push(format!("upload {id}: a gap or overlap at {at}"));
                    }
                    at = start + len;
                    match blobs
                        .head(&object_store::path::Path::from(key.as_str()))
                        .await
                    {
                        Ok(meta) if meta.size as i64 == *len => {}
                        other => problems.push(format!(
                            "upload {id}: piece {key} recorded but stored as {other:?}"
                        )),
                    }
                }
                if at != received {
                    problems.push(format!(
                        "upload {id}: says {received} bytes received, its pieces hold {at}"
                    ));
                }
            }
            other => problems.push(format!("upload {id}: state {other}")),
        }
    }
    fail_on(problems);
    checked
}

/// A deduction approval a supervisor saw acknowledged (a 200, or a later read showing it).
#[derive(Debug, Clone)]
pub struct AckedApproval {
    pub proposal_id: Uuid,
    pub entry_id: Uuid,
    pub case_id: Uuid,
}

/// What [`check_ledger`] looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct LedgerChecked {
    /// Entries whose chain verified.
    pub entries: i64,
    pub approved_proposals: usize,
    pub acknowledged: usize,
}

/// The ledger against the proposals and what supervisors saw: the hash chain verifies; every
/// approved proposal has exactly one entry (the one it names) and no other proposal has any;
/// every acknowledged approval is there; a case of an acknowledged approval has exactly one
/// proposal and one entry (retries duplicated nothing); every case with an entry is locked and
/// has one `deduction_approved` event per entry (no partial approval). Panics with every
/// discrepancy found.
pub async fn check_ledger(pool: &AnyPool, acked: &[AckedApproval]) -> LedgerChecked {
    let opt = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<Option<String>, _>(c).expect(c);
    let text = |r: &sqlx::any::AnyRow, c: &str| r.try_get::<String, _>(c).expect(c);
    let mut problems = Vec::new();
    let mut checked = LedgerChecked::default();
    let (entries, first_bad) = gridline_server::store::ledger::verify_chain(pool)
        .await
        .expect("verify the chain");
    checked.entries = entries;
    if let Some(bad) = first_bad {
        problems.push(format!("the ledger chain breaks: {bad:?}"));
    }
    // entry id -> (proposal id, case id)
    let mut by_entry: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let mut by_proposal: HashMap<String, Vec<String>> = HashMap::new();
    let mut per_case: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT id, kind, proposal_id, case_id FROM ledger_entries")
        .fetch_all(pool)
        .await
        .expect("ledger entries")
    {
        let id = text(&r, "id");
        let proposal = opt(&r, "proposal_id");
        let case = opt(&r, "case_id");
        if text(&r, "kind") == "deduction" {
            match &proposal {
                Some(p) => by_proposal.entry(p.clone()).or_default().push(id.clone()),
                None => problems.push(format!("entry {id}: a deduction without a proposal")),
            }
            if let Some(c) = &case {
                *per_case.entry(c.clone()).or_default() += 1;
            }
        }
        by_entry.insert(id, (proposal, case));
    }
    let mut proposals: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut proposals_per_case: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT id, case_id, status, ledger_entry_id FROM deduction_proposals")
        .fetch_all(pool)
        .await
        .expect("proposals")
    {
        let id = text(&r, "id");
        let status = text(&r, "status");
        let entry = opt(&r, "ledger_entry_id");
        if let Some(c) = opt(&r, "case_id") {
            *proposals_per_case.entry(c).or_default() += 1;
        }
        let posted = by_proposal.get(&id).map(Vec::as_slice).unwrap_or_default();
        if status == "approved" {
            checked.approved_proposals += 1;
            if posted.len() != 1 || entry.as_deref() != posted.first().map(String::as_str) {
                problems.push(format!(
                    "proposal {id} approved naming entry {entry:?}, entries posted: {posted:?}"
                ));
            }
        } else if !posted.is_empty() || entry.is_some() {
            problems.push(format!(
                "proposal {id} is {status} but has entries {posted:?}"
            ));
        }
        proposals.insert(id, (status, entry));
    }
    for p in by_proposal.keys() {
        if !proposals.contains_key(p) {
            problems.push(format!("entries {:?} name no proposal", by_proposal[p]));
        }
    }
    for a in acked {
        checked.acknowledged += 1;
        let (pid, eid, case) = (
            a.proposal_id.to_string(),
            a.entry_id.to_string(),
            a.case_id.to_string(),
        );
        match proposals.get(&pid) {
            Some((status, Some(entry))) if status == "approved" && *entry == eid => {}
            other => problems.push(format!(
                "approval of {pid} acknowledged with entry {eid}, proposal is {other:?}"
            )),
        }
        match by_entry.get(&eid) {
            Some((Some(p), Some(c))) if *p == pid && *c == case => {}
            other => problems.push(format!("acknowledged entry {eid}: stored as {other:?}")),
        }
        let (n_entries, n_proposals) = (
            per_case.get(&case).copied().unwrap_or(0),
            proposals_per_case.get(&case).copied().unwrap_or(0),
        );
        if n_entries != 1 || n_proposals != 1 {
            problems.push(format!(
                "case {case}: {n_proposals} proposals and {n_entries} entries, one of each expected"
            ));
        }
    }
    // No partial approval: each entry's case is locked and tells of it once per entry.
    let mut approved_events: HashMap<String, usize> = HashMap::new();
    for r in sqlx::query("SELECT case_id FROM case_events WHERE kind = 'deduction_approved'")
        .fetch_all(pool)
        .await
        .expect("events")
    {
        *approved_events.entry(text(&r, "case_id")).or_default() += 1;
    }
    for (case, n) in &per_case {
        let locked: Option<i64> = sqlx::query_scalar("SELECT locked_at FROM cases WHERE id = $1")
            .bind(case)
            .fetch_optional(pool)
            .await
            .expect("case")
            .flatten();
        if locked.is_none() {
            problems.push(format!("case {case}: {n} entries but not locked"));
        }
        if approved_events.get(case).copied().unwrap_or(0) != *n {
            problems.push(format!(
                "case {case}: {n} entries but {} deduction_approved events",
                approved_events.get(case).copied().unwrap_or(0)
            ));
        }
    }
    fail_on(problems);
    checked
}
