//! gRPC adapters: proto in, domain call, proto out. No rules live here.

mod admin;
mod binding;
mod credit;
mod member;

pub use admin::AdminGrpc;
pub use binding::BindingGrpc;
pub use credit::CreditGrpc;
pub use member::{MemberGrpc, OrderGrpc};
