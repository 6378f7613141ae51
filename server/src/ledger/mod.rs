//! The deduction ledger.
//!
//! Pure rules: entry weighting and the hash chain ([`chain`]), zone scores and ranking
//! ([`scoring`]), the Merkle tree and signed checkpoints that make the ledger a transparency log
//! ([`log`]) and the requests and answers of the API ([`views`]). Exports are in
//! `crate::exports`.
//! The operations: proposing and rejecting deductions ([`proposals`]), what approving one would
//! do ([`preview`]), posting and reversing entries ([`posting`]), closing a period and ranking
//! the zones ([`closing`]); most take a [`LedgerService`]. Reading the ledger with its reversals
//! and the chain's check is [`book`]. The storage is `store::ledger`, the endpoints `routes::ledger`. These
//! rules are the server's own (phones never compute scores), so they live here rather than in
//! `gridline-sync`.

pub mod book;
pub mod chain;
pub mod closing;
pub mod log;
pub mod posting;
pub mod preview;
pub mod proposals;
pub mod rankings;
pub mod scoring;
pub mod views;

use std::sync::Arc;

use crate::auth::keys::Keyring;
use crate::config::Config;
use crate::store::Db;

/// What the ledger operations need: the database, the keys that sign the ledger's checkpoints,
/// and the settings (the four-eyes rule). Cheap to clone.
#[derive(Clone)]
pub struct LedgerService {
    pub db: Db,
    pub keys: Arc<Keyring>,
    pub config: Arc<Config>,
    pub rankings: Arc<rankings::Rankings>,
}
