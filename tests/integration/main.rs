#![allow(clippy::unwrap_used)]

//! The one integration-test binary. Each module reads as a specification of one area.

mod architecture;
mod auth;
mod bench_smoke;
mod calendar;
mod console;
mod console_admin;
mod console_plans;
mod contract;
mod edge;
mod field_upload;
mod inbox_sync;
mod intake;
mod ledger;
mod ledger_log;
mod localisation;
mod notice_settings;
mod notices;
mod open311;
mod photos;
mod plan_rounds;
mod plans;
mod pull_order;
mod reference;
mod reliability;
mod review;
mod security;
mod simulation;
mod stock_tus_client;
mod storage;
mod support;
mod sync;
mod sync_client;
