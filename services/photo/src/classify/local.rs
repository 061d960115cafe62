//! The local model: EfficientNet-Lite0 plus album rules (crate photo-model), loaded once at
//! start. Decoding and inference are CPU work, so they run on blocking threads behind a small
//! semaphore: a burst of uploads queues here instead of starving the async reactor. Each decode
//! also reserves its memory in the instance's decode budget first.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use photo_model::{
    CategoryRules, DecodeLimits, DecodedImage, LocalClassification, LocalClassifier,
};

use crate::classify::domain::{ModelResult, ModelVersions, Producer, ScoredLabel};
use crate::decode_budget::{DecodeBudget, Decoding};
use crate::error::PhotoError;
use crate::metrics::{Model, PhotoMetrics};
use crate::model_calls::{CallOrigin, ModelCallRecorder, ModelSource};

#[derive(Clone)]
pub struct LocalModel {
    classifier: Arc<LocalClassifier>,
    permits: Arc<Semaphore>,
    limits: DecodeLimits,
    budget: DecodeBudget,
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
        budget: DecodeBudget,
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
            budget,
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
        self.decode_then(bytes, deadline, |image| Ok(Arc::new(image)))
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
        let classifier = Arc::clone(&self.classifier);
        let started = std::time::Instant::now();
        let outcome = self
            .decode_then(bytes, deadline, move |image| {
                let answer = classifier
                    .classify(&image)
                    .map_err(PhotoError::LocalModel)?;
                Ok((Arc::new(image), to_result(answer)))
            })
            .await;
        let metric = match &outcome {
            Ok(_) => "ok",
            Err(PhotoError::Image { .. }) => "bad_image",
            Err(PhotoError::Overloaded | PhotoError::DecodeBusy) => "overloaded",
            Err(_) => "error",
        };
        self.metrics
            .model_call(Model::Local, metric, started.elapsed());
        match &outcome {
            Ok(_) => call.answered(0),
            Err(PhotoError::Image { .. }) => call.discard(),
            Err(PhotoError::Overloaded) => call.failed(503, "overloaded", 0),
            Err(PhotoError::DecodeBusy) => call.failed(503, "decode_busy", 0),
            Err(PhotoError::LocalModel(_)) => call.failed(500, "local_model_failed", 0),
            Err(_) => call.failed(500, "internal", 0),
        }
        outcome
    }

    /// Decodes the upload and runs `then` on the picture, on a blocking thread, once a permit is
    /// free and the decode's memory is reserved (held until `then` is done with the full-size
    /// pixels; the working copy handed on is small). A request whose caller would have given up
    /// before its turn comes is refused rather than queued: under a burst the service sheds load
    /// instead of working for nobody.
    async fn decode_then<T, F>(
        &self,
        bytes: Arc<Vec<u8>>,
        deadline: Instant,
        then: F,
    ) -> Result<T, PhotoError>
    where
        F: FnOnce(DecodedImage) -> Result<T, PhotoError> + Send + 'static,
        T: Send + 'static,
    {
        let _permit = match tokio::time::timeout_at(deadline, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(PhotoError::Internal("local model semaphore closed".into())),
            Err(_) => return Err(PhotoError::Overloaded),
        };
        let limits = self.limits.clone();
        let probe = {
            let (bytes, limits) = (Arc::clone(&bytes), limits.clone());
            on_blocking_thread(move || {
                photo_model::probe(&bytes, &limits).map_err(PhotoError::from_decode)
            })
            .await?
        };
        let decoding = Decoding {
            what: "image",
            width: probe.width,
            height: probe.height,
        };
        let memory = self
            .budget
            .reserve(
                probe.decode_peak_bytes(limits.working_max_side),
                &decoding,
                Some(deadline),
            )
            .await?;
        on_blocking_thread(move || {
            let image = photo_model::decode(&bytes, &limits).map_err(PhotoError::from_decode)?;
            let answer = then(image);
            drop(memory);
            answer
        })
        .await
    }
}

async fn on_blocking_thread<T, F>(work: F) -> Result<T, PhotoError>
where
    F: FnOnce() -> Result<T, PhotoError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| PhotoError::Internal(format!("local model task failed: {err}")))?
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
