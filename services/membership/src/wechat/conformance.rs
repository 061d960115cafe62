//! Conformance of the WeChat client with answers WeChat really sends: every raw body in
//! `tests/conformance/wechat_api.toml` (docs, SDK fixtures, captures in public issues) goes through
//! the client's own decoding and classification, and must come out as the table expects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use serde::Deserialize;

use super::token::StableToken;
use super::{OAuthToken, QrCode, WechatError, interpret, oauth_outcome};

const TABLE: &str = include_str!("../../tests/conformance/wechat_api.toml");

#[derive(Deserialize)]
struct Table {
    message: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    name: String,
    source: String,
    endpoint: String,
    http_status: u16,
    body: String,
    expect: String,
    #[serde(default)]
    derived: bool,
    why: Option<String>,
    errcode: Option<i64>,
    token: Option<String>,
    expires_in: Option<u64>,
    ticket: Option<String>,
    expire_seconds: Option<u32>,
    url: Option<String>,
    openid: Option<String>,
}

fn table() -> Vec<Message> {
    toml::from_str::<Table>(TABLE)
        .expect("wechat_api.toml")
        .message
}

/// What the client makes of an error, in the table's words.
fn verdict(err: &WechatError) -> &'static str {
    if err.is_token_rejected() {
        "token_rejected"
    } else if err.is_transient() {
        "retry"
    } else {
        match err {
            WechatError::QuotaExceeded { .. } => "quota",
            WechatError::Malformed(_) => "malformed",
            _ => "fatal",
        }
    }
}

fn errcode_of(err: &WechatError) -> Option<i64> {
    match err {
        WechatError::Api { code, .. } | WechatError::QuotaExceeded { code } => Some(*code),
        _ => None,
    }
}

/// Runs one raw body through the client's decoding for its endpoint; returns the verdict and
/// checks the decoded values against the table.
fn conclude(message: &Message) -> String {
    // reqwest's `Response::json` is `serde_json::from_slice` of the body bytes.
    let value: serde_json::Value =
        serde_json::from_slice(message.body.as_bytes()).expect("every body in the table is JSON");
    let error = |err: WechatError| {
        if let Some(code) = message.errcode {
            assert_eq!(errcode_of(&err), Some(code), "{}: errcode", message.name);
        }
        verdict(&err).to_owned()
    };
    match message.endpoint.as_str() {
        "cgi-bin/token" | "cgi-bin/stable_token" => match interpret::<StableToken>(value) {
            Ok(token) => {
                assert_eq!(
                    Some(&token.access_token),
                    message.token.as_ref(),
                    "{}",
                    message.name
                );
                assert_eq!(
                    Some(token.expires_in),
                    message.expires_in,
                    "{}",
                    message.name
                );
                "token".into()
            }
            Err(err) => error(err),
        },
        "cgi-bin/qrcode/create" => match interpret::<QrCode>(value) {
            Ok(qr) => {
                assert_eq!(
                    Some(&qr.ticket),
                    message.ticket.as_ref(),
                    "{}",
                    message.name
                );
                assert_eq!(
                    Some(qr.expire_seconds),
                    message.expire_seconds,
                    "{}",
                    message.name
                );
                assert_eq!(Some(&qr.url), message.url.as_ref(), "{}", message.name);
                "qrcode".into()
            }
            Err(err) => error(err),
        },
        "sns/oauth2/access_token" => match oauth_outcome(interpret::<OAuthToken>(value)) {
            Ok(Some(openid)) => {
                assert_eq!(Some(&openid), message.openid.as_ref(), "{}", message.name);
                "openid".into()
            }
            Ok(None) => "no_user".into(),
            Err(err) => error(err),
        },
        other => panic!("{}: no decoder for endpoint {other}", message.name),
    }
}

#[test]
fn every_documented_answer_is_understood() {
    let messages = table();
    assert!(messages.len() >= 30, "the table lost rows");
    for message in &messages {
        assert!(!message.source.is_empty(), "{}: no source", message.name);
        assert!(
            !message.derived || message.why.is_some(),
            "{}: derived without why",
            message.name
        );
        // WeChat reports errors in a 200 body; the table has nothing else.
        assert_eq!(message.http_status, 200, "{}", message.name);
        let concluded = conclude(message);
        assert_eq!(concluded, message.expect, "{}", message.name);
    }
}

#[test]
fn a_rejected_token_is_refetched_once_and_nothing_else_is() {
    // The table's token_rejected rows are exactly WxJava's set; quota is not transient.
    for code in [40001, 40014, 42001] {
        let err = WechatError::Api {
            code,
            message: String::new(),
        };
        assert!(err.is_token_rejected() && !err.is_transient());
    }
    assert!(!WechatError::QuotaExceeded { code: 45009 }.is_transient());
    assert!(WechatError::Http(503).is_transient());
}
