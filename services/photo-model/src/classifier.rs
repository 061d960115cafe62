//! The local classifier the photo service calls: decoded photo in, album category out.

use std::path::Path;

use image::RgbImage;
use photo_upload::DecodedImage;

use crate::category::AlbumCategory;
use crate::model::{self, EfficientNetLite0, ImageNetLabels, ModelError, preprocess};
use crate::rules::CategoryRules;

/// Identifies the local model in results and cache keys.
pub const MODEL_ID: &str = "local-efficientnet-lite0";

/// One ImageNet prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLabel {
    pub class_index: usize,
    pub label: &'static str,
    pub score: f32,
}

/// The local answer for one photo.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalClassification {
    pub category: AlbumCategory,
    pub label_zh: &'static str,
    /// The best ImageNet predictions, best first (as many as the rules' `top_k`).
    pub top_labels: Vec<TopLabel>,
    pub confidence: f32,
    /// False when the rules found the answer weak; the photo service may then ask the cloud.
    pub sure: bool,
    /// True when metadata rules decided (screenshots), not the network.
    pub decided_by_metadata: bool,
    pub model_id: &'static str,
    /// Version of the rules that mapped labels to categories (part of the cache key).
    pub rules_version: String,
}

/// EfficientNet-Lite0 plus album rules. Load once and share: it is `Send + Sync`, and
/// `classify` is synchronous CPU work (run it on a blocking thread behind a semaphore).
pub struct LocalClassifier {
    network: EfficientNetLite0,
    labels: ImageNetLabels,
    rules: CategoryRules,
}

// The photo service shares one classifier across blocking threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LocalClassifier>();
};

impl LocalClassifier {
    /// Loads the converted weights (see `deploy/local/fetch-model.sh`) and takes the rules.
    pub fn load(model_path: impl AsRef<Path>, rules: CategoryRules) -> Result<Self, ModelError> {
        let network = model::load_efficientnet_lite0(model_path.as_ref())?;
        Ok(Self {
            network,
            labels: ImageNetLabels::embedded(),
            rules,
        })
    }

    pub fn rules(&self) -> &CategoryRules {
        &self.rules
    }

    /// Classifies a decoded photo: metadata rules first, otherwise the network and the rules.
    pub fn classify(&self, image: &DecodedImage) -> Result<LocalClassification, ModelError> {
        let probabilities = self.class_probabilities(&image.image)?;
        let top = top_classes(&probabilities, self.rules.top_k());
        let by_metadata = self.rules.decide_by_metadata(&image.metadata);
        let decision = by_metadata.unwrap_or_else(|| self.rules.decide_by_predictions(&top));
        Ok(LocalClassification {
            category: decision.category,
            label_zh: decision.category.label_zh(),
            top_labels: top
                .into_iter()
                .map(|(class_index, score)| TopLabel {
                    class_index,
                    label: self.labels.name(class_index),
                    score,
                })
                .collect(),
            confidence: decision.confidence,
            sure: decision.sure,
            decided_by_metadata: by_metadata.is_some(),
            model_id: MODEL_ID,
            rules_version: self.rules.version().to_owned(),
        })
    }

    /// Returns the 1000 ImageNet class probabilities for an upright RGB image.
    pub fn class_probabilities(&self, image: &RgbImage) -> Result<Vec<f32>, ModelError> {
        let input = preprocess::image_to_input(image)?;
        model::class_probabilities(&self.network, &input)
    }
}

/// The `k` most probable classes, best first.
pub fn top_classes(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1));
    indexed.truncate(k);
    indexed
}
