//! Every model call of this service is recorded for the stats service (so the admin overview counts
//! model calls, tokens and cost apart from requests), next to the gateway's record of the request
//! that made it. One record per call: a model-call record naming the model, the outcome as an
//! HTTP-like status, the latency the caller waited, the tokens billed, the error code, and whom it
//! was for (the gRPC request's `Caller` and the gateway's request id). Recording never waits and
//! never fails a call: records go through `platform::request_log::Recorder` (bounded, batched, sent
//! asynchronously; kept while stats is down, then dropped and counted).
//!
//! A model call of your own (an image edit, say) is recorded like this:
//!
//! ```
//! use photo_svc::model_calls::{CallOrigin, ModelCallRecorder, ModelSource};
//!
//! # let recorder = ModelCallRecorder::disabled();
//! # let origin = CallOrigin::default();
//! // `origin` comes from the gRPC request: `CallOrigin::of(request.metadata(), caller)`.
//! let call = recorder.start("wanx2.1-imageedit", ModelSource::Cloud, &origin);
//! // ... the provider call ...
//! # let answered: Result<u32, (u16, &str)> = Err((429, "rate_limited"));
//! match answered {
//!     Ok(tokens) => call.answered(tokens),
//!     Err((status, code)) => call.failed(status, code, 0),
//! }
//! ```
//!
//! A call dropped unfinished (its caller went away) is recorded as 499 `cancelled`. A finished
//! call can also be handed over whole, as a [`ModelCall`], to [`ModelCallRecorder::record`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use platform::request_log::{Recorder, RecorderStats};
use proto::photo::v1 as pb;
use proto::stats::v1::{RecordKind, RequestRecord};
use tonic::metadata::MetadataMap;

/// Which kind of model ran: the record's `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// The local model (free).
    Local,
    /// A cloud model (billed by tokens).
    Cloud,
}

impl ModelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Cloud => "model",
        }
    }
}

/// Whom a model call was made for, taken from the gRPC request that asked for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallOrigin {
    pub client_id: String,
    pub openid: String,
    /// The gateway's request id (`x-request-id` metadata).
    pub request_id: String,
}

impl CallOrigin {
    /// From a gRPC request's metadata and the `Caller` it names.
    pub fn of(metadata: &MetadataMap, caller: Option<&pb::Caller>) -> Self {
        Self {
            client_id: caller.map(|c| c.client_id.clone()).unwrap_or_default(),
            openid: caller.map(|c| c.openid.clone()).unwrap_or_default(),
            request_id: metadata
                .get(platform::request_id::HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// One finished model call.
#[derive(Clone, Debug)]
pub struct ModelCall {
    /// The model's name (`qwen-vl-max`); the record's endpoint is `model:<model>`.
    pub model: String,
    pub source: ModelSource,
    /// When the call ended.
    pub at: SystemTime,
    /// What the caller waited, from asking to the outcome (queueing and retries included).
    pub latency: Duration,
    /// 200 when the model answered; else the provider's status, or what stands for the
    /// failure: 429, 5xx, 504 for a deadline, 499 when the caller went away.
    pub status: u16,
    /// Tokens billed for the call (a failed call may be billed too).
    pub tokens: u32,
    /// A stable snake_case code; empty when the model answered.
    pub error_code: String,
    pub origin: CallOrigin,
}

impl ModelCall {
    fn into_record(self) -> RequestRecord {
        let at_unix_ms = self.at.duration_since(UNIX_EPOCH).map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
        RequestRecord {
            at_unix_ms,
            kind: RecordKind::ModelCall.into(),
            endpoint: self.model,
            method: String::new(),
            status: u32::from(self.status),
            latency_ms: u32::try_from(self.latency.as_millis()).unwrap_or(u32::MAX),
            client_id: self.origin.client_id,
            openid: self.origin.openid,
            source: self.source.as_str().to_owned(),
            model_tokens: self.tokens,
            error_code: self.error_code,
            request_id: self.origin.request_id,
        }
    }
}

/// Sends model-call records to the stats service; a cheap handle, cloned into each model client.
#[derive(Clone)]
pub struct ModelCallRecorder {
    recorder: Recorder,
}

impl ModelCallRecorder {
    /// Records through `recorder` (started on the stats service's channel).
    pub fn new(recorder: Recorder) -> Self {
        Self { recorder }
    }

    /// Records nothing (no stats service configured).
    pub fn disabled() -> Self {
        Self::new(Recorder::disabled())
    }

    /// Queues a finished call; never waits (a full queue drops it, counted).
    pub fn record(&self, call: ModelCall) {
        self.recorder.record(call.into_record());
    }

    /// Starts timing a call of `model` for `origin`; finish it with [`PendingCall::answered`] or
    /// [`PendingCall::failed`].
    pub fn start(&self, model: &str, source: ModelSource, origin: &CallOrigin) -> PendingCall {
        PendingCall {
            recorder: self.clone(),
            model: model.to_owned(),
            source,
            origin: origin.clone(),
            started: Instant::now(),
            done: false,
        }
    }

    /// Records sent and dropped so far.
    pub fn stats(&self) -> RecorderStats {
        self.recorder.stats()
    }

    /// Resolves once the sender has flushed and ended (after its stop token was cancelled).
    pub async fn stopped(&self) {
        self.recorder.stopped().await;
    }
}

/// A model call under way. Dropped unfinished, it is recorded as 499 `cancelled`.
#[must_use = "finish the call with answered() or failed()"]
pub struct PendingCall {
    recorder: ModelCallRecorder,
    model: String,
    source: ModelSource,
    origin: CallOrigin,
    started: Instant,
    done: bool,
}

impl PendingCall {
    /// The model answered, for `tokens`.
    pub fn answered(mut self, tokens: u32) {
        self.finish(200, "", tokens);
    }

    /// The call gave no answer: `status` and `error_code` say why; `tokens` were billed anyway.
    pub fn failed(mut self, status: u16, error_code: &str, tokens: u32) {
        self.finish(status, error_code, tokens);
    }

    /// The model was never asked after all (the input was refused first): nothing is recorded.
    pub fn discard(mut self) {
        self.done = true;
    }

    fn finish(&mut self, status: u16, error_code: &str, tokens: u32) {
        self.done = true;
        self.recorder.record(ModelCall {
            model: std::mem::take(&mut self.model),
            source: self.source,
            at: SystemTime::now(),
            latency: self.started.elapsed(),
            status,
            tokens,
            error_code: error_code.to_owned(),
            origin: std::mem::take(&mut self.origin),
        });
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if !self.done {
            self.finish(499, "cancelled", 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_comes_from_the_caller_and_the_request_id_metadata() {
        let mut metadata = MetadataMap::new();
        metadata.insert(platform::request_id::HEADER, "req-7".parse().unwrap());
        let caller = pb::Caller {
            user_id: 3,
            client_id: "pc-1".into(),
            openid: "o_1".into(),
        };
        let origin = CallOrigin::of(&metadata, Some(&caller));
        assert_eq!(
            origin,
            CallOrigin {
                client_id: "pc-1".into(),
                openid: "o_1".into(),
                request_id: "req-7".into(),
            }
        );
        assert_eq!(
            CallOrigin::of(&MetadataMap::new(), None),
            CallOrigin::default()
        );
    }

    #[test]
    fn a_call_becomes_a_model_record() {
        let record = ModelCall {
            model: "qwen-vl-max".into(),
            source: ModelSource::Cloud,
            at: UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
            latency: Duration::from_millis(840),
            status: 429,
            tokens: 0,
            error_code: "rate_limited".into(),
            origin: CallOrigin {
                client_id: "pc-1".into(),
                openid: "o_1".into(),
                request_id: "req-7".into(),
            },
        }
        .into_record();
        assert_eq!(record.kind(), RecordKind::ModelCall);
        assert_eq!(record.endpoint, "qwen-vl-max");
        assert_eq!(record.source, "model");
        assert_eq!(
            (record.at_unix_ms, record.latency_ms, record.status),
            (1_795_000_000_123, 840, 429)
        );
        assert_eq!(
            (record.error_code.as_str(), record.request_id.as_str()),
            ("rate_limited", "req-7")
        );
    }

    #[test]
    fn finishing_or_dropping_a_disabled_call_is_harmless() {
        let recorder = ModelCallRecorder::disabled();
        let origin = CallOrigin::default();
        recorder
            .start("local-efficientnet-lite0", ModelSource::Local, &origin)
            .answered(0);
        drop(recorder.start("qwen-vl-max", ModelSource::Cloud, &origin));
        recorder
            .start("qwen-vl-max", ModelSource::Cloud, &origin)
            .discard();
        assert_eq!(recorder.stats(), RecorderStats::default());
    }
}
