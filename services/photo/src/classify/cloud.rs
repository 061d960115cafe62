//! The cloud step: who pays, single flight, the provider call, and settling the credit.
//!
//! N identical images arriving together make one provider call: the first caller leads the
//! flight (keyed like the cache: digest + model + prompt version) and the others wait for its
//! result. Only the leader is charged, since only its request made a model work; the others got
//! what is, for them, a cache hit. A leader that may not use the cloud (no credit) fails only
//! itself: the waiters then try to lead in turn. Across instances the leader first claims the
//! image in Redis (see `claim`), so scaled instances also make one call between them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use photo_model::DecodedImage;
use tokio::time::Instant;
use tracing::Instrument;

use super::cache::CacheService;
use super::claim::{Claim, claim_or_wait};
use super::local::LocalModel;
use super::{MIN_CLOUD_BUDGET, skipped};
use crate::classify::domain::{Answer, CacheKey, CachedEntry, CloudSkip, ModelVersions, Source};
use crate::credits::{CreditGate, Payer};
use crate::dashscope::{CallError, ModelClient, ProviderError};
use crate::metrics::{Model, PhotoMetrics};
use crate::model_calls::CallOrigin;

/// Time kept back from the caller's deadline to settle the credit and answer.
const SETTLE_MARGIN: Duration = Duration::from_millis(300);
/// Times a waiter tries to lead after a leader that could not pay.
const LEAD_TRIES: usize = 3;

pub struct CloudPath {
    provider: Arc<ModelClient>,
    credits: CreditGate,
    /// Where verdicts are stored and claimed (shared with the local path).
    cache: CacheService,
    /// Decodes an image the local path did not (its answer came from the cache).
    local: LocalModel,
    /// In-flight and just-finished cloud calls; values live a minute so that late duplicates
    /// that missed the cache a moment ago find the result too.
    flights: moka::future::Cache<CacheKey, CachedEntry>,
    metrics: PhotoMetrics,
}

#[derive(Debug, thiserror::Error)]
enum FlightError {
    #[error("the leading caller may not use the cloud")]
    LeaderRefused,
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// What the leader's own request spent, seen only by the leader.
#[derive(Debug, Default)]
struct Settlement {
    /// This request's own call reached the provider.
    called: bool,
    charged: i64,
    available: Option<i64>,
    refused: Option<CloudSkip>,
}

impl CloudPath {
    pub fn new(
        provider: Arc<ModelClient>,
        credits: CreditGate,
        cache: CacheService,
        local: LocalModel,
    ) -> Arc<Self> {
        Arc::new(Self {
            provider,
            credits,
            cache,
            local,
            flights: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            metrics: PhotoMetrics::new(),
        })
    }

    pub fn versions(&self) -> &ModelVersions {
        self.provider.versions()
    }

    /// Asks the cloud model about an image whose local answer is `local`; answers the local
    /// result, saying why, when the cloud cannot be used. A call is recorded for `origin` when
    /// this request leads the flight (the request that is charged for it).
    #[allow(clippy::too_many_arguments)] // one image's whole context, passed once
    pub(super) async fn ask(
        self: &Arc<Self>,
        local: Answer,
        image: Arc<Vec<u8>>,
        decoded: Option<Arc<DecodedImage>>,
        user_id: i64,
        deadline: Instant,
        origin: CallOrigin,
    ) -> Answer {
        if deadline.saturating_duration_since(Instant::now()) < MIN_CLOUD_BUDGET {
            return skipped(local, CloudSkip::Deadline, None);
        }
        // Fail fast, before any credit is touched.
        if self.provider.is_failing_fast() {
            return skipped(local, CloudSkip::ProviderUnavailable, None);
        }
        // Detached, so that a caller who hangs up mid-call cannot strand a credit hold; still
        // within the request's span and under its id, which the credit calls pass to membership.
        let cloud = Arc::clone(self);
        let fallback = local.clone();
        let request_id = origin.request_id.clone();
        let call = tokio::spawn(platform::request_id::scope(
            request_id,
            async move {
                cloud
                    .fly(
                        local,
                        image,
                        decoded,
                        user_id,
                        deadline.checked_sub(SETTLE_MARGIN).unwrap_or(deadline),
                        &origin,
                    )
                    .await
            }
            .instrument(tracing::Span::current()),
        ));
        call.await.unwrap_or_else(|err| {
            tracing::error!(error = %err, "cloud classification task failed");
            skipped(fallback, CloudSkip::ProviderUnavailable, None)
        })
    }

    #[allow(clippy::too_many_arguments)] // one image's whole context, passed once
    async fn fly(
        &self,
        local: Answer,
        image: Arc<Vec<u8>>,
        decoded: Option<Arc<DecodedImage>>,
        user_id: i64,
        deadline: Instant,
        origin: &CallOrigin,
    ) -> Answer {
        let key = self.versions().key(local.digest);
        for _ in 0..LEAD_TRIES {
            let mine = Arc::new(Mutex::new(None::<Settlement>));
            let lead = self.lead(
                key.clone(),
                Arc::clone(&image),
                decoded.clone(),
                user_id,
                deadline,
                origin,
                Arc::clone(&mine),
            );
            let outcome = self.flights.try_get_with(key.clone(), lead).await;
            let mine = mine.lock().map(|mut m| m.take()).unwrap_or_default();
            match (outcome, mine) {
                (Ok(CachedEntry::Classified(result)), Some(settlement)) => {
                    return Answer {
                        digest: local.digest,
                        result,
                        source: if settlement.called {
                            Source::Model
                        } else {
                            Source::Cache
                        },
                        credits_charged: settlement.charged,
                        remaining_credits: settlement.available,
                        cloud_skipped: None,
                    };
                }
                // Another request's call answered: for this one a cache hit, free.
                (Ok(CachedEntry::Classified(result)), None) => {
                    return Answer {
                        digest: local.digest,
                        result,
                        source: Source::Cache,
                        credits_charged: 0,
                        remaining_credits: None,
                        cloud_skipped: None,
                    };
                }
                (Ok(CachedEntry::ModerationRejected { .. }), settlement) => {
                    let available = settlement.and_then(|s| s.available);
                    return skipped(local, CloudSkip::ModerationRejected, available);
                }
                (Err(err), Some(settlement)) => {
                    let reason = settlement.refused.unwrap_or_else(|| match err.as_ref() {
                        FlightError::Provider(provider) => provider.skip_reason(),
                        FlightError::LeaderRefused => CloudSkip::ProviderUnavailable,
                    });
                    return skipped(local, reason, settlement.available);
                }
                (Err(err), None) => match err.as_ref() {
                    FlightError::LeaderRefused => continue,
                    FlightError::Provider(provider) => {
                        return skipped(local, provider.skip_reason(), None);
                    }
                },
            }
        }
        // Every leader met could not pay, and so did not call the provider.
        skipped(local, CloudSkip::ProviderUnavailable, None)
    }

    /// The leader's work: authorise the caller, call the provider, store the verdict, settle.
    #[allow(clippy::too_many_arguments)] // one flight's whole context, passed once
    async fn lead(
        &self,
        key: CacheKey,
        image: Arc<Vec<u8>>,
        decoded: Option<Arc<DecodedImage>>,
        user_id: i64,
        deadline: Instant,
        origin: &CallOrigin,
        mine: Arc<Mutex<Option<Settlement>>>,
    ) -> Result<CachedEntry, FlightError> {
        let record = |settlement: Settlement| {
            if let Ok(mut slot) = mine.lock() {
                *slot = Some(settlement);
            }
        };
        let claim = match claim_or_wait(&self.cache, &key, deadline).await {
            Claim::Stored(entry) => {
                // Another instance's call answered: for this request a cache hit, free.
                record(Settlement::default());
                return Ok(entry);
            }
            Claim::TimedOut => {
                record(Settlement::default());
                return Err(ProviderError::Deadline.into());
            }
            Claim::Mine(token) => Some(token),
            Claim::Unguarded => None,
        };
        let payer = match self.credits.authorize(user_id).await {
            Ok(payer) => payer,
            Err(refusal) => {
                if let Some(token) = &claim {
                    self.cache.release_claim(&key, token).await;
                }
                record(Settlement {
                    available: refusal.available,
                    refused: Some(refusal.reason),
                    ..Settlement::default()
                });
                return Err(FlightError::LeaderRefused);
            }
        };
        let verdict = self.call(&key, image, decoded, deadline, origin).await;
        // The verdict is stored (or the call failed): waiting instances may go on.
        if let Some(token) = &claim {
            self.cache.release_claim(&key, token).await;
        }
        let (charged, available) = match (&payer, &verdict) {
            (Payer::Member { available }, _) => (0, Some(*available)),
            (
                Payer::Reserved {
                    reference,
                    available,
                },
                Ok(CachedEntry::Classified(_)),
            ) => {
                match self.credits.commit(reference).await {
                    Some(after) => (1, Some(after)),
                    // Not committed: the hold expires and the user keeps the credit.
                    None => (0, Some(*available + 1)),
                }
            }
            (
                Payer::Reserved {
                    reference,
                    available,
                },
                _,
            ) => {
                let after = self.credits.release(reference).await;
                (0, after.or(Some(*available + 1)))
            }
        };
        record(Settlement {
            called: true,
            charged,
            available,
            refused: None,
        });
        verdict.map_err(FlightError::from)
    }

    /// The provider call; a moderation refusal is a verdict too, stored like an answer.
    async fn call(
        &self,
        key: &CacheKey,
        image: Arc<Vec<u8>>,
        decoded: Option<Arc<DecodedImage>>,
        deadline: Instant,
        origin: &CallOrigin,
    ) -> Result<CachedEntry, ProviderError> {
        let decoded = match decoded {
            Some(decoded) => decoded,
            None => self
                .local
                .decode(image, deadline)
                .await
                .map_err(|err| ProviderError::Internal(err.to_string()))?,
        };
        let started = std::time::Instant::now();
        let called = self.provider.classify(decoded, deadline, origin).await;
        let outcome = called.as_ref().map_or_else(ProviderError::code, |_| "ok");
        self.metrics
            .model_call(Model::Cloud, outcome, started.elapsed());
        let entry = match called {
            Ok(result) => CachedEntry::Classified(result),
            Err(ProviderError::Call(CallError::ModerationRejected(message))) => {
                tracing::warn!(sha256 = %key.digest, message, "the cloud model's moderation refused an image");
                CachedEntry::ModerationRejected {
                    model: key.model_version.clone(),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, sha256 = %key.digest, "cloud classification failed");
                return Err(err);
            }
        };
        self.cache.remember(key, entry.clone()).await;
        Ok(entry)
    }
}
