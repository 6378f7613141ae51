//! Ledger entries, their weighting and the hash chain that makes tampering detectable.
//!
//! Each entry's hash is `SHA-256` (lower-case hex) over its canonical text: one `key=value`
//! line per field, in the fixed order of [`canonical_text`], each line ending in `\n`, UTF-8.
//! Free text (`reason`, the roster snapshot, the evidence list) is written as a JSON string so
//! that no value can contain a newline; absent values are empty. The first line names the
//! format (`gridline-ledger-v1`); the last is `prev_hash`, the hash of the entry before (64
//! zeros for the first), which chains every entry to all before it.
//!
//! A deduction for lateness (its proposal's basis `lateness`: the case was not rectified by its
//! deadline) carries in `reason` a JSON document, [`LatenessReason`], that cites whom the case's
//! time limit was told to, so that the hash covers it. The document is canonical: serde_json's
//! compact output of the structs below, fields in their declared order, no whitespace, instants
//! as Unix milliseconds, absent values `null`, `notified` sorted by `recorded_at`, then
//! `mark_pct`, then `user_id`:
//!
//! ```text
//! {"format":"gridline-lateness-v1","case_id":"…","dispatched_at":1767225600000,
//!  "deadline_at":1767234600000,"notified":[{"user_id":"…","role":"section_chief",
//!  "kind":"case.due_soon","mark_pct":50,"notice_id":"…","recorded_at":1767230100000,
//!  "read_at":1767230200000,"acknowledged_at":1767230300000},…]}
//! ```
//!
//! (on one line). `role` is the person's role on the roster the entry freezes (`roster`), `null`
//! if they were not on it; `kind` is `case.due_soon` or `case.overdue`; each recipient of each
//! escalation notice of the case is one item. Any other deduction has no `reason`; a reversal's
//! is its cause and the reason given.

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
    /// JSON array of the hashes of the photos and documents the approval was based on, sorted.
    pub evidence: String,
    pub proposal_id: Option<String>,
    pub reverses_id: Option<String>,
    pub reason: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// Who proposed the deduction (`approved_by` approved it); `None` for a reversal and for
    /// entries posted before it was recorded. Stored with the entry, which is append-only, but
    /// outside the hashed text, whose format stays as it is: the hashed `proposal_id` names the
    /// proposal it came from.
    #[serde(default)]
    pub proposed_by: Option<String>,
}

/// The first field of a [`LatenessReason`]: the version of its layout.
pub const LATENESS_FORMAT: &str = "gridline-lateness-v1";

/// The hashed `reason` of a deduction for lateness (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatenessReason {
    /// [`LATENESS_FORMAT`].
    pub format: String,
    pub case_id: String,
    pub dispatched_at: i64,
    pub deadline_at: i64,
    pub notified: Vec<Told>,
}

/// One recipient of one escalation notice, as a [`LatenessReason`] cites them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Told {
    pub user_id: String,
    pub role: Option<String>,
    pub kind: String,
    pub mark_pct: i64,
    pub notice_id: String,
    pub recorded_at: i64,
    pub read_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
}

impl LatenessReason {
    /// The canonical text: `notified` sorted, then serde_json's compact output.
    pub fn to_canonical(&self) -> String {
        let mut doc = self.clone();
        doc.notified.sort_by(|a, b| {
            (a.recorded_at, a.mark_pct, &a.user_id).cmp(&(b.recorded_at, b.mark_pct, &b.user_id))
        });
        // Strings, integers and options of them always serialise.
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Reads the document back; `None` when `text` is not one in this format.
    pub fn parse(text: &str) -> Option<LatenessReason> {
        serde_json::from_str::<LatenessReason>(text)
            .ok()
            .filter(|d| d.format == LATENESS_FORMAT)
    }
}

/// Weighted points: `raw × coefficient`, both in thousandths, rounded to the nearest
/// thousandth with halves away from zero. Exact integer arithmetic: the same inputs give the
/// same result on every machine. (A reversal does not recompute: it negates the original.)
pub fn weighted_milli(raw_milli: i64, coefficient_milli: i64) -> i64 {
    let product = raw_milli as i128 * coefficient_milli as i128;
    let half = if product >= 0 { 500 } else { -500 };
    ((product + half) / 1000) as i64
}

/// The hashed fields of one entry, borrowed: what the canonical text is made of. The verifier
/// hashes rows as they are read through this view, without copying them into an [`Entry`].
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub kind: &'a str,
    pub zone_id: &'a str,
    pub period_id: &'a str,
    pub rulebook_version: i64,
    pub rule_code: &'a str,
    pub source: &'a str,
    pub category_code: Option<&'a str>,
    pub work_category: Option<&'a str>,
    pub raw_points_milli: i64,
    pub coefficient_milli: i64,
    pub weighted_points_milli: i64,
    pub roster: &'a str,
    pub approved_by: &'a str,
    pub approved_at: i64,
    pub found_at: i64,
    pub case_id: Option<&'a str>,
    pub case_version: Option<i64>,
    pub evidence: &'a str,
    pub proposal_id: Option<&'a str>,
    pub reverses_id: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub prev_hash: &'a str,
}

impl Entry {
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            seq: self.seq,
            id: &self.id,
            kind: &self.kind,
            zone_id: &self.zone_id,
            period_id: &self.period_id,
            rulebook_version: self.rulebook_version,
            rule_code: &self.rule_code,
            source: &self.source,
            category_code: self.category_code.as_deref(),
            work_category: self.work_category.as_deref(),
            raw_points_milli: self.raw_points_milli,
            coefficient_milli: self.coefficient_milli,
            weighted_points_milli: self.weighted_points_milli,
            roster: &self.roster,
            approved_by: &self.approved_by,
            approved_at: self.approved_at,
            found_at: self.found_at,
            case_id: self.case_id.as_deref(),
            case_version: self.case_version,
            evidence: &self.evidence,
            proposal_id: self.proposal_id.as_deref(),
            reverses_id: self.reverses_id.as_deref(),
            reason: self.reason.as_deref(),
            prev_hash: &self.prev_hash,
        }
    }
}

/// Appends the lines of the canonical text to `out`, one piece at a time.
struct Lines<'a>(&'a mut Vec<u8>);

impl Lines<'_> {
    fn raw(&mut self, key: &str, v: &str) {
        self.0.extend_from_slice(key.as_bytes());
        self.0.push(b'=');
        self.0.extend_from_slice(v.as_bytes());
        self.0.push(b'\n');
    }

    fn opt(&mut self, key: &str, v: Option<&str>) {
        self.raw(key, v.unwrap_or_default());
    }

    fn int(&mut self, key: &str, v: i64) {
        self.opt_int(key, Some(v));
    }

    fn opt_int(&mut self, key: &str, v: Option<i64>) {
        use std::io::Write as _;
        self.0.extend_from_slice(key.as_bytes());
        self.0.push(b'=');
        if let Some(v) = v {
            // Writing to a `Vec` cannot fail.
            let _ = write!(self.0, "{v}");
        }
        self.0.push(b'\n');
    }

    /// Free text as a JSON string (serde_json's escaping), absent as empty.
    fn text(&mut self, key: &str, v: Option<&str>) {
        self.0.extend_from_slice(key.as_bytes());
        self.0.push(b'=');
        if let Some(v) = v {
            // Writing to a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *self.0, v);
        }
        self.0.push(b'\n');
    }
}

/// Appends the canonical text of `f` to `out` (see the module documentation).
pub fn write_canonical(f: &Fields, out: &mut Vec<u8>) {
    let mut l = Lines(out);
    l.raw("format", CHAIN_FORMAT);
    l.int("seq", f.seq);
    l.raw("id", f.id);
    l.raw("kind", f.kind);
    l.raw("zone_id", f.zone_id);
    l.raw("period_id", f.period_id);
    l.int("rulebook_version", f.rulebook_version);
    l.text("rule_code", Some(f.rule_code));
    l.raw("source", f.source);
    l.opt("category_code", f.category_code);
    l.opt("work_category", f.work_category);
    l.int("raw_points_milli", f.raw_points_milli);
    l.int("coefficient_milli", f.coefficient_milli);
    l.int("weighted_points_milli", f.weighted_points_milli);
    l.text("roster", Some(f.roster));
    l.raw("approved_by", f.approved_by);
    l.int("approved_at", f.approved_at);
    l.int("found_at", f.found_at);
    l.opt("case_id", f.case_id);
    l.opt_int("case_version", f.case_version);
    l.text("evidence", Some(f.evidence));
    l.opt("proposal_id", f.proposal_id);
    l.opt("reverses_id", f.reverses_id);
    l.text("reason", f.reason);
    l.raw("prev_hash", f.prev_hash);
}

/// The canonical text hashed for `e` (its `hash` field is not part of it).
pub fn canonical_text(e: &Entry) -> String {
    let mut out = Vec::new();
    write_canonical(&e.fields(), &mut out);
    // Every piece written is UTF-8 (`&str`s, decimal digits, JSON of a `&str`).
    String::from_utf8_lossy(&out).into_owned()
}

/// The hash of `f` as lower-case hex; `buf` is scratch space, reused between calls.
pub fn fields_hash(f: &Fields, buf: &mut Vec<u8>) -> [u8; 64] {
    buf.clear();
    write_canonical(f, buf);
    let mut hex_out = [0u8; 64];
    // 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(Sha256::digest(buf.as_slice()), &mut hex_out);
    hex_out
}

pub fn entry_hash(e: &Entry) -> String {
    let hex_out = fields_hash(&e.fields(), &mut Vec::new());
    String::from_utf8_lossy(&hex_out).into_owned()
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

/// Checks entries one at a time, in `seq` order: the rule of [`verify_from`] for callers that
/// read the chain as a stream.
#[derive(Debug)]
pub struct ChainCheck {
    next_seq: i64,
    prev: String,
    buf: Vec<u8>,
}

impl ChainCheck {
    /// A stretch of the chain that should start at `first_seq` and link to `prev`.
    pub fn new(first_seq: i64, prev: &str) -> Self {
        ChainCheck {
            next_seq: first_seq,
            prev: prev.to_owned(),
            buf: Vec::with_capacity(1024),
        }
    }

    /// Checks the next entry, `f` with its stored `hash`: `None` when it links and hashes as
    /// it should, else the problem (`seq_gap`, `prev_hash_mismatch` or `hash_mismatch`).
    pub fn check(&mut self, f: &Fields, hash: &str) -> Option<&'static str> {
        if f.seq != self.next_seq {
            return Some("seq_gap");
        }
        if f.prev_hash != self.prev {
            return Some("prev_hash_mismatch");
        }
        if fields_hash(f, &mut self.buf).as_slice() != hash.as_bytes() {
            return Some("hash_mismatch");
        }
        self.next_seq += 1;
        self.prev.clear();
        self.prev.push_str(hash);
        None
    }

    /// The `seq` the next entry must have, and the hash it must link to (that of the last
    /// entry checked, or the starting `prev`).
    pub fn expects(&self) -> (i64, &str) {
        (self.next_seq, &self.prev)
    }
}

/// Recomputes a stretch of the chain that should start at `first_seq` and link to `prev`.
pub fn verify_from<'a>(
    first_seq: i64,
    prev: &str,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Option<ChainBreak> {
    let mut check = ChainCheck::new(first_seq, prev);
    entries.into_iter().find_map(|e| {
        check.check(&e.fields(), &e.hash).map(|problem| ChainBreak {
            seq: e.seq,
            id: e.id.clone(),
            problem: problem.to_owned(),
        })
    })
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
            proposed_by: None,
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

    /// Hashes computed by the original `String`-building implementation: any change to the
    /// canonical text or its escaping would stop existing chains from verifying.
    #[test]
    fn hashes_stay_those_of_existing_chains() {
        let a = entry(1, GENESIS);
        assert_eq!(
            a.hash,
            "36e0df0d2f2c0ecaa725a5ab330baa379e96a773763a9a7d6e0940a120d0e4ac"
        );
        let mut b = entry(2, &a.hash);
        b.kind = "reversal".into();
        b.rule_code = "R \"q\" \\ é".into();
        b.category_code = None;
        b.work_category = None;
        b.raw_points_milli = -200;
        b.coefficient_milli = 1_000_000;
        b.weighted_points_milli = i64::MIN;
        b.roster = "[{\"name\":\"Zoë\\u0001\"}]\t\u{1}\u{7f}\u{2028}\r".into();
        b.approved_at = 1_790_000_000_123;
        b.found_at = -5;
        b.case_id = Some("0190c000-0000-7000-8000-000000000001".into());
        b.case_version = Some(7);
        b.evidence = "[\"ab\"]".into();
        b.proposal_id = Some("p1".into());
        b.reverses_id = Some("e1".into());
        b.reason = None;
        assert_eq!(
            entry_hash(&b),
            "76760ada35c90549a4592106eea4e96345d208d4d2b89f22433125027841c0ac"
        );
        assert!(canonical_text(&b).contains(
            "\nroster=\"[{\\\"name\\\":\\\"Zoë\\\\u0001\\\"}]\\t\\u0001\u{7f}\u{2028}\\r\"\n"
        ));
        assert!(canonical_text(&b).contains("\ncase_version=7\nevidence="));
        assert!(canonical_text(&b).contains("\nreason=\nprev_hash=36e0"));
        b.hash = entry_hash(&b);
        assert_eq!(verify([&a, &b]), None);
    }

    /// The lateness document is canonical: its items sorted, its fields in a fixed order, so
    /// the same facts always hash the same; and it reads back as written.
    #[test]
    fn a_lateness_reason_is_canonical_and_reads_back() {
        let told = |user: &str, mark: i64, at: i64| Told {
            user_id: user.into(),
            role: Some("road_chief".into()),
            kind: "case.overdue".into(),
            mark_pct: mark,
            notice_id: "n".into(),
            recorded_at: at,
            read_at: None,
            acknowledged_at: Some(at + 1),
        };
        let doc = LatenessReason {
            format: LATENESS_FORMAT.into(),
            case_id: "c".into(),
            dispatched_at: 1,
            deadline_at: 2,
            notified: vec![told("b", 100, 5), told("a", 100, 5), told("a", 50, 3)],
        };
        let text = doc.to_canonical();
        assert_eq!(
            text,
            "{\"format\":\"gridline-lateness-v1\",\"case_id\":\"c\",\"dispatched_at\":1,\
             \"deadline_at\":2,\"notified\":[{\"user_id\":\"a\",\"role\":\"road_chief\",\
             \"kind\":\"case.overdue\",\"mark_pct\":50,\"notice_id\":\"n\",\"recorded_at\":3,\
             \"read_at\":null,\"acknowledged_at\":4},{\"user_id\":\"a\",\"role\":\"road_chief\",\
             \"kind\":\"case.overdue\",\"mark_pct\":100,\"notice_id\":\"n\",\"recorded_at\":5,\
             \"read_at\":null,\"acknowledged_at\":6},{\"user_id\":\"b\",\"role\":\"road_chief\",\
             \"kind\":\"case.overdue\",\"mark_pct\":100,\"notice_id\":\"n\",\"recorded_at\":5,\
             \"read_at\":null,\"acknowledged_at\":6}]}"
        );
        let back = LatenessReason::parse(&text).unwrap();
        assert_eq!(back.to_canonical(), text);
        assert_eq!(LatenessReason::parse("correction: entered twice"), None);
        assert_eq!(
            LatenessReason::parse(&text.replace("gridline-lateness-v1", "v0")),
            None
        );
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
