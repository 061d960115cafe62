//! Start-up with real-world values: all-digit string settings (API keys, secrets, model names),
//! typed other settings, and one clear line for a bad value.

use platform::testing::{
    Replica, TestDatabase, all_digit_string_settings, assert_refused_in_one_line, run_binary,
};
use secrecy::ExposeSecret;

const DEFAULTS: &str = include_str!("../../config.default.toml");
const BIN: &str = env!("CARGO_BIN_EXE_photo-svc");

#[tokio::test]
async fn migrate_runs_with_all_digit_values_for_every_string_setting() {
    let db = TestDatabase::create("startup", Replica::Shared).await;
    let structured = [
        "photo_listen_addr",
        "database_url",
        "database_replica_url",
        "redis_url",
        "geodata_dir",
        "membership_grpc_url",
        "local_model_path",
        "category_rules_path",
        "dashscope_base_url",
        "stats_grpc_url",
        "xintu_env",
        "log_format",
        "otel_exporter_otlp_endpoint",
        "edit_storage_dir",
    ];
    let mut env = all_digit_string_settings(DEFAULTS, &structured);
    assert!(env.iter().any(|(k, _)| k == "DASHSCOPE_API_KEY"));
    assert!(env.iter().any(|(k, _)| k == "EDIT_URL_SECRET"));
    env.push(("DATABASE_URL".into(), db.primary_url.expose_secret().into()));
    let (code, stderr) = run_binary(BIN, &["migrate"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    db.drop_database().await;
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_it() {
    assert_refused_in_one_line(BIN, &["migrate"], "DATABASE_MAX_CONNECTIONS", "ten");
    assert_refused_in_one_line(BIN, &["migrate"], "LOG_FORMAT", "xml");
    // A photo limit, from the section the gateway reads too.
    assert_refused_in_one_line(BIN, &["migrate"], "LOOKUP_MAX", "many");
    // Durations are read into their sections' fields under the settings' own names.
    assert_refused_in_one_line(BIN, &["migrate"], "EDIT_DEADLINE_SECS", "soon");
    assert_refused_in_one_line(BIN, &["migrate"], "DASHSCOPE_ATTEMPT_TIMEOUT_MS", "-1");
}

/// The sandbox's DashScope key is refused in production even at a real https address.
#[test]
fn production_refuses_the_sandbox_credentials() {
    let env: Vec<(String, String)> = [
        ("XINTU_ENV", "production"),
        ("DASHSCOPE_BASE_URL", "https://dashscope.aliyuncs.com"),
        ("DASHSCOPE_API_KEY", "sk-sandbox-dashscope-0001"),
        ("EDIT_URL_SECRET", "k3J9x2Lq8Zm4Wv7Tn1Rb6Yc0Hd5Ga2Ef8Pu3Si"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let (code, stderr) = run_binary(BIN, &["migrate"], &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("DASHSCOPE_API_KEY"), "{stderr}");
    // The shipped service token would let anyone inside the network call photo.
    assert!(stderr.contains("SERVICE_TOKEN"), "{stderr}");
}
