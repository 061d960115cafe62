//! End-to-end tests through the gateway: real MariaDB primary + replica, real Redis, the sandbox.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test binary: fail loudly

mod abuse;
mod account;
mod admin;
mod admin_lists;
mod admin_site;
mod bills;
mod binding;
mod classify;
mod client_examples;
mod devices;
mod edge;
mod edit;
mod edit_erasure;
mod erasure;
mod ledger_properties;
mod location;
mod log_privacy;
mod long_poll;
mod memory;
mod operations;
mod outages;
mod payment;
mod payment_v3;
mod push_security;
mod reconciler;
mod refunds;
mod reminders;
mod replica_fallback;
mod retention;
mod rust_client;
mod scaling;
mod service_auth;
mod sign_out;
mod stats;
mod telemetry;
mod token;
