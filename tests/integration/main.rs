#![allow(clippy::unwrap_used)]

//! The one integration-test binary. Each module reads as a specification of one area.

mod auth;
mod bench_smoke;
mod edge;
mod photos;
mod pull_order;
mod reference;
mod reliability;
mod security;
mod sync;
