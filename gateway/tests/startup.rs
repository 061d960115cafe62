//! Start-up with real-world values: every string setting takes an all-digit value (app ids,
//! tokens, secrets, names), and a bad value stops the gateway with one line naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test binary: failing loudly is the point

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use platform::testing::{all_digit_string_settings, assert_refused_in_one_line};

const DEFAULTS: &str = include_str!("../config.default.toml");
const BIN: &str = env!("CARGO_BIN_EXE_gateway");

#[tokio::test]
async fn serves_with_all_digit_values_for_every_string_setting() {
    let structured = [
        "gateway_listen_addr",
        "membership_grpc_url",
        "photo_grpc_url",
        "stats_grpc_url",
        "redis_url",
        "admin_password_hash",
        "public_base_url",
        "member_page_path",
        "wechat_open_base",
        "edit_result_base_url",
        "log_format",
        "otel_exporter_otlp_endpoint",
        // Exactly 43 characters; digits are valid ones, set below.
        "wechat_aes_key",
    ];
    let mut env = all_digit_string_settings(DEFAULTS, &structured);
    env.push((
        "WECHAT_AES_KEY".into(),
        "1900009191".repeat(5)[..43].to_owned(),
    ));
    for name in [
        "WECHAT_APPID",
        "WECHAT_TOKEN",
        "SESSION_SECRET",
        "ADMIN_USERNAME",
    ] {
        assert!(env.iter().any(|(k, _)| k == name), "{name}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .envs(env)
        .env("GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut answered = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "the gateway exited with {status}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let url = format!("http://127.0.0.1:{port}/healthz");
        if let Ok(response) = client.get(&url).send().await {
            answered = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answered.is_some(), "the gateway never answered /healthz");
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_it() {
    assert_refused_in_one_line(BIN, &["serve"], "QRCODE_PER_CLIENT_PER_MINUTE", "many");
    assert_refused_in_one_line(BIN, &["serve"], "TRUST_PROXY_HEADERS", "perhaps");
}
