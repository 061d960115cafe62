//! gRPC adapters: proto in, domain call, proto out. No rules live here.

mod location;

pub use location::LocationGrpc;
