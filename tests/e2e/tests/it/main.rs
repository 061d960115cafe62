//! End-to-end tests through the gateway: real MariaDB primary + replica, real Redis, the sandbox.

mod binding;
mod push_security;
mod token;
