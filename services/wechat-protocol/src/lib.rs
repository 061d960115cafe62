//! WeChat wire formats shared by the gateway (which verifies what WeChat sends) and the sandbox
//! (which plays WeChat in tests): push signatures, safe-mode (AES) message crypto, and the flat
//! `<xml>` documents of pushes and replies, parsed without DTDs or entities.
//!
//! Checked against published test vectors: WeChat's own documentation examples and the test data
//! of public SDKs (wechatpy, WxJava), each named where it is used.

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod bill;
pub mod crypto;
pub mod pay;
pub mod pay_v3;
pub mod refund;
pub mod sign;
pub mod xml;
