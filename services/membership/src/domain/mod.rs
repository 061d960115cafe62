//! Domain types and rules of the membership service: no gRPC, no SQL.

pub mod bill;
pub mod binding;
pub mod event;
pub mod hold;
pub mod order;
pub mod pricing;
pub mod refund;
