//! gRPC adapters: proto in, domain call, proto out. No rules live here.

mod classifier;
mod edit;
mod location;

pub use classifier::ClassifierGrpc;
pub use edit::ImageEditGrpc;
pub use location::LocationGrpc;
