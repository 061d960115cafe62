//! Photo classification through the gateway (docs/architecture.md, "Classification order"): the
//! real local model on real photos, the result cache, the cloud model (the sandbox's DashScope)
//! paid with credits through membership, resilience, single flight, and bad input.

mod bad_input;
mod cache;
mod cloud;
mod local;
mod recording;
mod resilience;
pub(crate) mod support;
