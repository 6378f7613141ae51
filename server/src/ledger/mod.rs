//! The deduction ledger's pure rules: entry weighting and the hash chain ([`chain`]), zone
//! scores and ranking ([`scoring`]), export tables ([`export`]) and the Merkle tree and signed
//! checkpoints that make the ledger a transparency log ([`log`]). No SQL and no HTTP here:
//! the storage is `store::ledger`, the endpoints `routes::ledger`. These rules are the server's
//! own (phones never compute scores), so they live here rather than in `gridline-sync`.

pub mod chain;
pub mod export;
pub mod log;
pub mod scoring;
