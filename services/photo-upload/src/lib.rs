//! What the photo service does with the bytes an app uploads before anything else looks at them:
//! their [`Digest`] (the SHA-256 that keys the classification cache, which apps can compute
//! themselves) and [`decode`], bounded decoding of untrusted images into an upright working
//! image plus the metadata the album rules need.
//!
//! A crate of its own, apart from the local model (`photo-model`), because it is the parser
//! that faces the internet: the fuzz targets build it, instrumented, without candle.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use photo_upload::{DecodeLimits, Digest, decode};
//! let bytes = std::fs::read("coffee.png")?;
//! let photo = decode(&bytes, &DecodeLimits::default())?;
//! println!("{} {}×{}", Digest::of(&bytes), photo.metadata.width, photo.metadata.height);
//! # Ok(()) }
//! ```

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod decode;
mod digest;
mod resize;

pub use decode::{
    DecodeError, DecodeLimits, DecodedImage, ImageMetadata, PhotoFormat, Probe, decode, probe,
};
pub use digest::{Digest, DigestError};
pub use resize::resize_short_side_center_crop;
