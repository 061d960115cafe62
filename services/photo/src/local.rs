//! The local model: EfficientNet-Lite0 plus album rules (crate photo-model), loaded once at
//! start. Decoding and inference are CPU work, so they run on blocking threads behind a small
//! semaphore: a burst of uploads queues here instead of starving the async reactor.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use photo_model::{
    CategoryRules, DecodeLimits, DecodedImage, LocalClassification, LocalClassifier,
};

use crate::domain::classification::{ModelResult, ModelVersions, Producer, ScoredLabel};
use crate::error::PhotoError;
use crate::metrics::{Model, PhotoMetrics};
use crate::model_calls::{CallOrigin, ModelCallRecorder, ModelSource};

#[derive(Clone)]
pub struct LocalModel {
    classifier: Arc<LocalClassifier>,
    permits: Arc<Semaphore>,
    limits: DecodeLimits,
    versions: ModelVersions,
    metrics: PhotoMetrics,
    recorder: ModelCallRecorder,
}

/// Loads the weights and the rules (the built-in ones unless a rules file is named).
pub fn load_classifier(
    model_path: &Path,
    rules_path: Option<&Path>,
) -> anyhow::Result<LocalClassifier> {
    let rules = match rules_path {
        Some(path) => CategoryRules::load(path)?,
        None => CategoryRules::embedded()?,
    };
    LocalClassifier::load(model_path, rules).map_err(|err| {
        anyhow::anyhow!(
            "loading {} failed (run deploy/local/fetch-model.sh): {err}",
            model_path.display()
        )
    })
}

impl LocalModel {
    pub fn new(
        classifier: Arc<LocalClassifier>,
        concurrency: usize,
        limits: DecodeLimits,
        recorder: ModelCallRecorder,
    ) -> Self {
        let versions = ModelVersions {
            model_version: photo_model::MODEL_ID.to_owned(),
            // The rules decide the category, so their version is part of the cache key.
            prompt_version: format!("rules-{}", classifier.rules().version()),
        };
        Self {
            classifier,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            limits,
            versions,
            metrics: PhotoMetrics::new(),
            recorder,
        }
    }

    /// The versions local results are stored under.
    pub fn versions(&self) -> &ModelVersions {
        &self.versions
    }

    /// Decodes an upload within the limits.
    pub async fn decode(
        &self,
        bytes: Arc<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Arc<DecodedImage>, PhotoError> {
        let limits = self.limits.clone();
        self.blocking(deadline, move || {
            photo_model::decode(&bytes, &limits)
                .map(Arc::new)
                .map_err(PhotoError::from_decode)
        })
        .await
    }

    /// Decodes and classifies an upload; the decoded image comes back for the cloud model. The
    /// inference is recorded for `origin` (see `model_calls`), its latency counted from the
    /// request, queueing for a thread included; an upload refused by the decoder never reached
    /// the model and is not recorded as a model call (the gateway records the request's 4xx).
    pub async fn decode_and_classify(
        &self,
        bytes: Arc<Vec<u8>>,
        deadline: Instant,
        origin: &CallOrigin,
    ) -> Result<(Arc<DecodedImage>, ModelResult), PhotoError> {
        let call = self
            .recorder
            .start(&self.versions.model_version, ModelSource::Local, origin);
        let limits = self.limits.clone();
        let classifier = Arc::clone(&self.classifier);
        let started = std::time::Instant::now();
        let outcome = self
            .blocking(deadline, move || {
                let image =
                    photo_model::decode(&bytes, &limits).map_err(PhotoError::from_decode)?;
                let answer = classifier
                    .classify(&image)
                    .map_err(PhotoError::LocalModel)?;
                Ok((Arc::new(image), to_result(answer)))
            })
            .await;
        let metric = match &outcome {
            Ok(_) => "ok",
            Err(PhotoError::Image { .. }) => "bad_image",
            Err(PhotoError::Overloaded) => "overloaded",
            Err(_) => "error",
        };
        self.metrics
            .model_call(Model::Local, metric, started.elapsed());
        match &outcome {
            Ok(_) => call.answered(0),
            Err(PhotoError::Image { .. }) => call.discard(),
            Err(PhotoError::Overloaded) => call.failed(503, "overloaded", 0),
            Err(PhotoError::LocalModel(_)) => call.failed(500, "local_model_failed", 0),
            Err(_) => call.failed(500, "internal", 0),
        }
        outcome
    }

    /// Runs CPU work on a blocking thread once a permit is free. A request whose caller would
    /// have given up before its turn comes is refused rather than queued: under a burst the
    /// service sheds load instead of working for nobody.
    async fn blocking<T, F>(&self, deadline: Instant, work: F) -> Result<T, PhotoError>
    where
        F: FnOnce() -> Result<T, PhotoError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = match tokio::time::timeout_at(deadline, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(PhotoError::Internal("local model semaphore closed".into())),
            Err(_) => return Err(PhotoError::Overloaded),
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| PhotoError::Internal(format!("local model task failed: {err}")))?
    }
}

fn to_result(answer: LocalClassification) -> ModelResult {
    ModelResult {
        category: answer.category,
        labels: answer
            .top_labels
            .iter()
            .map(|top| ScoredLabel {
                label: top.label.to_owned(),
                score: top.score,
            })
            .collect(),
        confidence: answer.confidence,
        sure: answer.sure,
        producer: Producer::Local,
        model: answer.model_id.to_owned(),
        usage: None,
    }
}
