//! Start-up with real-world values: every string setting takes an all-digit value (app ids,
//! tokens, secrets, names), and a bad value stops the gateway with one line naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test binary: failing loudly is the point

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use platform::testing::{all_digit_string_settings, assert_refused_in_one_line, run_binary};

const DEFAULTS: &str = include_str!("../config.default.toml");
const BIN: &str = env!("CARGO_BIN_EXE_gateway");

/// Starts `gateway serve` with `env` on a free port and waits for /healthz; panics if the
/// gateway exits or never answers.
async fn serves(env: Vec<(String, String)>) {
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
        // Origins (scheme://host), or nothing.
        "admin_allowed_origins",
        "xintu_env",
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
    serves(env).await;
}

/// Production values that pass its rules: real-looking secrets, https everywhere.
fn production_env() -> Vec<(String, String)> {
    [
        ("XINTU_ENV", "production"),
        ("SESSION_SECRET", "k3J9x2Lq8Zm4Wv7Tn1Rb6Yc0Hd5Ga2Ef8Pu3Si"),
        ("WECHAT_TOKEN", "Tq7mW2zR9"),
        ("SERVICE_TOKEN", "Vn4Qe8Rt2Yu6Io0Pa3Sd7Fg1Hj5Kl9Zx2Cv6Bn"),
        ("SESSION_COOKIE_SECURE", "true"),
        ("PUBLIC_BASE_URL", "https://www.xintuxiangce.top"),
        ("WECHAT_OPEN_BASE", "https://open.weixin.qq.com"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

#[tokio::test]
async fn production_serves_with_production_values() {
    serves(production_env()).await;
}

/// With the shipped defaults anybody could sign a session or admin cookie with the published
/// secret: production refuses to start, naming every setting to fix.
#[test]
fn production_refuses_the_shipped_defaults() {
    let (code, stderr) = run_binary(
        BIN,
        &["serve"],
        &[("XINTU_ENV".to_owned(), "production".to_owned())],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for variable in [
        "SESSION_SECRET",
        "WECHAT_TOKEN",
        "PUBLIC_BASE_URL",
        "SESSION_COOKIE_SECURE",
        "SERVICE_TOKEN",
    ] {
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
    // Each rule alone.
    for (variable, value) in [
        ("SESSION_SECRET", "CHANGE-ME"),
        ("SESSION_SECRET", "k3J9x2Lq8Zm4"),
        ("PUBLIC_BASE_URL", "http://www.xintuxiangce.top"),
        ("SESSION_COOKIE_SECURE", "false"),
        ("WECHAT_AES_KEY", "sandbox-aes-key"),
        ("ADMIN_PASSWORD_HASH", "admin-demo"),
        ("ADMIN_ALLOWED_ORIGINS", "http://admin.xintuxiangce.top"),
    ] {
        let mut env = production_env();
        env.retain(|(k, _)| k != variable);
        env.push((variable.to_owned(), value.to_owned()));
        let (code, stderr) = run_binary(BIN, &["serve"], &env);
        assert_eq!(code, Some(2), "{variable}={value}: {stderr}");
        assert!(stderr.contains(variable), "{variable}={value}: {stderr}");
    }
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_it() {
    assert_refused_in_one_line(BIN, &["serve"], "QRCODE_PER_CLIENT_PER_MINUTE", "many");
    assert_refused_in_one_line(BIN, &["serve"], "TRUST_PROXY_HEADERS", "perhaps");
    assert_refused_in_one_line(
        BIN,
        &["serve"],
        "ADMIN_ALLOWED_ORIGINS",
        "https://admin.xintuxiangce.top,admin.xintuxaingce.top",
    );
    // The photo limits are a section the photo service reads too; a bad one is named alike.
    assert_refused_in_one_line(BIN, &["serve"], "CLASSIFY_BATCH_MAX", "twenty");
    assert_refused_in_one_line(BIN, &["serve"], "LOCATION_BATCH_MAX", "0");
}

/// The gateway's own names of the photo limits are gone: a deployment still setting one would
/// run on the shared default without a word, so start-up refuses it and names the new setting.
#[test]
fn a_photo_limit_under_its_old_gateway_name_is_refused() {
    for (old, new) in [
        ("PHOTO_MAX_IMAGE_BYTES", "CLASSIFY_MAX_IMAGE_BYTES"),
        ("PHOTO_BATCH_MAX_IMAGES", "CLASSIFY_BATCH_MAX"),
        ("PHOTO_BATCH_MAX_BYTES", "CLASSIFY_BATCH_MAX_BYTES"),
        ("PHOTO_LOOKUP_MAX", "LOOKUP_MAX"),
    ] {
        // An address nothing can bind: were the old name read, start-up would fail later, there.
        let env = [(old, "1024"), ("GATEWAY_LISTEN_ADDR", "256.0.0.1:1")]
            .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let (code, stderr) = run_binary(BIN, &["serve"], &env);
        assert_eq!(code, Some(2), "{old}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(old) && stderr.contains(new), "{stderr}");
    }
}
