//! ModelClient: Qwen-VL on DashScope's OpenAI-compatible chat completions, with the resilience of
//! docs/architecture.md, "Calling the providers": a deadline per image and a timeout per attempt,
//! retries with jittered exponential backoff only after 429, 5xx and timeouts (honouring
//! Retry-After), a circuit breaker that fails fast while the provider is down, and a cap on calls
//! in flight and per second.

mod breaker;
pub mod call;
#[cfg(test)]
mod conformance;
mod image;
pub mod image_edit;
mod wire;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use failsafe::futures::CircuitBreaker as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use photo_model::DecodedImage;
use platform::config::duration::{millis, secs};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::classify::domain::answer::{self, PROMPT_VERSION};
use crate::classify::domain::{CloudSkip, ModelResult, ModelVersions, Producer, TokenUsage};
use crate::model_calls::{CallOrigin, ModelCallRecorder, ModelSource};

pub use breaker::Breaker;
pub use call::CallError;

use call::Api;

/// `[dashscope]` of the photo config: the account both clients call with, and how the Qwen-VL
/// client treats the provider. Each field is read from the setting its `rename` names.
#[derive(Clone, Debug, Deserialize)]
pub struct ProviderSettings {
    /// None or empty: the cloud is off (classification and edits alike).
    #[serde(rename = "dashscope_api_key")]
    pub api_key: Option<SecretString>,
    #[serde(rename = "dashscope_base_url")]
    pub base_url: String,
    #[serde(rename = "dashscope_vision_model")]
    pub model: String,
    #[serde(rename = "dashscope_attempt_timeout_ms", deserialize_with = "millis")]
    pub attempt_timeout: Duration,
    #[serde(rename = "dashscope_deadline_ms", deserialize_with = "millis")]
    pub deadline: Duration,
    #[serde(rename = "dashscope_max_retries")]
    pub max_retries: usize,
    #[serde(rename = "dashscope_retry_base_ms", deserialize_with = "millis")]
    pub retry_base: Duration,
    #[serde(rename = "dashscope_retry_max_ms", deserialize_with = "millis")]
    pub retry_max: Duration,
    #[serde(rename = "dashscope_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(rename = "dashscope_max_calls_per_second")]
    pub max_calls_per_second: u32,
    #[serde(rename = "dashscope_breaker_failures")]
    pub breaker_failures: u32,
    #[serde(rename = "dashscope_breaker_open_secs", deserialize_with = "secs")]
    pub breaker_open: Duration,
    #[serde(rename = "dashscope_image_max_side")]
    pub image_max_side: u32,
}

impl ProviderSettings {
    /// The key, when one is configured (an empty one, as compose passes, is none).
    pub fn api_key(&self) -> Option<SecretString> {
        self.api_key
            .as_ref()
            .filter(|key| !key.expose_secret().is_empty())
            .cloned()
    }
}

/// An attempt is not started with less time than this left before the deadline.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(500);

/// Why the cloud model gave no result.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the circuit breaker is open")]
    CircuitOpen,
    #[error("the deadline leaves no time for an attempt")]
    Deadline,
    #[error("{0}")]
    Internal(String),
    /// The call was made and failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

impl ProviderError {
    /// Worth another attempt: the provider was busy or slow, not refusing this request.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Call(err) if err.is_transient())
    }

    /// Counts towards opening the circuit breaker (the same set: a refusal of one request says
    /// nothing about the provider's health).
    pub fn is_provider_failure(&self) -> bool {
        self.is_retryable()
    }

    /// The HTTP-like status of a call that ended with this error, for its record.
    pub fn status(&self) -> u16 {
        match self {
            Self::CircuitOpen => 503,
            Self::Deadline => 504,
            Self::Internal(_) => 500,
            Self::Call(err) => err.status(),
        }
    }

    /// A stable snake_case code, for the call's record.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit_open",
            Self::Deadline => "deadline",
            Self::Internal(_) => "internal",
            Self::Call(err) => err.code(),
        }
    }

    /// What the caller is told.
    pub fn skip_reason(&self) -> CloudSkip {
        match self {
            Self::CircuitOpen | Self::Internal(_) => CloudSkip::ProviderUnavailable,
            Self::Deadline => CloudSkip::Deadline,
            Self::Call(err) => match err {
                CallError::Server { .. } | CallError::Timeout | CallError::Connect(_) => {
                    CloudSkip::ProviderUnavailable
                }
                CallError::RateLimited { .. } => CloudSkip::RateLimited,
                CallError::ModerationRejected(_) => CloudSkip::ModerationRejected,
                CallError::Rejected { .. } => CloudSkip::ProviderRejected,
                CallError::InvalidAnswer(_) => CloudSkip::InvalidAnswer,
            },
        }
    }
}

pub struct ModelClient {
    http: reqwest::Client,
    endpoint: String,
    settings: ProviderSettings,
    api_key: SecretString,
    breaker: Breaker,
    in_flight: Semaphore,
    pace: DefaultDirectRateLimiter,
    versions: ModelVersions,
    recorder: ModelCallRecorder,
}

impl ModelClient {
    /// The client of `settings`'s model, calling with `api_key` (see [`ProviderSettings::api_key`]).
    pub fn new(
        settings: ProviderSettings,
        api_key: SecretString,
        recorder: ModelCallRecorder,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let http = call::http_client(Duration::from_secs(2))?;
        let endpoint = format!(
            "{}/compatible-mode/v1/chat/completions",
            settings.base_url.trim_end_matches('/')
        );
        let per_second = NonZeroU32::new(settings.max_calls_per_second).unwrap_or(NonZeroU32::MIN);
        Ok(Arc::new(Self {
            http,
            endpoint,
            breaker: breaker::new(settings.breaker_failures, settings.breaker_open),
            in_flight: Semaphore::new(settings.max_concurrency.max(1)),
            pace: RateLimiter::direct(Quota::per_second(per_second)),
            versions: ModelVersions {
                model_version: settings.model.clone(),
                prompt_version: PROMPT_VERSION.to_owned(),
            },
            settings,
            api_key,
            recorder,
        }))
    }

    /// The versions cloud results are stored under.
    pub fn versions(&self) -> &ModelVersions {
        &self.versions
    }

    /// Tells whether a call would be refused at once because the breaker is open.
    pub fn is_failing_fast(&self) -> bool {
        !self.breaker.is_call_permitted()
    }

    /// Classifies an upright image, by `deadline` at the latest, and records the call for
    /// `origin` (see `model_calls`).
    ///
    /// One record per call as the caller sees it: the retried attempts of one image are one
    /// call, with the latency the caller waited (queueing, attempts and pauses) and the final
    /// outcome. That is what the user's wait and the bill depend on (a 429 or 5xx attempt is not
    /// billed; the attempts show in the logs, "retrying the cloud model", and in the breaker's).
    /// A call refused before any exchange (open breaker, no time left) is recorded too: the
    /// caller asked for the model and got no answer. An answer refused as invalid is recorded
    /// with the tokens it was billed.
    #[tracing::instrument(skip_all, fields(model = %self.settings.model))]
    pub async fn classify(
        &self,
        image: Arc<DecodedImage>,
        deadline: Instant,
        origin: &CallOrigin,
    ) -> Result<ModelResult, ProviderError> {
        let call = self
            .recorder
            .start(&self.settings.model, ModelSource::Cloud, origin);
        let completion = match self.complete(image, deadline).await {
            Ok(completion) => completion,
            Err(err) => {
                call.failed(err.status(), err.code(), 0);
                return Err(err);
            }
        };
        let tokens = completion.usage.map_or(0, TokenUsage::total);
        let parsed = match answer::parse(&completion.content) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::warn!(error = %err, "the cloud model's answer was refused");
                let err = ProviderError::from(CallError::InvalidAnswer(err.to_string()));
                call.failed(err.status(), err.code(), tokens);
                return Err(err);
            }
        };
        call.answered(tokens);
        if let Some(usage) = completion.usage {
            tracing::info!(
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                "cloud classification"
            );
        }
        Ok(ModelResult {
            category: parsed.category,
            labels: parsed.labels,
            confidence: parsed.confidence,
            sure: true,
            producer: Producer::Model,
            model: self.settings.model.clone(),
            usage: completion.usage,
        })
    }

    /// Sends the image and the question, retrying as configured; the last attempt's completion.
    async fn complete(
        &self,
        image: Arc<DecodedImage>,
        deadline: Instant,
    ) -> Result<wire::Completion, ProviderError> {
        let deadline = deadline.min(Instant::now() + self.settings.deadline);
        let max_side = self.settings.image_max_side;
        let data_uri =
            tokio::task::spawn_blocking(move || image::jpeg_data_uri(&image.image, max_side))
                .await
                .map_err(|err| ProviderError::Internal(format!("encode task failed: {err}")))?
                .map_err(|err| ProviderError::Internal(format!("jpeg encoding failed: {err}")))?;
        let body = serde_json::to_vec(&wire::classify_request(&self.settings.model, &data_uri))
            .map_err(|err| ProviderError::Internal(err.to_string()))?;
        drop(data_uri);

        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_base)
            .with_max_delay(self.settings.retry_max)
            .with_max_times(self.settings.max_retries)
            .with_jitter();
        let retry_max = self.settings.retry_max;
        (|| self.attempt(body.clone(), deadline))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(ProviderError::is_retryable)
            .adjust(|err, pause| {
                let pause = match err {
                    ProviderError::Call(CallError::RateLimited {
                        retry_after: Some(asked),
                        ..
                    }) => pause.map(|pause| pause.max((*asked).min(retry_max))),
                    _ => pause,
                }?;
                // A retry that cannot finish before the deadline is not started.
                (Instant::now() + pause + MIN_ATTEMPT_BUDGET < deadline).then_some(pause)
            })
            .notify(|err, pause| {
                tracing::info!(error = %err, pause_ms = pause.as_millis() as u64, "retrying the cloud model");
            })
            .await
    }

    /// One HTTP exchange through the breaker, the concurrency cap and the pace limiter.
    async fn attempt(
        &self,
        body: Vec<u8>,
        deadline: Instant,
    ) -> Result<wire::Completion, ProviderError> {
        if deadline.saturating_duration_since(Instant::now()) < MIN_ATTEMPT_BUDGET {
            return Err(ProviderError::Deadline);
        }
        // Waiting for a slot or the pace counts against the deadline too.
        let admitted = tokio::time::timeout_at(deadline, async {
            let permit = self.in_flight.acquire().await;
            self.pace.until_ready().await;
            permit
        })
        .await;
        let _permit = match admitted {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ProviderError::Internal("semaphore closed".into())),
            Err(_) => return Err(ProviderError::Deadline),
        };
        let timeout = self
            .settings
            .attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let exchange = self.exchange(body, timeout);
        match self
            .breaker
            .call_with(ProviderError::is_provider_failure, exchange)
            .await
        {
            Ok(completion) => Ok(completion),
            Err(failsafe::Error::Rejected) => Err(ProviderError::CircuitOpen),
            Err(failsafe::Error::Inner(err)) => Err(err),
        }
    }

    async fn exchange(
        &self,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<wire::Completion, ProviderError> {
        let request = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body);
        let answer = call::send(request, &self.api_key).await?;
        if answer.status == 200 {
            wire::parse_completion(&answer.body)
        } else {
            Err(call::refused(Api::ChatCompletions, &answer).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_recorded_with_a_status_and_a_stable_code() {
        let cases = [
            (
                CallError::Server { status: 503 }.into(),
                503,
                "provider_server_error",
            ),
            (
                CallError::RateLimited {
                    code: "limit_requests".into(),
                    retry_after: None,
                }
                .into(),
                429,
                "rate_limited",
            ),
            (CallError::Timeout.into(), 504, "timeout"),
            (ProviderError::Deadline, 504, "deadline"),
            (ProviderError::CircuitOpen, 503, "circuit_open"),
            (
                CallError::ModerationRejected("x".into()).into(),
                400,
                "moderation_rejected",
            ),
            (
                CallError::Rejected {
                    status: 401,
                    code: "invalid_api_key".into(),
                    message: String::new(),
                }
                .into(),
                401,
                "provider_rejected",
            ),
            (
                CallError::InvalidAnswer("prose".into()).into(),
                502,
                "invalid_answer",
            ),
        ];
        for (err, status, code) in cases {
            let err: ProviderError = err;
            assert_eq!((err.status(), err.code()), (status, code), "{err}");
        }
    }
}
