#![allow(clippy::unwrap_used)]

//! The one integration-test binary. Each module reads as a specification of one area.

mod auth;
mod edge;
mod ledger;
mod reference;
mod review;
mod support;
mod sync;
