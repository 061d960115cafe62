//! Infrastructure shared by every Xintu binary: configuration loading, telemetry, database pools
//! (primary and read-only replica), Redis, gRPC server and client plumbing, and shutdown.
//! No domain types live here.

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod cli;
pub mod config;
pub mod db;
pub mod grpc;
pub mod redis;
pub mod replica_status;
pub mod request_id;
pub mod request_log;
pub mod shutdown;
mod skip_window;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;
