//! Ledger entries, their weighting and the hash chain that makes tampering detectable.
//!
//! Each entry's hash is `SHA-256` (lower-case hex) over its canonical text: one `key=value`
//! line per field, in the fixed order of [`canonical_text`], each line ending in `\n`, UTF-8.
//! Free text (`reason`, the roster snapshot, the evidence list) is written as a JSON string so
//! that no value can contain a newline; absent values are empty. The first line names the
//! format (`gridline-ledger-v1`); the last is `prev_hash`, the hash of the entry before (64
//! zeros for the first), which chains every entry to all before it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const CHAIN_FORMAT: &str = "gridline-ledger-v1";

/// One ledger entry as stored. Points and coefficients are thousandths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: i64,
    pub id: String,
    /// `deduction` or `reversal`.
    pub kind: String,
    pub zone_id: String,
    pub period_id: String,
    pub rulebook_version: i64,
    pub rule_code: String,
    pub source: String,
    pub category_code: Option<String>,
    pub work_category: Option<String>,
    pub raw_points_milli: i64,
    pub coefficient_milli: i64,
    /// Negative for a reversal.
    pub weighted_points_milli: i64,
    /// JSON array: the accountable people of the zone at the time of the finding.
    pub roster: String,
    pub approved_by: String,
    pub approved_at: i64,
    pub found_at: i64,
    pub case_id: Option<String>,
    pub case_version: Option<i64>,
    /// JSON array of the photo hashes the approval was based on, sorted.
    pub evidence: String,
    pub proposal_id: Option<String>,
    pub reverses_id: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Weighted points: `raw × coefficient`, both in thousandths, rounded to the nearest
/// thousandth with halves away from zero. Exact integer arithmetic: the same inputs give the
/// same result on every machine. (A reversal does not recompute: it negates the original.)
pub fn weighted_milli(raw_milli: i64, coefficient_milli: i64) -> i64 {
    let product = raw_milli as i128 * coefficient_milli as i128;
    let half = if product >= 0 { 500 } else { -500 };
    ((product + half) / 1000) as i64
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_default()
}

fn text(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The canonical text hashed for `e` (its `hash` field is not part of it).
pub fn canonical_text(e: &Entry) -> String {
    let lines: [(&str, String); 24] = [
        ("format", CHAIN_FORMAT.to_owned()),
        ("seq", e.seq.to_string()),
        ("id", e.id.clone()),
        ("kind", e.kind.clone()),
        ("zone_id", e.zone_id.clone()),
        ("period_id", e.period_id.clone()),
        ("rulebook_version", e.rulebook_version.to_string()),
        ("rule_code", text(&e.rule_code)),
        ("source", e.source.clone()),
        ("category_code", opt(&e.category_code)),
        ("work_category", opt(&e.work_category)),
        ("raw_points_milli", e.raw_points_milli.to_string()),
        ("coefficient_milli", e.coefficient_milli.to_string()),
        ("weighted_points_milli", e.weighted_points_milli.to_string()),
        ("roster", text(&e.roster)),
        ("approved_by", e.approved_by.clone()),
        ("approved_at", e.approved_at.to_string()),
        ("found_at", e.found_at.to_string()),
        ("case_id", opt(&e.case_id)),
        ("case_version", opt(&e.case_version)),
        ("evidence", text(&e.evidence)),
        ("proposal_id", opt(&e.proposal_id)),
        ("reverses_id", opt(&e.reverses_id)),
        ("reason", e.reason.as_deref().map(text).unwrap_or_default()),
    ];
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(k);
        out.push('=');
        out.push_str(&v);
        out.push('\n');
    }
    out.push_str("prev_hash=");
    out.push_str(&e.prev_hash);
    out.push('\n');
    out
}

pub fn entry_hash(e: &Entry) -> String {
    hex::encode(Sha256::digest(canonical_text(e).as_bytes()))
}

/// The first entry that breaks the chain, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainBreak {
    pub seq: i64,
    pub id: String,
    /// `seq_gap`, `prev_hash_mismatch` or `hash_mismatch`.
    pub problem: String,
}

/// Recomputes the chain over entries in `seq` order from the start; `None` when every entry
/// checks out.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Option<ChainBreak> {
    verify_from(1, GENESIS, entries)
}

/// Recomputes a stretch of the chain that should start at `first_seq` and link to `prev`.
pub fn verify_from<'a>(
    first_seq: i64,
    prev: &str,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Option<ChainBreak> {
    let mut prev = prev.to_owned();
    for (expected_seq, e) in (first_seq..).zip(entries) {
        let problem = if e.seq != expected_seq {
            Some("seq_gap")
        } else if e.prev_hash != prev {
            Some("prev_hash_mismatch")
        } else if entry_hash(e) != e.hash {
            Some("hash_mismatch")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Some(ChainBreak {
                seq: e.seq,
                id: e.id.clone(),
                problem: problem.to_owned(),
            });
        }
        prev = e.hash.clone();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(seq: i64, prev: &str) -> Entry {
        let mut e = Entry {
            seq,
            id: format!("e{seq}"),
            kind: "deduction".into(),
            zone_id: "z".into(),
            period_id: "p".into(),
            rulebook_version: 1,
            rule_code: "INSP-GARBAGE".into(),
            source: "inspection".into(),
            category_code: Some("event:0102".into()),
            work_category: Some("environmental_sanitation".into()),
            raw_points_milli: 200,
            coefficient_milli: 1050,
            weighted_points_milli: 210,
            roster: "[]".into(),
            approved_by: "u".into(),
            approved_at: 1,
            found_at: 1,
            case_id: None,
            case_version: None,
            evidence: "[]".into(),
            proposal_id: None,
            reverses_id: None,
            reason: Some("line one\nline=two".into()),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        e
    }

    #[test]
    fn weighting_rounds_half_away_from_zero() {
        assert_eq!(weighted_milli(200, 1050), 210);
        assert_eq!(weighted_milli(333, 1500), 500); // 499.5 → 500
        assert_eq!(weighted_milli(-333, 1500), -500);
        assert_eq!(weighted_milli(1, 1), 0);
        assert_eq!(weighted_milli(2000, 1000), 2000);
    }

    #[test]
    fn canonical_text_escapes_free_text_and_ends_with_the_link() {
        let e = entry(1, GENESIS);
        let t = canonical_text(&e);
        assert!(t.starts_with("format=gridline-ledger-v1\nseq=1\n"));
        assert!(t.contains("reason=\"line one\\nline=two\"\n"));
        assert!(t.ends_with(&format!("prev_hash={GENESIS}\n")));
        assert_eq!(t.lines().count(), 25);
    }

    #[test]
    fn verify_finds_the_first_bad_entry() {
        let a = entry(1, GENESIS);
        let b = entry(2, &a.hash);
        let c = entry(3, &b.hash);
        assert_eq!(verify([&a, &b, &c]), None);

        let mut tampered = b.clone();
        tampered.weighted_points_milli = 1;
        let found = verify([&a, &tampered, &c]).unwrap();
        assert_eq!((found.seq, found.problem.as_str()), (2, "hash_mismatch"));

        // Rehashing the tampered entry only moves the break to the next link.
        tampered.hash = entry_hash(&tampered);
        let found = verify([&a, &tampered, &c]).unwrap();
        assert_eq!(
            (found.seq, found.problem.as_str()),
            (3, "prev_hash_mismatch")
        );

        let found = verify([&a, &c]).unwrap();
        assert_eq!((found.seq, found.problem.as_str()), (3, "seq_gap"));
    }
}
