//! gRPC adapters: proto in, domain call, proto out. No rules live here.

mod binding;

pub use binding::BindingGrpc;
