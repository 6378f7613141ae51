//! The Gridline wire contract.
//!
//! Everything a phone and the server must agree on lives here: error codes ([`error`]), the case
//! vocabulary ([`case`]: states, editable fields, conflict records), sync wire types ([`wire`]), typed operations and their validation ([`ops`], [`validation`]), inspection plans and
//! checklists ([`plan`]),
//! signing and hash chaining ([`signing`]), the pure conflict rules ([`conflict`]) and the case
//! workflow ([`workflow`]). Behind the
//! `client` feature is the reference phone client ([`client`]) with its durable outbox.
//! Without that feature this crate has no HTTP framework and no database driver.
//!
//! `PROTOCOL.md` beside this crate documents the protocol for other client implementers.

pub mod case;
pub mod conflict;
pub mod datum;
pub mod error;
pub mod ops;
pub mod plan;
pub mod signing;
pub mod validation;
pub mod wire;
pub mod workflow;

#[cfg(feature = "client")]
pub mod client;

pub use case::{CaseState, ConflictRecord};
pub use datum::Datum;
pub use error::{ErrorBody, ErrorCode};
pub use ops::Operation;
pub use wire::*;
