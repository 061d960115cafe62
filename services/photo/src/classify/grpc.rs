//! `photo.v1.ClassifierService`.

use proto::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use proto::photo::v1 as pb;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::classify::domain::{Answer, CloudSkip, Mode, Source};
use crate::classify::{Classifier, ClassifyInput};
use crate::error::PhotoError;
use crate::model_calls::CallOrigin;

/// The deadline when the caller sends none (the server's own call timeout is 30 s).
const DEFAULT_DEADLINE: Duration = Duration::from_secs(25);

pub struct ClassifierGrpc {
    classifier: Arc<Classifier>,
}

impl ClassifierGrpc {
    pub fn new(classifier: Arc<Classifier>) -> Self {
        Self { classifier }
    }
}

#[tonic::async_trait]
impl pb::classifier_service_server::ClassifierService for ClassifierGrpc {
    async fn classify(
        &self,
        request: Request<pb::ClassifyRequest>,
    ) -> Result<Response<pb::Classification>, Status> {
        let deadline = deadline_of(&request);
        let origin = CallOrigin::of(request.metadata(), request.get_ref().caller.as_ref());
        let request = request.into_inner();
        let mode = parse_mode(request.mode)?;
        let user_id = caller_user_id(request.caller.as_ref())?;
        let answer = self
            .classifier
            .classify(ClassifyInput {
                image: request.image,
                mode,
                user_id,
                deadline,
                origin,
            })
            .await?;
        Ok(Response::new(to_pb(answer)))
    }

    #[tracing::instrument(skip_all, fields(images = request.get_ref().images.len()))]
    async fn classify_batch(
        &self,
        request: Request<pb::ClassifyBatchRequest>,
    ) -> Result<Response<pb::ClassifyBatchResponse>, Status> {
        let deadline = deadline_of(&request);
        let origin = CallOrigin::of(request.metadata(), request.get_ref().caller.as_ref());
        let request = request.into_inner();
        let mode = parse_mode(request.mode)?;
        let user_id = caller_user_id(request.caller.as_ref())?;
        let answers = self
            .classifier
            .classify_batch(request.images, mode, user_id, deadline, &origin)
            .await?;
        let items = answers
            .into_iter()
            .map(|answer| pb::ClassifyBatchItem {
                outcome: Some(match answer {
                    Ok(answer) => pb::classify_batch_item::Outcome::Classification(to_pb(answer)),
                    Err(err) => pb::classify_batch_item::Outcome::Error(pb::ItemError {
                        code: err
                            .client_code()
                            .unwrap_or(ErrorCode::Internal)
                            .as_str()
                            .to_owned(),
                        message: err.to_string(),
                    }),
                }),
            })
            .collect();
        Ok(Response::new(pb::ClassifyBatchResponse { items }))
    }

    #[tracing::instrument(skip_all, fields(digests = request.get_ref().sha256.len()))]
    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        let found = self.classifier.lookup(&request.get_ref().sha256).await?;
        let items = found
            .into_iter()
            .map(|(digest, answer)| pb::LookupItem {
                sha256: digest.to_hex(),
                classification: answer.map(to_pb),
            })
            .collect();
        Ok(Response::new(pb::LookupResponse { items }))
    }
}

fn parse_mode(mode: i32) -> Result<Mode, PhotoError> {
    match pb::ClassifyMode::try_from(mode) {
        Ok(pb::ClassifyMode::Unspecified | pb::ClassifyMode::Auto) => Ok(Mode::Auto),
        Ok(pb::ClassifyMode::Local) => Ok(Mode::Local),
        Ok(pb::ClassifyMode::Cloud) => Ok(Mode::Cloud),
        Err(_) => Err(PhotoError::Image {
            code: ErrorCode::InvalidMode,
            message: format!("unknown mode {mode}: use auto, local or cloud"),
        }),
    }
}

fn caller_user_id(caller: Option<&pb::Caller>) -> Result<i64, PhotoError> {
    caller
        .map(|caller| caller.user_id)
        .filter(|id| *id > 0)
        .ok_or_else(|| PhotoError::invalid("caller.user_id", "a bound user is required"))
}

/// The caller's deadline from the `grpc-timeout` header (never start work that cannot finish in
/// time: docs/architecture.md, "Calling the providers"), else a default.
fn deadline_of<T>(request: &Request<T>) -> Instant {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(DEFAULT_DEADLINE);
    Instant::now() + timeout.min(DEFAULT_DEADLINE)
}

/// Parses gRPC's `TimeoutValue TimeoutUnit` (at most 8 digits; H, M, S, m, u or n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount * 3600),
        'M' => Duration::from_secs(amount * 60),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn to_pb(answer: Answer) -> pb::Classification {
    let result = answer.result;
    let model_tokens = match (answer.source, result.usage) {
        (Source::Model, Some(usage)) => usage.total(),
        _ => 0,
    };
    pb::Classification {
        sha256: answer.digest.to_hex(),
        category: result.category.code().to_owned(),
        label: result.category.label_zh().to_owned(),
        top_labels: result
            .labels
            .into_iter()
            .map(|label| pb::ScoredLabel {
                label: label.label,
                score: label.score,
            })
            .collect(),
        confidence: result.confidence,
        sure: result.sure,
        source: match answer.source {
            Source::Cache => pb::ClassificationSource::Cache,
            Source::Local => pb::ClassificationSource::Local,
            Source::Model => pb::ClassificationSource::Model,
        }
        .into(),
        model: result.model,
        credits_charged: answer.credits_charged,
        remaining_credits: answer.remaining_credits,
        cloud_skipped: answer.cloud_skipped.map(|reason| pb::CloudSkipped {
            reason: skip_to_pb(reason).into(),
            message: reason.message().to_owned(),
        }),
        model_tokens,
    }
}

fn skip_to_pb(reason: CloudSkip) -> pb::CloudSkipReason {
    match reason {
        CloudSkip::NotConfigured => pb::CloudSkipReason::NotConfigured,
        CloudSkip::InsufficientCredits => pb::CloudSkipReason::InsufficientCredits,
        CloudSkip::CreditsUnavailable => pb::CloudSkipReason::CreditsUnavailable,
        CloudSkip::ProviderUnavailable => pb::CloudSkipReason::ProviderUnavailable,
        CloudSkip::RateLimited => pb::CloudSkipReason::RateLimited,
        CloudSkip::ModerationRejected => pb::CloudSkipReason::ModerationRejected,
        CloudSkip::InvalidAnswer => pb::CloudSkipReason::InvalidAnswer,
        CloudSkip::ProviderRejected => pb::CloudSkipReason::ProviderRejected,
        CloudSkip::Deadline => pb::CloudSkipReason::Deadline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(
            parse_grpc_timeout("14999m"),
            Some(Duration::from_millis(14_999))
        );
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("500u"), Some(Duration::from_micros(500)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "123456789m", "5x", "-5m", "5.0S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn modes_parse_and_unknown_ones_are_refused() {
        assert_eq!(parse_mode(0).unwrap(), Mode::Auto);
        assert_eq!(parse_mode(3).unwrap(), Mode::Cloud);
        let err = parse_mode(42).unwrap_err();
        assert_eq!(err.client_code(), Some(ErrorCode::InvalidMode));
    }
}
