//! gRPC contracts of the Xintu services. Each service owns one package; this crate is the only
//! code shared between the gateway and the services.

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

mod error_code;
pub mod limits;

pub use error_code::ErrorCode;

pub mod membership {
    pub mod v1 {
        tonic::include_proto!("membership.v1");

        /// The Redis pub/sub channel of [`BindingChanged`], after `<REDIS_KEY_PREFIX>:`.
        pub const BINDING_CHANGES_CHANNEL: &str = "bindings:changed";
    }
}

pub mod photo {
    pub mod v1 {
        tonic::include_proto!("photo.v1");
    }
}

pub mod stats {
    pub mod v1 {
        tonic::include_proto!("stats.v1");
    }
}

/// Descriptor set of every service, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("xintu_descriptor");
