//! Inference latency on the test photos, in a process whose thread count is fixed by
//! RAYON_NUM_THREADS (candle's matrix products and the depthwise kernel both follow it).

use std::path::Path;
use std::time::Duration;

use photo_model::model::{self, preprocess};
use photo_model::{CategoryRules, DecodeLimits, LocalClassifier, decode};
use serde::Serialize;

use crate::stats::{Latency, time_runs};

#[derive(Debug, Serialize)]
pub struct ImageResult {
    pub image: String,
    pub top1: String,
    pub top1_score: f32,
    pub category: String,
    pub sure: bool,
    pub forward: Latency,
}

#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub threads: usize,
    pub load_ms: f64,
    /// Network forward pass and softmax on a prepared 224×224 input.
    pub forward: Latency,
    /// `LocalClassifier::classify` on a decoded photo: preprocessing, forward pass and rules.
    pub classify: Latency,
    pub images: Vec<ImageResult>,
}

pub fn run(
    model_path: &Path,
    photos: &[(String, Vec<u8>)],
    iterations: usize,
) -> anyhow::Result<ModelReport> {
    let started = std::time::Instant::now();
    let classifier = LocalClassifier::load(model_path, CategoryRules::embedded()?)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let network = model::load_efficientnet_lite0(model_path)?;

    let mut all_forward: Vec<Duration> = Vec::new();
    let mut all_classify: Vec<Duration> = Vec::new();
    let mut images = Vec::new();
    for (name, bytes) in photos {
        let decoded = decode(bytes, &DecodeLimits::default())?;
        let input = preprocess::image_to_input(&decoded.image)?;
        // Warm-up: first runs page in weights and size the allocator's pools.
        for _ in 0..3 {
            model::class_probabilities(&network, &input)?;
        }
        let forward = time_runs(iterations, || {
            Ok(model::class_probabilities(&network, &input)?)
        })?;
        let classify = time_runs(iterations, || Ok(classifier.classify(&decoded)?))?;
        let answer = classifier.classify(&decoded)?;
        let top = answer.top_labels.first();
        images.push(ImageResult {
            image: name.clone(),
            top1: top.map(|t| t.label.to_owned()).unwrap_or_default(),
            top1_score: top.map_or(0.0, |t| t.score),
            category: answer.category.code().to_owned(),
            sure: answer.sure,
            forward: Latency::of(&forward),
        });
        all_forward.extend(forward);
        all_classify.extend(classify);
    }
    Ok(ModelReport {
        threads: candle_core::utils::get_num_threads(),
        load_ms,
        forward: Latency::of(&all_forward),
        classify: Latency::of(&all_classify),
        images,
    })
}
