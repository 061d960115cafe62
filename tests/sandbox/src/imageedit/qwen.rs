//! `qwen-image-edit(-plus)`: one synchronous call through the native multimodal-generation API.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use image::ImageFormat;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pictures::{self, StoredResult};
use super::{
    invalid_parameter, key_refused, millis, native_error, rate_limited, request_id, result_base,
    server_error, take,
};
use crate::{Sandbox, lock};

/// DashScope recommends 384..=3072; the sandbox is lenient, as the service is in practice.
const SIDES: RangeInclusive<u32> = 256..=4096;
const FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
];

#[derive(Deserialize)]
struct GenerateIn {
    #[serde(default)]
    model: String,
    input: Option<GenerateInput>,
    #[serde(default)]
    parameters: Parameters,
}

#[derive(Deserialize)]
struct GenerateInput {
    #[serde(default)]
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Vec<Part>,
}

/// A content part holds an image or a text.
#[derive(Deserialize)]
struct Part {
    image: Option<String>,
    text: Option<String>,
}

#[derive(Default, Deserialize)]
struct Parameters {
    n: Option<i64>,
    negative_prompt: Option<String>,
    seed: Option<i64>,
}

/// Checks everything but decoding the images; returns n and the image data URIs.
fn check(request: &GenerateIn) -> Result<(u32, Vec<String>), String> {
    let max_n = match request.model.as_str() {
        "qwen-image-edit" => 1,
        "qwen-image-edit-plus" => 6,
        other => {
            return Err(format!(
                "Model not exist: '{other}' (this endpoint serves qwen-image-edit and qwen-image-edit-plus)."
            ));
        }
    };
    let messages = request
        .input
        .as_ref()
        .map(|input| input.messages.as_slice())
        .unwrap_or_default();
    let [message] = messages else {
        return Err(format!(
            "input.messages must hold exactly one user message, got {}.",
            messages.len()
        ));
    };
    if message.role != "user" {
        return Err(format!(
            "input.messages[0].role must be 'user', got '{}'.",
            message.role
        ));
    }
    let mut images = Vec::new();
    let mut texts = Vec::new();
    for part in &message.content {
        match (&part.image, &part.text) {
            (Some(image), None) => images.push(image.clone()),
            (None, Some(text)) => texts.push(text),
            _ => return Err("each content part must hold exactly one of image or text.".into()),
        }
    }
    if !(1..=3).contains(&images.len()) {
        return Err(format!(
            "the user message must hold 1 to 3 image parts, got {}.",
            images.len()
        ));
    }
    match texts.as_slice() {
        [text] if !text.trim().is_empty() => {}
        [_] => return Err("the text part must not be empty.".into()),
        _ => {
            return Err(format!(
                "the user message must hold exactly one text part, got {}.",
                texts.len()
            ));
        }
    }
    let params = &request.parameters;
    let n = params.n.unwrap_or(1);
    if !(1..=max_n).contains(&n) {
        return Err(format!(
            "parameters.n must be within [1, {max_n}] for {}, got {n}.",
            request.model
        ));
    }
    if let Some(negative) = &params.negative_prompt {
        let chars = negative.chars().count();
        if chars > 500 {
            return Err(format!(
                "parameters.negative_prompt must be at most 500 characters, got {chars}."
            ));
        }
    }
    if let Some(seed) = params
        .seed
        .filter(|s| !(0..=i64::from(i32::MAX)).contains(s))
    {
        return Err(format!(
            "parameters.seed must be within [0, 2147483647], got {seed}."
        ));
    }
    Ok((n as u32, images))
}

/// Decodes every image; returns the first one's size and its edited PNG.
fn check_images(images: &[String]) -> Result<(u32, u32, Vec<u8>), String> {
    let mut first = None;
    for (i, uri) in images.iter().enumerate() {
        let picture = pictures::decode_data_uri(uri, &FORMATS, &SIDES)
            .map_err(|err| format!("image {}: {err}.", i + 1))?;
        first.get_or_insert(picture);
    }
    let first = first.ok_or("the user message has no image part.")?;
    let png = pictures::edited_png(&first.image)?;
    Ok((first.width, first.height, png))
}

pub(super) async fn generate(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let edit = &sandbox.state.image_edit;
    super::ImageEdit::count(&edit.sync_calls);
    let response = answer(&sandbox, &headers, &body).await;
    edit.tally(&response);
    response
}

async fn answer(sandbox: &Sandbox, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(refused) = key_refused(sandbox, headers) {
        return refused;
    }
    if headers.contains_key("x-dashscope-async") {
        return native_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "current user api does not support asynchronous calls",
        );
    }
    let request: GenerateIn = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => return invalid_parameter(&format!("The request body is invalid: {err}.")),
    };
    let (n, images) = match check(&request) {
        Ok(checked) => checked,
        Err(message) => return invalid_parameter(&message),
    };
    // Decoding and encoding a 4096-pixel image takes a while: off the async workers.
    let (width, height, png) =
        match tokio::task::spawn_blocking(move || check_images(&images)).await {
            Ok(Ok(done)) => done,
            Ok(Err(message)) => return invalid_parameter(&message),
            Err(_) => return server_error(),
        };
    let edit = &sandbox.state.image_edit;
    let (moderated, broken) = {
        let mut desk = lock(&edit.desk);
        if take(&mut desk.faults.sync_rate_limited) {
            return rate_limited();
        }
        let broken = take(&mut desk.faults.sync_server_errors);
        let moderated = !broken && take(&mut desk.faults.sync_moderation);
        (moderated, broken)
    };
    // The model works for a while before it answers, success or not.
    tokio::time::sleep(millis(edit.settings().sync_delay_ms)).await;
    if broken {
        return server_error();
    }
    if moderated {
        return native_error(
            StatusCode::BAD_REQUEST,
            "DataInspectionFailed",
            "Input data may contain inappropriate content.",
        );
    }
    let base = result_base(sandbox, headers);
    let png = Arc::new(png);
    let made_at = Instant::now();
    let mut content = Vec::new();
    {
        let mut desk = lock(&edit.desk);
        for _ in 0..n {
            let name = format!("{}.png", uuid::Uuid::new_v4().simple());
            content.push(json!({ "image": format!("{base}/_sandbox/edit-results/{name}") }));
            let png = Arc::clone(&png);
            desk.results.insert(name, StoredResult { png, made_at });
        }
    }
    Json(json!({
        "output": { "choices": [{
            "finish_reason": "stop",
            "message": { "role": "assistant", "content": Value::from(content) },
        }]},
        "usage": { "width": width, "height": height, "image_count": n },
        "request_id": request_id(),
    }))
    .into_response()
}
