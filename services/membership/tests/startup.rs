//! Start-up with real-world values: every string setting takes an all-digit value (a real
//! WeChat Pay merchant id is all digits), other settings keep their types, and a bad value stops
//! the binary with one line naming it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: failing loudly is the point

use platform::testing::{
    Replica, TestDatabase, all_digit_string_settings, assert_refused_in_one_line, redis_url,
    run_binary,
};
use secrecy::ExposeSecret;

const DEFAULTS: &str = include_str!("../config.default.toml");
const BIN: &str = env!("CARGO_BIN_EXE_membership-svc");

/// Settings that are addresses, URLs or a choice among words: given working values below.
const STRUCTURED: &[&str] = &[
    "membership_listen_addr",
    "database_url",
    "database_replica_url",
    "redis_url",
    "wechat_api_base",
    "wechat_mp_base",
    "wechatpay_api_base",
    "wechatpay_notify_url",
    "wechatpay_sign_type",
    "wechatpay_api_version",
    "xintu_env",
    "log_format",
    "otel_exporter_otlp_endpoint",
];

#[tokio::test]
async fn migrate_runs_with_all_digit_values_for_every_string_setting() {
    let db = TestDatabase::create("startup", Replica::Shared).await;
    let mut env = all_digit_string_settings(DEFAULTS, STRUCTURED);
    let digits = |name: &str| {
        env.iter()
            .any(|(k, v)| k == name && v.bytes().all(|b| b.is_ascii_digit()))
    };
    for name in [
        "WECHATPAY_MCH_ID",
        "WECHATPAY_API_KEY",
        "WECHAT_APPID",
        "WECHAT_SECRET",
        "REDIS_KEY_PREFIX",
    ] {
        assert!(digits(name), "{name} is not in the all-digit set");
    }
    // The other types, each set from the environment.
    let redis = redis_url();
    let others = [
        ("DATABASE_MAX_CONNECTIONS", "3"),
        ("QRCODE_EXPIRE_SECONDS", "900"),
        ("NEW_FOLLOWER_CREDITS", "0"),
        ("MEMBER_PRICE_FEN", "2990"),
        ("RECONCILE_INTERVAL_MS", "1000"),
        ("WECHATPAY_SIGN_TYPE", "MD5"),
        ("LOG_FORMAT", "json"),
        ("DATABASE_URL", db.primary_url.expose_secret()),
        ("REDIS_URL", redis.expose_secret()),
    ];
    env.extend(others.map(|(k, v)| (k.to_owned(), v.to_owned())));
    let (code, stderr) = run_binary(BIN, &["migrate"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    let pool = db.primary().await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() \
         AND table_name = 'credit_ledger'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 1, "the migrations ran");
    db.drop_database().await;
}

#[test]
fn a_bad_value_stops_start_up_with_one_line_naming_it() {
    for (variable, value) in [
        ("MEMBER_DAYS", "thirty"),
        ("WECHATPAY_TIMEOUT_MS", "-5"),
        ("DATABASE_MAX_CONNECTIONS", "1.5"),
        ("WECHATPAY_SIGN_TYPE", "SHA1"),
        ("WECHATPAY_API_VERSION", "v4"),
        ("QRCODE_EXPIRE_SECONDS", "5"),
        ("LOG_FORMAT", "xml"),
    ] {
        assert_refused_in_one_line(BIN, &["migrate"], variable, value);
    }
}

/// With the sandbox's credentials (here with real https addresses) production refuses to start,
/// naming each secret to set.
#[test]
fn production_refuses_the_sandbox_credentials() {
    let env: Vec<(String, String)> = [
        ("XINTU_ENV", "production"),
        ("WECHAT_API_BASE", "https://api.weixin.qq.com"),
        ("WECHATPAY_API_BASE", "https://api.mch.weixin.qq.com"),
        (
            "WECHATPAY_NOTIFY_URL",
            "https://www.xintuxiangce.top/api/v1/payment/notify",
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let (code, stderr) = run_binary(BIN, &["migrate"], &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("WECHAT_SECRET"), "{stderr}");
    assert!(stderr.contains("WECHATPAY_API_KEY"), "{stderr}");
    // The shipped service token would let anyone inside the network call membership.
    assert!(stderr.contains("SERVICE_TOKEN"), "{stderr}");
}
