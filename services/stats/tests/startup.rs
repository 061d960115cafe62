//! Start-up with real-world values: all-digit string settings, typed other settings, and one
//! clear line for a bad value.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: failing loudly is the point

use platform::testing::{
    Replica, TestDatabase, all_digit_string_settings, assert_refused_in_one_line, run_binary,
};
use secrecy::ExposeSecret;

const DEFAULTS: &str = include_str!("../config.default.toml");
const BIN: &str = env!("CARGO_BIN_EXE_stats-svc");

#[tokio::test]
async fn migrate_runs_with_all_digit_values_for_every_string_setting() {
    let db = TestDatabase::create("startup", Replica::Shared).await;
    let structured = [
        "stats_listen_addr",
        "database_url",
        "database_replica_url",
        "log_format",
        "otel_exporter_otlp_endpoint",
    ];
    let mut env = all_digit_string_settings(DEFAULTS, &structured);
    env.push(("DATABASE_URL".into(), db.primary_url.expose_secret().into()));
    env.push(("LOG_FORMAT".into(), "json".into()));
    let (code, stderr) = run_binary(BIN, &["migrate"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    db.drop_database().await;
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_it() {
    assert_refused_in_one_line(BIN, &["migrate"], "RETENTION_DAYS", "ninety");
    assert_refused_in_one_line(BIN, &["migrate"], "DATABASE_MAX_CONNECTIONS", "-1");
    assert_refused_in_one_line(BIN, &["migrate"], "SERVICE_TOKEN", "with a space");
    assert_refused_in_one_line(BIN, &["migrate"], "SERVICE_TOKEN", "current,,previous");
}

/// The shipped service token would let anyone inside the network read and write statistics:
/// production refuses it, and a short one, in one line.
#[test]
fn production_refuses_the_shipped_service_token() {
    for token in [None, Some("Vn4Qe8Rt2Yu6")] {
        let mut env = vec![("XINTU_ENV".to_owned(), "production".to_owned())];
        env.extend(token.map(|token| ("SERVICE_TOKEN".to_owned(), token.to_owned())));
        let (code, stderr) = run_binary(BIN, &["migrate"], &env);
        assert_eq!(code, Some(2), "{token:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("SERVICE_TOKEN"), "{stderr}");
    }
}
