//! Offline location: the `location` crate's lookups (a crate of its own so that its parsing and
//! R-tree code is optimised in every build while this service's is not), served as
//! `photo.v1.LocationService`.

mod grpc;

pub use ::location::*;
pub use grpc::LocationGrpc;

/// Loading the location data (`::location::geodata`), and where it lives by default.
pub mod geodata {
    use std::path::PathBuf;

    pub use ::location::geodata::*;

    /// Returns where the fetch script writes the data: `$XINTU_DATA_DIR/geo`, else
    /// `~/.cache/xintu/data/geo`.
    pub fn default_dir() -> PathBuf {
        photo_model::data_dir::data_dir().join("geo")
    }
}
