//! Conformance of the DashScope client with answers DashScope really sends: every raw body in
//! `tests/conformance/dashscope.toml` (Model Studio docs, captures in public issues and files) goes
//! through the client's own parsing and sorting, and must come out as the table expects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use serde::Deserialize;

use super::ProviderError;
use super::call::{Api, CallError, parse_error};
use super::wire::parse_completion;

const TABLE: &str = include_str!("../../tests/conformance/dashscope.toml");

#[derive(Deserialize)]
struct Table {
    message: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    name: String,
    source: String,
    /// Which API answered: the native one reads some codes its own way.
    endpoint: String,
    http_status: u16,
    body: String,
    expect: String,
    #[serde(default)]
    derived: bool,
    why: Option<String>,
    code: Option<String>,
    content_prefix: Option<String>,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// What the client makes of a failed call, in the table's words, after checking that the
/// retry and breaker decisions match the kind.
fn verdict(message: &Message, err: &ProviderError) -> String {
    let ProviderError::Call(call) = err else {
        panic!("{}: parsing cannot give {err}", message.name);
    };
    let (kind, retryable) = match call {
        CallError::RateLimited { .. } => ("rate_limited", true),
        CallError::Server { .. } => ("server", true),
        CallError::ModerationRejected(_) => ("moderation", false),
        CallError::Rejected { status, code, .. } => {
            assert_eq!(*status, message.http_status, "{}: status", message.name);
            if let Some(expected) = &message.code {
                assert_eq!(code, expected, "{}: code", message.name);
            }
            ("rejected", false)
        }
        CallError::InvalidAnswer(_) => ("invalid_answer", false),
        other => panic!("{}: parsing cannot give {other}", message.name),
    };
    assert_eq!(err.is_retryable(), retryable, "{}: retry", message.name);
    assert_eq!(
        err.is_provider_failure(),
        retryable,
        "{}: breaker",
        message.name
    );
    kind.to_owned()
}

fn conclude(message: &Message) -> String {
    let body = message.body.as_bytes();
    if message.http_status == 200 {
        match parse_completion(body) {
            Ok(completion) => {
                let prefix = message.content_prefix.as_deref().unwrap_or_default();
                assert!(
                    completion.content.starts_with(prefix),
                    "{}: content {:?}",
                    message.name,
                    completion.content
                );
                let usage = completion.usage.expect("usage");
                assert_eq!(
                    Some(usage.prompt_tokens),
                    message.prompt_tokens,
                    "{}",
                    message.name
                );
                assert_eq!(
                    Some(usage.completion_tokens),
                    message.completion_tokens,
                    "{}",
                    message.name
                );
                "ok".into()
            }
            Err(err) => verdict(message, &err),
        }
    } else {
        let api = if message.endpoint.contains("native") {
            Api::Native
        } else {
            Api::ChatCompletions
        };
        let err = parse_error(api, message.http_status, body, None);
        verdict(message, &err.into())
    }
}

#[test]
fn every_documented_answer_is_sorted_as_documented() {
    let messages = toml::from_str::<Table>(TABLE)
        .expect("dashscope.toml")
        .message;
    assert!(messages.len() >= 15, "the table lost rows");
    for message in &messages {
        assert!(!message.source.is_empty(), "{}: no source", message.name);
        assert!(
            !message.derived || message.why.is_some(),
            "{}: derived without why",
            message.name
        );
        let concluded = conclude(message);
        assert_eq!(concluded, message.expect, "{}", message.name);
    }
}
