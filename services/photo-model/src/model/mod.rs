//! The local ImageNet network and what it needs: weights loading, preprocessing, labels.

pub mod depthwise;
mod efficientnet;
mod labels;
pub mod preprocess;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use efficientnet::EfficientNetLite0;
pub use labels::ImageNetLabels;

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model weights {path} (run deploy/local/fetch-model.sh to prepare them)")]
    WeightsMissing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model weights {path} are not a valid EfficientNet-Lite0 safetensors file")]
    WeightsInvalid {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },
    #[error("image preprocessing failed: {0}")]
    Preprocess(String),
    #[error("inference failed")]
    Inference(#[from] candle_core::Error),
}

/// Loads EfficientNet-Lite0 from a safetensors file on the CPU.
///
/// The file is read into memory rather than mapped: mapping needs `unsafe` (the file could
/// change underneath), and 19 MB is read in milliseconds once at startup.
pub fn load_efficientnet_lite0(path: &Path) -> Result<EfficientNetLite0, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::WeightsMissing {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |source| ModelError::WeightsInvalid {
        path: path.to_owned(),
        source,
    };
    let vb =
        VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu).map_err(invalid)?;
    EfficientNetLite0::new(vb).map_err(invalid)
}

/// Runs the network on one preprocessed input and returns the 1000 class probabilities.
pub fn class_probabilities(
    model: &EfficientNetLite0,
    input: &Tensor,
) -> Result<Vec<f32>, ModelError> {
    let logits = model.forward(input)?;
    let probabilities = candle_nn::ops::softmax_last_dim(&logits)?;
    Ok(probabilities.squeeze(0)?.to_vec1::<f32>()?)
}
