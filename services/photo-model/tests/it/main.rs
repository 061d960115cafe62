//! photo-model integration tests: one binary, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test binary: helpers fail loudly

mod decode_errors;
mod decode_photos;
mod depthwise;
mod golden;
mod rules_file;
mod screenshot;
mod support;
