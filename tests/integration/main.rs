#![allow(clippy::unwrap_used)]

//! The one integration-test binary. Each module reads as a specification of one area.

mod auth;
mod bench_smoke;
mod edge;
mod pull_order;
mod reference;
mod security;
mod sync;
