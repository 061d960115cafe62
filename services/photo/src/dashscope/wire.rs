//! DashScope's OpenAI-compatible chat completions on the wire: the request for one image and the
//! answer (failed answers are sorted by [`super::call`]).

use serde::{Deserialize, Serialize};

use super::ProviderError;
use super::call::{Api, CallError, ErrorBody, sort_error};
use crate::classify::domain::TokenUsage;
use crate::classify::domain::answer::{SYSTEM_PROMPT, USER_PROMPT};

#[derive(Serialize)]
pub struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 2],
    max_tokens: u32,
    temperature: f32,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Message<'a> {
    System { content: &'a str },
    User { content: [Part<'a>; 2] },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    ImageUrl { image_url: ImageUrl<'a> },
    Text { text: &'a str },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
}

/// The classification question about one image given as a data URI.
pub fn classify_request<'a>(model: &'a str, image_data_uri: &'a str) -> ChatRequest<'a> {
    ChatRequest {
        model,
        messages: [
            Message::System {
                content: SYSTEM_PROMPT,
            },
            Message::User {
                content: [
                    Part::ImageUrl {
                        image_url: ImageUrl {
                            url: image_data_uri,
                        },
                    },
                    Part::Text { text: USER_PROMPT },
                ],
            },
        ],
        // The JSON answer is a few dozen tokens; the cap bounds the bill of a rambling model.
        max_tokens: 200,
        temperature: 0.1,
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

/// The model's text and the token usage of a 200 answer.
pub struct Completion {
    pub content: String,
    pub usage: Option<TokenUsage>,
}

/// Reads a 200 answer. An `error` object inside it (moderation tripping on the output) counts as
/// that error; a missing or non-text message is an invalid answer.
pub fn parse_completion(body: &[u8]) -> Result<Completion, ProviderError> {
    let response: ChatResponse = serde_json::from_slice(body)
        .map_err(|err| CallError::InvalidAnswer(format!("not a chat completion: {err}")))?;
    if let Some(error) = response.error {
        let code = error.code.or(error.kind).unwrap_or_default();
        let message = error.message.unwrap_or_default();
        return Err(sort_error(Api::ChatCompletions, 200, code, message, None).into());
    }
    let content = response
        .choices
        .into_iter()
        .next()
        .and_then(|choice| choice.message.content)
        .and_then(|content| text_of(&content))
        .ok_or_else(|| CallError::InvalidAnswer("the answer has no text".into()))?;
    Ok(Completion {
        content,
        usage: response.usage.map(|usage| TokenUsage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        }),
    })
}

/// Content is a string, or (some models) a list of `{"text": ...}` parts.
fn text_of(content: &serde_json::Value) -> Option<String> {
    match content {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter_map(|part| part.get("text").and_then(|t| t.as_str()))
                .collect();
            Some(text).filter(|t| !t.is_empty())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_the_image_and_the_question() {
        let request = classify_request("qwen-vl-max", "data:image/jpeg;base64,AAAA");
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["model"], "qwen-vl-max");
        assert_eq!(json["messages"][0]["role"], "system");
        let parts = &json["messages"][1]["content"];
        assert_eq!(json["messages"][1]["role"], "user");
        assert_eq!(parts[0]["type"], "image_url");
        assert_eq!(parts[0]["image_url"]["url"], "data:image/jpeg;base64,AAAA");
        assert_eq!(parts[1]["type"], "text");
        assert!(parts[1]["text"].as_str().unwrap().contains("美食"));
    }

    #[test]
    fn a_completion_gives_its_text_and_usage() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"qwen-vl-max",
            "choices":[{"index":0,"message":{"role":"assistant","content":"{\"category\":\"\u7f8e\u98df\"}"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":1270,"completion_tokens":12,"total_tokens":1282}}"#;
        let completion = parse_completion(body).unwrap();
        assert_eq!(completion.content, r#"{"category":"美食"}"#);
        assert_eq!(
            completion.usage,
            Some(TokenUsage {
                prompt_tokens: 1270,
                completion_tokens: 12
            })
        );
        assert!(matches!(
            parse_completion(b"<html>oops</html>"),
            Err(ProviderError::Call(CallError::InvalidAnswer(_)))
        ));
        assert!(matches!(
            parse_completion(br#"{"choices":[]}"#),
            Err(ProviderError::Call(CallError::InvalidAnswer(_)))
        ));
    }

    #[test]
    fn an_error_inside_a_completion_is_that_error() {
        let streamed = br#"{"error":{"code":"data_inspection_failed","message":"output"}}"#;
        assert!(matches!(
            parse_completion(streamed),
            Err(ProviderError::Call(CallError::ModerationRejected(_)))
        ));
    }
}
