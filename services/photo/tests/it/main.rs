//! The location rules on the real data that `deploy/local/fetch-geodata.sh` prepares, the rights
//! of the database user, and the binary's start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: failing loudly is the point

mod db_rights;
mod locations;
mod startup;
