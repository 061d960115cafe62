//! ClassifierService's use cases: classify one image (cache → local model → cloud model when
//! wanted and allowed), a batch of them, and cached results by digest.

pub mod cache;
mod claim;
mod cloud;
pub mod domain;
mod grpc;
pub mod local;
pub mod store;

use proto::ErrorCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use photo_model::DecodedImage;
use tokio::time::Instant;

use crate::classify::cache::{CacheService, Read};
use crate::classify::domain::{
    Answer, CacheKey, CachedEntry, CloudSkip, Digest, Mode, ModelResult, Source, Stored,
};
use crate::classify::local::LocalModel;
use crate::error::PhotoError;
use crate::model_calls::CallOrigin;

pub use cloud::CloudPath;
pub use grpc::ClassifierGrpc;

/// Sizes the service accepts.
#[derive(Clone, Debug)]
pub struct ClassifyLimits {
    pub max_image_bytes: usize,
    pub batch_max: usize,
    pub lookup_max: usize,
}

/// Images of one batch worked on at once (local inference is capped separately).
const BATCH_CONCURRENCY: usize = 4;

/// One image to classify, and for whom.
pub struct ClassifyInput {
    pub image: Vec<u8>,
    pub mode: Mode,
    pub user_id: i64,
    /// When the caller stops waiting.
    pub deadline: Instant,
    /// Whom the model calls made for it are recorded for.
    pub origin: CallOrigin,
}

pub struct Classifier {
    cache: CacheService,
    local: LocalModel,
    /// None when no provider key is configured.
    cloud: Option<Arc<CloudPath>>,
    limits: ClassifyLimits,
    /// Local inferences in flight and just finished: identical images arriving together run the
    /// local model once (the cloud path has its own flights).
    local_flights: moka::future::Cache<CacheKey, ModelResult>,
}

impl Classifier {
    pub fn new(
        cache: CacheService,
        local: LocalModel,
        cloud: Option<Arc<CloudPath>>,
        limits: ClassifyLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            cache,
            local,
            cloud,
            limits,
            local_flights: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        })
    }

    pub fn limits(&self) -> &ClassifyLimits {
        &self.limits
    }

    /// Classifies one image.
    #[tracing::instrument(skip_all, fields(mode = ?input.mode, user_id = input.user_id, bytes = input.image.len(), sha256))]
    pub async fn classify(self: &Arc<Self>, input: ClassifyInput) -> Result<Answer, PhotoError> {
        if input.image.is_empty() {
            return Err(PhotoError::Image {
                code: ErrorCode::EmptyImage,
                message: "the image is empty".into(),
            });
        }
        if input.image.len() > self.limits.max_image_bytes {
            return Err(PhotoError::Image {
                code: ErrorCode::PayloadTooLarge,
                message: format!(
                    "the image is {} bytes, more than the {} bytes allowed",
                    input.image.len(),
                    self.limits.max_image_bytes
                ),
            });
        }
        let digest = Digest::of(&input.image);
        tracing::Span::current().record("sha256", tracing::field::display(digest));
        let stored = self
            .stored(&[digest], Read::Authoritative)
            .await?
            .pop()
            .unwrap_or_default();
        if let Some(result) = stored.cloud_result() {
            return Ok(answer(digest, result.clone(), Source::Cache));
        }
        let image = Arc::new(input.image);
        let (decoded, local) = match stored.local_result() {
            Some(result) => (None, answer(digest, result.clone(), Source::Cache)),
            None => {
                self.run_local(digest, Arc::clone(&image), input.deadline, &input.origin)
                    .await?
            }
        };
        if !input.mode.wants_cloud(local.result.sure) {
            return Ok(local);
        }
        if stored.cloud_refused() {
            return Ok(skipped(local, CloudSkip::ModerationRejected, None));
        }
        let Some(cloud) = &self.cloud else {
            return Ok(skipped(local, CloudSkip::NotConfigured, None));
        };
        Ok(cloud
            .ask(
                local,
                image,
                decoded,
                input.user_id,
                input.deadline,
                input.origin,
            )
            .await)
    }

    /// Classifies each image on its own: a bad image gets its own error, the others go on. Errors
    /// on our side (the database) fail the whole batch. Each model call is recorded on its own.
    pub async fn classify_batch(
        self: &Arc<Self>,
        images: Vec<Vec<u8>>,
        mode: Mode,
        user_id: i64,
        deadline: Instant,
        origin: &CallOrigin,
    ) -> Result<Vec<Result<Answer, PhotoError>>, PhotoError> {
        if images.is_empty() || images.len() > self.limits.batch_max {
            return Err(PhotoError::invalid(
                "images",
                format!(
                    "send 1 to {} images, not {}",
                    self.limits.batch_max,
                    images.len()
                ),
            ));
        }
        let answers: Vec<Result<Answer, PhotoError>> = futures::stream::iter(images)
            .map(|image| {
                self.classify(ClassifyInput {
                    image,
                    mode,
                    user_id,
                    deadline,
                    origin: origin.clone(),
                })
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await;
        let mut per_image = Vec::with_capacity(answers.len());
        for answer in answers {
            match answer {
                Err(err) if err.client_code().is_none() => return Err(err),
                answer => per_image.push(answer),
            }
        }
        Ok(per_image)
    }

    /// Returns the best stored result of each digest (hex), in order; runs no model.
    pub async fn lookup(
        &self,
        digests: &[String],
    ) -> Result<Vec<(Digest, Option<Answer>)>, PhotoError> {
        if digests.is_empty() || digests.len() > self.limits.lookup_max {
            return Err(PhotoError::invalid(
                "sha256",
                format!(
                    "send 1 to {} digests, not {}",
                    self.limits.lookup_max,
                    digests.len()
                ),
            ));
        }
        let parsed = digests
            .iter()
            .enumerate()
            .map(|(index, hex)| Digest::parse(hex).map_err(|_| PhotoError::InvalidDigest { index }))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = self.stored(&parsed, Read::Advisory).await?;
        Ok(parsed
            .into_iter()
            .zip(stored)
            .map(|(digest, stored)| {
                let best = stored
                    .best()
                    .map(|result| answer(digest, result.clone(), Source::Cache));
                (digest, best)
            })
            .collect())
    }

    /// Runs the local model once for all identical images in flight. The leader gets the decoded
    /// image too (for the cloud model), and its request is the one the inference is recorded
    /// for; the others got, for them, a cache hit.
    async fn run_local(
        &self,
        digest: Digest,
        image: Arc<Vec<u8>>,
        deadline: Instant,
        origin: &CallOrigin,
    ) -> Result<(Option<Arc<DecodedImage>>, Answer), PhotoError> {
        let key = self.local.versions().key(digest);
        let mine = Mutex::new(None::<Arc<DecodedImage>>);
        let lead = async {
            let (decoded, result) = self
                .local
                .decode_and_classify(image, deadline, origin)
                .await?;
            self.cache
                .remember(&key, CachedEntry::Classified(result.clone()))
                .await;
            if let Ok(mut slot) = mine.lock() {
                *slot = Some(decoded);
            }
            Ok::<_, PhotoError>(result)
        };
        let result = self
            .local_flights
            .try_get_with(key.clone(), lead)
            .await
            .map_err(PhotoError::shared)?;
        let decoded = mine.lock().ok().and_then(|mut slot| slot.take());
        let source = if decoded.is_some() {
            Source::Local
        } else {
            Source::Cache
        };
        Ok((decoded, answer(digest, result, source)))
    }

    /// What is stored for each digest under the current local and cloud versions.
    async fn stored(&self, digests: &[Digest], read: Read) -> Result<Vec<Stored>, PhotoError> {
        let cloud_versions = self.cloud.as_deref().map(CloudPath::versions);
        let mut keys: Vec<CacheKey> = Vec::with_capacity(digests.len() * 2);
        for digest in digests {
            keys.push(self.local.versions().key(*digest));
            if let Some(versions) = cloud_versions {
                keys.push(versions.key(*digest));
            }
        }
        let mut found = self.cache.get_many(&keys, read).await?.into_iter();
        Ok(digests
            .iter()
            .map(|_| Stored {
                local: found.next().flatten(),
                cloud: if cloud_versions.is_some() {
                    found.next().flatten()
                } else {
                    None
                },
            })
            .collect())
    }
}

fn answer(digest: Digest, result: ModelResult, source: Source) -> Answer {
    Answer {
        digest,
        result,
        source,
        credits_charged: 0,
        remaining_credits: None,
        cloud_skipped: None,
    }
}

fn skipped(mut local: Answer, reason: CloudSkip, available: Option<i64>) -> Answer {
    tracing::info!(reason = reason.message(), "cloud model not used");
    local.cloud_skipped = Some(reason);
    local.remaining_credits = available;
    local
}

/// The least time worth starting the cloud path with: reserving, one attempt, settling.
const MIN_CLOUD_BUDGET: Duration = Duration::from_millis(1500);
