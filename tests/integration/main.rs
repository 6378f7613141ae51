#![allow(clippy::unwrap_used)]

//! The one integration-test binary. Each module reads as a specification of one area.

mod auth;
mod edge;
mod field_upload;
mod photos;
mod pull_order;
mod reference;
mod security;
mod sync;
