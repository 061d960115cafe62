//! Local photo classification for the photo service (docs/architecture.md, "Classification
//! order"): [`decode`] bounded decoding of untrusted uploads (the `photo-upload` crate's, which
//! this crate passes on), [`LocalClassifier`]
//! (EfficientNet-Lite0 on candle, CPU) and the album-category [`rules`] that map ImageNet labels to
//! album categories.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use photo_model::{CategoryRules, DecodeLimits, LocalClassifier, decode};
//! let classifier = LocalClassifier::load("efficientnet_lite0.safetensors", CategoryRules::embedded()?)?;
//! let photo = decode(&std::fs::read("coffee.png")?, &DecodeLimits::default())?;
//! let answer = classifier.classify(&photo)?;
//! println!("{} {} sure={}", answer.category, answer.label_zh, answer.sure);
//! # Ok(()) }
//! ```

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod category;
mod classifier;
pub mod data_dir;
pub mod model;
pub mod rules;

pub use category::AlbumCategory;
pub use classifier::{LocalClassification, LocalClassifier, MODEL_ID, TopLabel, top_classes};
pub use model::ModelError;
// `decode` is both photo-upload's module and its function: both are passed on.
pub use photo_upload::{
    DecodeError, DecodeLimits, DecodedImage, ImageMetadata, PhotoFormat, Probe, decode, probe,
};
pub use rules::{CategoryDecision, CategoryRules, RulesError};
