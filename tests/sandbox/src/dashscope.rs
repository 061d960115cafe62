//! DashScope's OpenAI-compatible chat completions for vision (`/compatible-mode/v1/chat/
//! completions`), as Qwen-VL answers them: a JSON category for an image sent as a data URI, with
//! token usage, DashScope's error bodies, and injectable faults (429 `limit_requests`, 5xx, slow
//! answers, 400 `data_inspection_failed`, malformed or off-list answers). Every call is counted so
//! tests can assert single flight and retries.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Sandbox, lock};

/// Faults for the next vision calls. Counts are used up one call at a time, in the order listed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VisionFaults {
    /// Every call answers 503 while set (the provider is down).
    #[serde(default)]
    pub down: bool,
    /// Calls that answer 429 `limit_requests`.
    #[serde(default)]
    pub rate_limited: u32,
    /// Calls that answer 500 `internal_error`.
    #[serde(default)]
    pub server_errors: u32,
    /// Calls that answer 400 `data_inspection_failed` (content moderation).
    #[serde(default)]
    pub data_inspection_failed: u32,
    /// Calls whose answer text is prose, not JSON.
    #[serde(default)]
    pub malformed: u32,
    /// Calls whose JSON names a category that is not on the album list.
    #[serde(default)]
    pub wrong_category: u32,
    /// Delay before every answer, milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

/// What the model "sees" in every image: the answer it gives when no fault applies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VisionAnswer {
    /// A Chinese album label (人物, 风景, ...), as the prompt asks.
    pub category: String,
    pub confidence: f64,
    pub labels: Vec<(String, f64)>,
}

impl Default for VisionAnswer {
    fn default() -> Self {
        // People are what the local ImageNet model cannot see, so the cloud's typical answer.
        Self {
            category: "人物".into(),
            confidence: 0.93,
            labels: vec![("人像".into(), 0.91), ("宇航服".into(), 0.62)],
        }
    }
}

#[derive(Default)]
pub(crate) struct Vision {
    faults: Mutex<VisionFaults>,
    answer: Mutex<VisionAnswer>,
    calls: AtomicU64,
    answered: AtomicU64,
}

impl Vision {
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Sandbox {
    pub fn set_vision_faults(&self, faults: VisionFaults) {
        *lock(&self.state.vision.faults) = faults;
    }

    pub fn set_vision_answer(&self, answer: VisionAnswer) {
        *lock(&self.state.vision.answer) = answer;
    }
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            "/compatible-mode/v1/chat/completions",
            post(chat_completions),
        )
        .route("/_sandbox/dashscope/faults", post(set_faults))
        .route("/_sandbox/dashscope/answer", post(set_answer))
}

async fn set_faults(
    State(sandbox): State<Sandbox>,
    Json(faults): Json<VisionFaults>,
) -> StatusCode {
    sandbox.set_vision_faults(faults);
    StatusCode::NO_CONTENT
}

async fn set_answer(
    State(sandbox): State<Sandbox>,
    Json(answer): Json<VisionAnswer>,
) -> StatusCode {
    sandbox.set_vision_answer(answer);
    StatusCode::NO_CONTENT
}

fn error(status: StatusCode, code: &str, kind: &str, message: &str) -> Response {
    let body = json!({
        "error": { "code": code, "param": null, "message": message, "type": kind },
        "request_id": request_id(),
    });
    (status, Json(body)).into_response()
}

/// A request id in DashScope's shape (a UUID: 8-4-4-4-12 hex digits).
fn request_id() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Moderation refusals also carry the completion id (`chatcmpl-` + the request id).
fn moderation_error(message: &str) -> Response {
    let request_id = request_id();
    let body = json!({
        "error": {
            "message": message,
            "type": "data_inspection_failed",
            "param": null,
            "code": "data_inspection_failed",
        },
        "id": format!("chatcmpl-{request_id}"),
        "request_id": request_id,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// The fault that applies to this call, used up.
enum Fault {
    Down,
    RateLimited,
    ServerError,
    DataInspection,
    Malformed,
    WrongCategory,
}

fn take_fault(faults: &mut VisionFaults) -> Option<Fault> {
    let take = |count: &mut u32, fault: Fault| {
        (*count > 0).then(|| {
            *count -= 1;
            fault
        })
    };
    if faults.down {
        return Some(Fault::Down);
    }
    take(&mut faults.rate_limited, Fault::RateLimited)
        .or_else(|| take(&mut faults.server_errors, Fault::ServerError))
        .or_else(|| take(&mut faults.data_inspection_failed, Fault::DataInspection))
        .or_else(|| take(&mut faults.malformed, Fault::Malformed))
        .or_else(|| take(&mut faults.wrong_category, Fault::WrongCategory))
}

#[derive(Deserialize)]
struct ChatIn {
    #[serde(default)]
    model: String,
    #[serde(default)]
    messages: Vec<Value>,
}

async fn chat_completions(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let vision = &sandbox.state.vision;
    vision.calls.fetch_add(1, Ordering::SeqCst);
    let delay = lock(&vision.faults).delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let expected = format!("Bearer {}", sandbox.state.cfg.dashscope_api_key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "invalid_request_error",
            "Incorrect API key provided. For details, see: https://help.aliyun.com/zh/model-studio/error-code#apikey-error",
        );
    }
    let fault = take_fault(&mut lock(&vision.faults));
    match fault {
        Some(Fault::Down) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response();
        }
        Some(Fault::RateLimited) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "limit_requests",
                "limit_requests",
                "You have exceeded your current request limit. For details, see: https://help.aliyun.com/zh/model-studio/error-code#rate-limit",
            );
        }
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal_error",
                "An internal error has occured, please try again later or contact service support.",
            );
        }
        _ => {}
    }
    let Ok(input) = serde_json::from_slice::<ChatIn>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter_error",
            "invalid_request_error",
            "The request body is not valid JSON.",
        );
    };
    if input.model.is_empty() || input.messages.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter_error",
            "invalid_request_error",
            "model and messages are required.",
        );
    }
    let image_bytes = match image_of(&input.messages) {
        Ok(bytes) => bytes,
        Err(message) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter_error",
                "invalid_request_error",
                message,
            );
        }
    };
    let content = match fault {
        Some(Fault::DataInspection) => {
            return moderation_error(
                "Input data may contain inappropriate content. For details, see: https://help.aliyun.com/zh/model-studio/error-code#inappropriate-content",
            );
        }
        Some(Fault::Malformed) => "这张照片里有一个人站在户外。".to_owned(),
        Some(Fault::WrongCategory) => r#"{"category":"汽车","confidence":0.88}"#.to_owned(),
        _ => {
            let answer = lock(&vision.answer).clone();
            let labels: Vec<Value> = answer
                .labels
                .iter()
                .map(|(label, score)| json!({ "label": label, "score": score }))
                .collect();
            json!({ "category": answer.category, "confidence": answer.confidence, "labels": labels })
                .to_string()
        }
    };
    vision.answered.fetch_add(1, Ordering::SeqCst);
    // Qwen-VL bills about one token per 28×28 pixels; the JPEG size is a fair stand-in here.
    let image_tokens = 4 + (image_bytes / 300) as u64;
    Json(json!({
        "id": format!("chatcmpl-{}", rand::random::<u64>()),
        "object": "chat.completion",
        "created": chrono::Utc::now().timestamp(),
        "model": input.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop",
            "logprobs": null,
        }],
        "usage": {
            "prompt_tokens": image_tokens + 60,
            "completion_tokens": 24,
            "total_tokens": image_tokens + 84,
            "prompt_tokens_details": { "image_tokens": image_tokens, "text_tokens": 60 },
        },
        "system_fingerprint": null,
    }))
    .into_response()
}

/// Finds the user's image part and checks it is a JPEG or PNG data URI; returns its size.
fn image_of(messages: &[Value]) -> Result<usize, &'static str> {
    let url = messages
        .iter()
        .filter(|message| message["role"] == "user")
        .filter_map(|message| message["content"].as_array())
        .flatten()
        .filter(|part| part["type"] == "image_url")
        .find_map(|part| part["image_url"]["url"].as_str())
        .ok_or("The user message has no image_url part.")?;
    let (mime, data) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .ok_or("The image url must be a base64 data URI here.")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "The image data is not valid base64.")?;
    let magic_ok = match mime {
        "image/jpeg" => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/png" => bytes.starts_with(b"\x89PNG"),
        _ => false,
    };
    if !magic_ok {
        return Err("The image format is not supported or does not match its MIME type.");
    }
    if bytes.len() > 10 * 1024 * 1024 {
        return Err("The image is larger than 10 MB.");
    }
    Ok(bytes.len())
}
