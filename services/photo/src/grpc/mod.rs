//! gRPC adapters: proto in, domain call, proto out. No rules live here.

mod classifier;
mod location;

pub use classifier::ClassifierGrpc;
pub use location::LocationGrpc;
