//! Offline sync: push (exactly-once application of signed operations) and pull (commit-ordered
//! changes in the caller's scope), plus the case views both the API and pulls serve.

pub mod pull;
pub mod push;
pub mod view;
