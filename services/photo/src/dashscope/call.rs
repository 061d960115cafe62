//! What both DashScope clients share on the wire: one HTTP call with the account's key, and one
//! way to sort a failed answer into what to do about it.
//!
//! The two APIs read one code differently, so sorting takes the API that answered. A 429
//! `Throttling.AllocationQuota` from chat completions is an exhausted quota: waiting does not
//! bring it back, so it is a refusal. From DashScope's native task API it says "too many tasks in
//! progress": the account's tasks in flight are at their cap, and the same submit succeeds once
//! one finishes, so it is a rate limit to wait out.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The API a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// The OpenAI-compatible chat completions (Qwen-VL classification).
    ChatCompletions,
    /// DashScope's own API: image-edit tasks and multimodal generation.
    Native,
}

/// Why a call to DashScope gave nothing usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The account's limits: try again later (not the caller's fault).
    #[error("rate limited ({code})")]
    RateLimited {
        code: String,
        retry_after: Option<Duration>,
    },
    #[error("server error {status}")]
    Server { status: u16 },
    #[error("the call timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("content moderation refused the request: {0}")]
    ModerationRejected(String),
    #[error("request refused ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
}

impl CallError {
    /// Worth calling again later: the provider was busy, slow or down, not refusing the request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Timeout | Self::Connect(_)
        )
    }

    /// The HTTP-like status of a call that ended with this error, for its record: the
    /// provider's own status where it gave one, else what stands for the failure.
    pub fn status(&self) -> u16 {
        match self {
            Self::RateLimited { .. } => 429,
            Self::Server { status } => *status,
            Self::Timeout => 504,
            Self::Connect(_) => 502,
            Self::ModerationRejected(_) => 400,
            Self::Rejected { status, .. } if *status >= 400 => *status,
            // A 200 whose content is unusable: the upstream answered wrongly.
            Self::Rejected { .. } | Self::InvalidAnswer(_) => 502,
        }
    }

    /// A stable snake_case code, for the call's record.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "provider_server_error",
            Self::Timeout => "timeout",
            Self::Connect(_) => "connect_failed",
            Self::ModerationRejected(_) => "moderation_rejected",
            Self::Rejected { .. } => "provider_rejected",
            Self::InvalidAnswer(_) => "invalid_answer",
        }
    }
}

/// A whole answer: its status, its Retry-After (seconds), and its body.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// Small JSON documents both (results are downloaded apart, in chunks).
    pub body: Vec<u8>,
}

/// The HTTP client of one DashScope client: connections kept for a minute between calls.
pub fn http_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

/// Sends `request` with the account's key and reads the whole answer.
pub async fn send(
    request: reqwest::RequestBuilder,
    api_key: &SecretString,
) -> Result<Answer, CallError> {
    let response = request
        .bearer_auth(api_key.expose_secret())
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.map_err(transport_error)?.to_vec();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// Sorts a non-200 answer of `api`, and says so in the log where the account itself is refused.
pub fn refused(api: Api, answer: &Answer) -> CallError {
    let err = parse_error(api, answer.status, &answer.body, answer.retry_after);
    if matches!(answer.status, 401 | 403) {
        tracing::error!(error = %err, "dashscope refused our credentials or call; check DASHSCOPE_API_KEY");
    }
    err
}

/// Sorts a non-2xx answer of `api` by its status and code.
pub fn parse_error(api: Api, status: u16, body: &[u8], retry_after: Option<Duration>) -> CallError {
    let envelope: ErrorEnvelope = serde_json::from_slice(body).unwrap_or_default();
    let (code, message) = match envelope.error {
        Some(error) => (error.code.or(error.kind), error.message),
        None => (envelope.code, envelope.message),
    };
    sort_error(
        api,
        status,
        code.unwrap_or_default(),
        message.unwrap_or_default(),
        retry_after,
    )
}

/// Sorts a failure of `api` by its status and code (an error inside a 200 answer too).
pub fn sort_error(
    api: Api,
    status: u16,
    code: String,
    message: String,
    retry_after: Option<Duration>,
) -> CallError {
    if is_moderation(&code) {
        return CallError::ModerationRejected(message);
    }
    let throttled = match api {
        Api::ChatCompletions => status == 429,
        // The native API names throttling by its code, whatever the status.
        Api::Native => status == 429 || code.starts_with("Throttling"),
    };
    if throttled && !(api == Api::ChatCompletions && is_quota_exhausted(&code)) {
        return CallError::RateLimited { code, retry_after };
    }
    if (500..=599).contains(&status) {
        return CallError::Server { status };
    }
    CallError::Rejected {
        status,
        code,
        message,
    }
}

/// A call that got no answer: it timed out, or never reached the provider.
pub fn transport_error(err: reqwest::Error) -> CallError {
    if err.is_timeout() {
        CallError::Timeout
    } else {
        CallError::Connect(err.without_url().to_string())
    }
}

/// Both error shapes: OpenAI-style `{"error":{...}}` and native `{"code","message"}`.
#[derive(Deserialize, Default)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
    code: Option<String>,
    message: Option<String>,
}

/// The OpenAI-style error object, also found inside a 200 chat answer.
#[derive(Deserialize)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// `insufficient_quota` (OpenAI-compatible) or `Throttling.AllocationQuota` (native).
fn is_quota_exhausted(code: &str) -> bool {
    matches!(code, "insufficient_quota" | "Throttling.AllocationQuota")
}

/// `data_inspection_failed` (OpenAI-compatible) or `DataInspectionFailed` (native), but not
/// `InvalidParameter.DataInspection`, which is about the media format.
fn is_moderation(code: &str) -> bool {
    let normalised: String = code
        .chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    normalised == "datainspectionfailed"
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOCATION_QUOTA: &[u8] = br#"{"code":"Throttling.AllocationQuota","message":"Allocated quota exceeded, please increase your quota limit.","request_id":"r"}"#;

    #[test]
    fn the_apis_read_allocation_quota_each_their_own_way() {
        // Chat completions: an exhausted quota, refused and not retried.
        let chat = parse_error(Api::ChatCompletions, 429, ALLOCATION_QUOTA, None);
        assert!(
            matches!(chat, CallError::Rejected { status: 429, .. }),
            "{chat}"
        );
        assert!(!chat.is_transient());
        // Image tasks: the tasks in flight are at their cap; submit again later.
        let tasks = parse_error(Api::Native, 429, ALLOCATION_QUOTA, None);
        assert!(matches!(tasks, CallError::RateLimited { .. }), "{tasks}");
        assert!(tasks.is_transient());
    }

    #[test]
    fn both_apis_agree_on_the_rest() {
        let cases: [(u16, &[u8], &str); 8] = [
            (503, b"busy", "provider_server_error"),
            (
                429,
                br#"{"code":"Throttling.RateQuota","message":"m"}"#,
                "rate_limited",
            ),
            (
                400,
                br#"{"code":"DataInspectionFailed","message":"m"}"#,
                "moderation_rejected",
            ),
            (
                400,
                br#"{"error":{"code":"data_inspection_failed","message":"m"}}"#,
                "moderation_rejected",
            ),
            (
                400,
                br#"{"code":"InvalidParameter.DataInspection","message":"m"}"#,
                "provider_rejected",
            ),
            (
                500,
                br#"{"code":"InternalError","message":"m"}"#,
                "provider_server_error",
            ),
            (
                401,
                br#"{"code":"InvalidApiKey","message":"m"}"#,
                "provider_rejected",
            ),
            (
                400,
                br#"{"code":"InvalidParameter","message":"m"}"#,
                "provider_rejected",
            ),
        ];
        for (status, body, expected) in cases {
            for api in [Api::ChatCompletions, Api::Native] {
                let err = parse_error(api, status, body, None);
                assert_eq!(err.code(), expected, "{api:?} {status}: {err}");
            }
        }
    }

    #[test]
    fn the_native_api_names_throttling_by_its_code() {
        let throttled = br#"{"code":"Throttling","message":"m"}"#;
        assert!(parse_error(Api::Native, 400, throttled, None).is_transient());
        assert!(!parse_error(Api::ChatCompletions, 400, throttled, None).is_transient());
    }

    #[test]
    fn a_retry_after_travels_with_the_rate_limit() {
        let limited = br#"{"error":{"message":"You have exceeded your current request limit","type":"limit_requests","code":"limit_requests"}}"#;
        let err = parse_error(
            Api::ChatCompletions,
            429,
            limited,
            Some(Duration::from_secs(2)),
        );
        assert_eq!(
            err,
            CallError::RateLimited {
                code: "limit_requests".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
    }
}
