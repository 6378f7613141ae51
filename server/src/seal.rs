//! Sealed plans: proof that an unannounced inspection was planned before its findings.
//!
//! At creation, an unannounced plan's **commitment** is computed: the SHA-256 of a text naming
//! its id, recurrence, window, zones, categories, assignees, checklist and a secret random
//! nonce ([`commitment_text`]). Only the commitment is published: it is appended as a leaf to
//! the plan log, an RFC 6962 Merkle tree (the same hashing as the ledger's log), and the tree
//! head after it is signed with the server's key ([`receipt_text`]). Before the reveal nobody
//! can learn the plan from the commitment (the nonce is secret); after it, the plan and the
//! nonce are published, and anyone can recompute the commitment, check that it is the leaf
//! the signed head includes, and compare the head's time with the findings' ([`verify`]). A
//! plan changed after its creation gives another commitment and no longer verifies; a plan
//! made up after the findings has a later receipt.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ct_merkle::{InclusionProof, RootHash};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ledger::log::Leaf;

/// The first line of a commitment's text.
pub const COMMITMENT_FORMAT: &str = "gridline-plan-commitment-v1";
/// The first line of a plan log receipt's signed text.
pub const RECEIPT_FORMAT: &str = "gridline-plan-log-v1";

/// What a commitment covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SealedContent {
    pub plan_id: Uuid,
    pub rrule: String,
    pub dtstart: String,
    pub time_zone: String,
    pub window_minutes: u32,
    pub zones: Vec<Uuid>,
    pub categories: Vec<String>,
    pub assignees: Vec<Uuid>,
    /// The checklist template as JSON text, exactly as stored.
    pub checklist: String,
}

/// The text whose SHA-256 is the commitment: one `name=value` line each, lists sorted and
/// comma-separated, every line ending in `\n`; the checklist enters as the hex SHA-256 of its
/// JSON text.
pub fn commitment_text(c: &SealedContent, nonce_hex: &str) -> String {
    let mut zones: Vec<String> = c.zones.iter().map(Uuid::to_string).collect();
    zones.sort();
    let mut categories = c.categories.clone();
    categories.sort();
    let mut assignees: Vec<String> = c.assignees.iter().map(Uuid::to_string).collect();
    assignees.sort();
    format!(
        "{COMMITMENT_FORMAT}\nplan_id={}\nrrule={}\ndtstart={}\ntime_zone={}\n\
         window_minutes={}\nzones={}\ncategories={}\nassignees={}\nchecklist_sha256={}\n\
         nonce={nonce_hex}\n",
        c.plan_id,
        c.rrule,
        c.dtstart,
        c.time_zone,
        c.window_minutes,
        zones.join(","),
        categories.join(","),
        assignees.join(","),
        hex::encode(Sha256::digest(c.checklist.as_bytes())),
    )
}

/// The commitment (lower-case hex SHA-256) of `c` with `nonce_hex`.
pub fn commitment(c: &SealedContent, nonce_hex: &str) -> String {
    hex::encode(Sha256::digest(commitment_text(c, nonce_hex).as_bytes()))
}

/// A fresh secret nonce: 32 random bytes, hex.
pub fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The text a receipt's signature covers: the plan log's head right after the commitment was
/// appended.
pub fn receipt_text(tree_size: i64, root_hash: &str, timestamp: i64) -> String {
    format!(
        "{RECEIPT_FORMAT}\ntree_size={tree_size}\nroot_hash={root_hash}\ntimestamp={timestamp}\n"
    )
}

/// A signed head of the plan log, issued when a commitment was appended (it is the log's
/// `tree_size`-th leaf).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanReceipt {
    pub tree_size: i64,
    pub root_hash: String,
    /// When the commitment was appended, Unix milliseconds.
    pub timestamp: i64,
    pub key_id: String,
    /// The signing key's Ed25519 public key, base64 of its 32 bytes.
    pub public_key: String,
    /// Base64 of the Ed25519 signature over [`receipt_text`].
    pub signature: String,
}

impl PlanReceipt {
    pub fn issue(
        tree_size: i64,
        root: &Leaf,
        timestamp: i64,
        key_id: &str,
        key: &SigningKey,
    ) -> Self {
        let root_hash = hex::encode(root);
        let text = receipt_text(tree_size, &root_hash, timestamp);
        PlanReceipt {
            tree_size,
            root_hash,
            timestamp,
            key_id: key_id.to_owned(),
            public_key: STANDARD.encode(key.verifying_key().as_bytes()),
            signature: STANDARD.encode(key.sign(text.as_bytes()).to_bytes()),
        }
    }

    fn signed_by(&self, key: &VerifyingKey) -> bool {
        let text = receipt_text(self.tree_size, &self.root_hash, self.timestamp);
        STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|s| Signature::from_slice(&s).ok())
            .is_some_and(|sig| key.verify(text.as_bytes(), &sig).is_ok())
    }
}

/// Everything needed to check a revealed plan without the server: what the plan said, its
/// nonce, the commitment, the receipt and the audit path of the commitment in the tree the
/// receipt signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SealProof {
    pub content: SealedContent,
    /// The secret nonce, hex: published at the reveal, absent before it.
    pub nonce: Option<String>,
    /// The commitment as appended at creation.
    pub commitment: String,
    pub receipt: PlanReceipt,
    /// The RFC 9162 audit path of leaf `receipt.tree_size - 1`, hex hashes from the leaf up.
    pub inclusion_proof: Vec<String>,
    /// The earliest finding of the plan's rounds (a round started, a case captured), Unix
    /// milliseconds; the receipt must be older.
    pub first_finding_at: Option<i64>,
}

/// Why a seal does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SealProblem {
    /// The plan is not revealed: there is no nonce to check with.
    NotRevealed,
    /// The plan as it stands, with the nonce, does not give the commitment: it was changed.
    ContentChanged,
    /// The commitment is not the leaf the signed head includes.
    NotInLog,
    /// The receipt's signature does not verify with the key named.
    BadSignature,
    /// A finding is older than the commitment: the plan came after it.
    PlannedAfterFindings,
}

impl SealProblem {
    pub fn describe(self) -> &'static str {
        match self {
            SealProblem::NotRevealed => "not revealed yet: there is no nonce to check it with",
            SealProblem::ContentChanged => {
                "the plan as it stands does not give the commitment: it was changed after its \
                 creation"
            }
            SealProblem::NotInLog => "the commitment is not the leaf the signed log head includes",
            SealProblem::BadSignature => "the log head's signature does not verify with that key",
            SealProblem::PlannedAfterFindings => {
                "a finding is older than the commitment: the plan was made after it"
            }
        }
    }
}

/// Checks a seal with the public key `key` (which a verifier should obtain from the operator,
/// not from the proof): every problem found, none when it holds.
pub fn verify(p: &SealProof, key: &VerifyingKey) -> Vec<SealProblem> {
    let mut problems = Vec::new();
    match &p.nonce {
        None => problems.push(SealProblem::NotRevealed),
        Some(nonce) if commitment(&p.content, nonce) != p.commitment => {
            problems.push(SealProblem::ContentChanged);
        }
        Some(_) => {}
    }
    if !included(p) {
        problems.push(SealProblem::NotInLog);
    }
    if !p.receipt.signed_by(key) {
        problems.push(SealProblem::BadSignature);
    }
    if p.first_finding_at.is_some_and(|f| f < p.receipt.timestamp) {
        problems.push(SealProblem::PlannedAfterFindings);
    }
    problems
}

fn included(p: &SealProof) -> bool {
    let (Some(leaf), Some(root)) = (
        crate::ledger::log::leaf(&p.commitment),
        crate::ledger::log::leaf(&p.receipt.root_hash),
    ) else {
        return false;
    };
    let Ok(size) = u64::try_from(p.receipt.tree_size) else {
        return false;
    };
    let Some(path) = p
        .inclusion_proof
        .iter()
        .map(|h| crate::ledger::log::leaf(h))
        .collect::<Option<Vec<Leaf>>>()
    else {
        return false;
    };
    let Ok(proof) = InclusionProof::<Sha256>::try_from_bytes(path.concat()) else {
        return false;
    };
    size > 0
        && RootHash::<Sha256>::new(root.into(), size)
            .verify_inclusion(&leaf, size - 1, &proof)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::log::Log;

    fn content() -> SealedContent {
        SealedContent {
            plan_id: Uuid::nil(),
            rrule: "FREQ=WEEKLY;BYDAY=TU".into(),
            dtstart: "2026-12-01T10:00".into(),
            time_zone: "Asia/Shanghai".into(),
            window_minutes: 120,
            zones: vec![Uuid::from_u128(2), Uuid::from_u128(1)],
            categories: vec![],
            assignees: vec![Uuid::from_u128(7)],
            checklist: r#"{"items":[]}"#.into(),
        }
    }

    fn proof_for(c: &SealedContent, nonce: &str, others: usize, at: i64) -> SealProof {
        let key = SigningKey::from_bytes(&[7; 32]);
        let commitment = commitment(c, nonce);
        let mut leaves: Vec<Leaf> = (0..others).map(|i| [i as u8; 32]).collect();
        leaves.push(crate::ledger::log::leaf(&commitment).unwrap());
        let log = Log::from_leaves(leaves.iter().copied());
        let size = log.size();
        SealProof {
            content: c.clone(),
            nonce: Some(nonce.into()),
            commitment,
            receipt: PlanReceipt::issue(size as i64, &log.root(), at, "k1", &key),
            inclusion_proof: log
                .inclusion_proof(size - 1)
                .unwrap()
                .iter()
                .map(hex::encode)
                .collect(),
            first_finding_at: Some(at + 1),
        }
    }

    #[test]
    fn a_seal_verifies_and_any_change_is_caught() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let nonce = "ab".repeat(32);
        for others in [0, 1, 4, 6] {
            let p = proof_for(&content(), &nonce, others, 1_000);
            assert_eq!(verify(&p, &key), vec![], "{others} leaves before");
        }
        let good = proof_for(&content(), &nonce, 3, 1_000);

        let mut changed = good.clone();
        changed.content.assignees.push(Uuid::from_u128(8));
        assert_eq!(verify(&changed, &key), vec![SealProblem::ContentChanged]);

        let mut late = good.clone();
        late.first_finding_at = Some(999);
        assert_eq!(verify(&late, &key), vec![SealProblem::PlannedAfterFindings]);

        let mut forged = good.clone();
        forged.receipt.timestamp = 1;
        assert_eq!(verify(&forged, &key), vec![SealProblem::BadSignature]);

        let mut elsewhere = good.clone();
        elsewhere.inclusion_proof.reverse();
        assert!(verify(&elsewhere, &key).contains(&SealProblem::NotInLog));

        let mut hidden = good;
        hidden.nonce = None;
        assert_eq!(verify(&hidden, &key), vec![SealProblem::NotRevealed]);
    }

    #[test]
    fn the_commitment_ignores_list_order_and_hides_the_plan() {
        let mut c = content();
        let a = commitment(&c, "00");
        c.zones.reverse();
        assert_eq!(commitment(&c, "00"), a);
        assert_ne!(commitment(&c, "01"), a);
        assert!(commitment_text(&c, "00").ends_with("nonce=00\n"));
    }
}
