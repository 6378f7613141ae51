#![allow(clippy::unwrap_used)]

//! The one integration-test binary. Each module reads as a specification of one area.

mod auth;
mod edge;
mod reference;
mod simulation;
mod sync;
mod sync_client;
