//! The ledger as a transparency log, in the manner of Certificate Transparency (RFC 6962,
//! RFC 9162 §2.1): the entries, in `seq` order, are the leaves of a Merkle tree, and the
//! server signs checkpoints (tree heads: the tree's size and root hash, and a time). Whoever
//! saved a checkpoint can later check that the ledger still holds exactly those entries at
//! its start (the root at that size is the same), that an entry is among them (an inclusion
//! proof) and that a later checkpoint only appended to it (a consistency proof). The hash
//! chain alone cannot show this: whoever can write the database can change an entry and
//! recompute every later hash, or remove the newest entries.
//!
//! - Leaf `i` (from 0) is the 32 bytes of the hash of the entry with `seq` `i + 1` (see
//!   [`super::chain`]); its leaf hash is `SHA-256(0x00 ‖ those 32 bytes)` and an inner node's
//!   `SHA-256(0x01 ‖ left ‖ right)`, as RFC 6962 §2.1 defines them; the tree of no entries has
//!   root `SHA-256("")`. The tree and the proofs are `ct_merkle`'s.
//! - A checkpoint is signed with the server's current Ed25519 key (the one that signs tokens
//!   and receipts, named by `key_id`) over its text, UTF-8, every line ending in `\n`:
//!   `gridline-ledger-checkpoint-v1`, `tree_size=<n>`, `root_hash=<64 hex digits>`,
//!   `timestamp=<Unix ms>` ([`Checkpoint::text`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first line of a checkpoint's signed text.
pub const CHECKPOINT_FORMAT: &str = "gridline-ledger-checkpoint-v1";

/// A leaf: the 32 bytes of an entry's hash.
pub type Leaf = [u8; 32];

/// The leaf of an entry whose hash is `hex` (64 hex digits); `None` for anything else.
pub fn leaf(hex: &str) -> Option<Leaf> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// The Merkle tree over the first entries of the ledger.
#[derive(Debug, Clone, Default)]
pub struct Log {
    tree: MemoryBackedTree<Sha256, Leaf>,
}

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_leaves(leaves: impl IntoIterator<Item = Leaf>) -> Self {
        let mut log = Log::new();
        for l in leaves {
            log.push(l);
        }
        log
    }

    pub fn push(&mut self, leaf: Leaf) {
        self.tree.push(leaf);
    }

    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// The RFC 6962 Merkle tree hash of the leaves so far.
    pub fn root(&self) -> Leaf {
        self.tree
            .root()
            .as_bytes()
            .as_slice()
            .try_into()
            .unwrap_or([0; 32])
    }

    /// The audit path of leaf `index` in the whole tree, leaf to root (RFC 9162 §2.1.3); `None`
    /// when there is no such leaf.
    pub fn inclusion_proof(&self, index: u64) -> Option<Vec<Leaf>> {
        let index = usize::try_from(index).ok()?;
        (index < self.tree.items().len())
            .then(|| hashes(self.tree.prove_inclusion(index).as_bytes()))
    }

    /// The consistency proof from the tree of the first `first` leaves to the whole tree (RFC
    /// 9162 §2.1.4); empty when `first` is the whole tree, `None` when `first` is 0 or larger.
    pub fn consistency_proof(&self, first: u64) -> Option<Vec<Leaf>> {
        let additions = usize::try_from(self.size().checked_sub(first)?).ok()?;
        (first > 0).then(|| hashes(self.tree.prove_consistency(additions).as_bytes()))
    }
}

/// A proof's concatenated hashes, one by one.
fn hashes(bytes: &[u8]) -> Vec<Leaf> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// The compact form of a tree for appending to it: the roots of the perfect subtrees that
/// make up its leaves, largest (leftmost) first, one per set bit of the size (RFC 9162
/// §2.1.1's decomposition). A checkpoint stores it, so that the next one hashes only the
/// entries appended since rather than the whole ledger. `ct_merkle` keeps whole trees only,
/// hence the leaf and node hashing written out here; the tests hold it to `ct_merkle`'s roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Leaf>,
}

fn leaf_hash(leaf: &Leaf) -> Leaf {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(leaf)
        .finalize()
        .into()
}

fn node_hash(left: &Leaf, right: &Leaf) -> Leaf {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: &Leaf) {
        let mut hash = leaf_hash(leaf);
        // The new leaf completes one subtree per trailing one bit of the size.
        let mut size = self.size;
        while size & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// The Merkle tree hash of the leaves pushed (`SHA-256("")` for none).
    pub fn root(&self) -> Leaf {
        match self.nodes.split_last() {
            None => Sha256::digest(b"").into(),
            Some((last, rest)) => rest.iter().rev().fold(*last, |acc, l| node_hash(l, &acc)),
        }
    }

    /// As stored: the subtree roots in hex, separated by commas.
    pub fn to_text(&self) -> String {
        let hexes: Vec<String> = self.nodes.iter().map(hex::encode).collect();
        hexes.join(",")
    }

    /// Parses [`Frontier::to_text`] for a tree of `size` leaves; `None` unless it has one
    /// well-formed hash per set bit of `size`.
    pub fn from_text(size: u64, text: &str) -> Option<Frontier> {
        let nodes: Vec<Leaf> = if text.is_empty() {
            vec![]
        } else {
            text.split(',').map(leaf).collect::<Option<_>>()?
        };
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }
}

/// A signed tree head, as served by `GET /v1/ledger/checkpoint` and read by
/// `gridline ledger verify --checkpoint FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// The entries covered: those with `seq` 1 to `tree_size`.
    pub tree_size: i64,
    /// The RFC 6962 Merkle tree hash over them, lower-case hex.
    pub root_hash: String,
    /// When the checkpoint was issued, Unix milliseconds.
    pub timestamp: i64,
    /// The id of the server key that signed it (that of tokens and receipts).
    pub key_id: String,
    /// That key's Ed25519 public key, base64 of its 32 bytes. A verifier should compare it
    /// with the key it obtained from the operator rather than trust it from here.
    pub public_key: String,
    /// Base64 of the Ed25519 signature over the checkpoint's text (see SECURITY.md).
    pub signature: String,
}

/// The text a checkpoint's signature covers.
pub fn checkpoint_text(tree_size: i64, root_hash: &str, timestamp: i64) -> String {
    format!("{CHECKPOINT_FORMAT}\ntree_size={tree_size}\nroot_hash={root_hash}\ntimestamp={timestamp}\n")
}

/// The keys checkpoints are signed and checked with: the server's keyring implements it, so that
/// the storage of checkpoints needs no more than this.
pub trait CheckpointKeys {
    /// The id and the key new checkpoints are signed with.
    fn signer(&self) -> (&str, &SigningKey);
    /// The public key of `kid`, if it is one of ours.
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey>;
}

impl Checkpoint {
    /// Signs the tree head of `tree_size` leaves with root `root` at `timestamp` with `key`
    /// (whose id is `key_id`).
    pub fn issue(
        tree_size: u64,
        root: &Leaf,
        timestamp: i64,
        key_id: &str,
        key: &SigningKey,
    ) -> Checkpoint {
        let tree_size = i64::try_from(tree_size).unwrap_or(i64::MAX);
        let root_hash = hex::encode(root);
        let text = checkpoint_text(tree_size, &root_hash, timestamp);
        Checkpoint {
            tree_size,
            root_hash,
            timestamp,
            key_id: key_id.to_owned(),
            public_key: STANDARD.encode(key.verifying_key().as_bytes()),
            signature: STANDARD.encode(key.sign(text.as_bytes()).to_bytes()),
        }
    }

    pub fn text(&self) -> String {
        checkpoint_text(self.tree_size, &self.root_hash, self.timestamp)
    }

    /// Whether the signature is `key`'s over the checkpoint's text.
    pub fn signed_by(&self, key: &VerifyingKey) -> bool {
        let Ok(sig) = STANDARD.decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&sig) else {
            return false;
        };
        key.verify(self.text().as_bytes(), &sig).is_ok()
    }
}

/// What is wrong with a checkpoint, judged against the ledger's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Its `key_id` is no key of this server.
    UnknownKey,
    /// The signature does not verify: the checkpoint is not one this server issued.
    BadSignature,
    /// The ledger has fewer entries than the checkpoint covers: entries were removed.
    Truncated,
    /// The root over the first `tree_size` entries differs: one of them was changed (or
    /// removed, or inserted).
    RootMismatch,
}

impl Problem {
    pub fn describe(self) -> &'static str {
        match self {
            Problem::UnknownKey => "signed by a key this server does not have",
            Problem::BadSignature => "its signature does not verify",
            Problem::Truncated => {
                "the ledger has fewer entries than it covers: entries were removed"
            }
            Problem::RootMismatch => {
                "the root hash over its first entries differs: an entry it covers was changed"
            }
        }
    }
}

/// Checks each checkpoint against the ledger's leaves (in `seq` order) and the keys
/// (`key(key_id)`): the problem of each checkpoint that does not hold, in the order given.
/// One pass over the leaves, whatever the number of checkpoints.
pub fn check(
    leaves: impl IntoIterator<Item = Leaf>,
    checkpoints: &[Checkpoint],
    key: impl Fn(&str) -> Option<VerifyingKey>,
) -> Vec<(usize, Problem)> {
    let mut problems: Vec<(usize, Problem)> = Vec::new();
    // Signed ones, by size, to be compared as the tree reaches their size.
    let mut pending: Vec<(u64, usize)> = Vec::new();
    for (i, cp) in checkpoints.iter().enumerate() {
        match key(&cp.key_id) {
            None => problems.push((i, Problem::UnknownKey)),
            Some(k) if !cp.signed_by(&k) => problems.push((i, Problem::BadSignature)),
            Some(_) => match u64::try_from(cp.tree_size) {
                Ok(size) => pending.push((size, i)),
                // A negative size is signed by no server.
                Err(_) => problems.push((i, Problem::BadSignature)),
            },
        }
    }
    pending.sort_unstable();
    let mut leaves = leaves.into_iter();
    let mut log = Log::new();
    for (size, i) in pending {
        while log.size() < size {
            let Some(l) = leaves.next() else { break };
            log.push(l);
        }
        if log.size() < size {
            problems.push((i, Problem::Truncated));
        } else if hex::encode(log.root()) != checkpoints[i].root_hash {
            problems.push((i, Problem::RootMismatch));
        }
    }
    problems.sort_by_key(|(i, _)| *i);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u8) -> Vec<Leaf> {
        (0..n).map(|i| Sha256::digest([i]).into()).collect()
    }

    /// RFC 6962 §2.1's MTH, written as the RFC defines it.
    fn mth(d: &[Leaf]) -> Leaf {
        match d.len() {
            0 => Sha256::digest(b"").into(),
            1 => leaf_hash(&d[0]),
            n => {
                // The largest power of two smaller than n.
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    /// The tree is RFC 6962's: leaf and node prefixes, the left subtree the largest power of
    /// two, the empty tree `SHA-256("")`: what an outside verifier recomputes.
    #[test]
    fn roots_are_rfc_6962_merkle_tree_hashes() {
        let l = leaves(3);
        assert_eq!(Log::new().root(), <Leaf>::from(Sha256::digest(b"")));
        assert_eq!(Log::from_leaves(l[..1].to_vec()).root(), leaf_hash(&l[0]));
        let ab = node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1]));
        assert_eq!(Log::from_leaves(l[..2].to_vec()).root(), ab);
        assert_eq!(
            Log::from_leaves(l.clone()).root(),
            node_hash(&ab, &leaf_hash(&l[2]))
        );
        // Leaf 2 of 3: its sibling is the subtree of leaves 0 and 1.
        let log = Log::from_leaves(l);
        assert_eq!(log.inclusion_proof(2), Some(vec![ab]));
        assert_eq!(log.inclusion_proof(3), None);
        assert_eq!(
            log.consistency_proof(2),
            Some(vec![leaf_hash(&leaves(3)[2])])
        );
        assert_eq!(log.consistency_proof(3), Some(vec![]));
        assert_eq!(log.consistency_proof(0), None);
        assert_eq!(log.consistency_proof(4), None);
    }

    /// The frontier gives `ct_merkle`'s root and RFC 6962's MTH at every size, and survives
    /// being stored.
    #[test]
    fn frontier_roots_are_the_tree_roots() {
        let l: Vec<Leaf> = (0..70u8).map(|i| Sha256::digest([i]).into()).collect();
        let mut frontier = Frontier::default();
        let mut log = Log::new();
        for n in 0..=l.len() {
            assert_eq!(frontier.root(), log.root(), "size {n}");
            assert_eq!(frontier.root(), mth(&l[..n]), "size {n}");
            let stored = Frontier::from_text(n as u64, &frontier.to_text());
            assert_eq!(stored.as_ref(), Some(&frontier), "size {n}");
            if let Some(next) = l.get(n) {
                frontier.push(next);
                log.push(*next);
            }
        }
        assert_eq!(Frontier::from_text(3, &hex::encode([0u8; 32])), None);
        assert_eq!(Frontier::from_text(1, "zz"), None);
        assert_eq!(Frontier::from_text(0, ""), Some(Frontier::default()));
    }

    #[test]
    fn checkpoints_are_signed_over_their_text() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let log = Log::from_leaves(leaves(5));
        let cp = Checkpoint::issue(5, &log.root(), 1_790_000_000_000, "k1", &key);
        assert_eq!(cp.tree_size, 5);
        assert_eq!(
            cp.text(),
            format!(
                "gridline-ledger-checkpoint-v1\ntree_size=5\nroot_hash={}\ntimestamp=1790000000000\n",
                hex::encode(log.root())
            )
        );
        assert!(cp.signed_by(&key.verifying_key()));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!cp.signed_by(&other.verifying_key()));
        let later = Checkpoint {
            timestamp: cp.timestamp + 1,
            ..cp.clone()
        };
        assert!(!later.signed_by(&key.verifying_key()));
    }

    #[test]
    fn check_finds_changed_removed_and_forged() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let keys = |kid: &str| (kid == "k1").then(|| key.verifying_key());
        let l = leaves(6);
        let at = |n: usize| {
            let root = Log::from_leaves(l[..n].to_vec()).root();
            Checkpoint::issue(n as u64, &root, 1, "k1", &key)
        };
        let cps = vec![at(6), at(0), at(3), at(3)];
        assert_eq!(check(l.clone(), &cps, keys), vec![]);

        // The newest entry removed: only the checkpoint covering it notices.
        assert_eq!(
            check(l[..5].to_vec(), &cps, keys),
            vec![(0, Problem::Truncated)]
        );
        // Entry 5 (seq 5) changed: the checkpoint of 6 notices, those of 3 do not.
        let mut changed = l.clone();
        changed[4][0] ^= 1;
        assert_eq!(check(changed, &cps, keys), vec![(0, Problem::RootMismatch)]);
        let forged = Checkpoint {
            root_hash: hex::encode([0u8; 32]),
            ..at(6)
        };
        let strange = Checkpoint {
            key_id: "k2".into(),
            ..at(6)
        };
        assert_eq!(
            check(l, &[forged, strange], keys),
            vec![(0, Problem::BadSignature), (1, Problem::UnknownKey)]
        );
    }
}
