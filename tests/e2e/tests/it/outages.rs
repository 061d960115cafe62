//! Outages of what the services lean on (docs/architecture.md, "The database decides, Redis
//! accelerates"): Redis stopped mid-run. Redis only accelerates and coordinates; with it gone every
//! answer still comes, and quickly.

use std::time::{Duration, Instant};

use e2e::Options;
use e2e::photo::PhotoOptions;
use e2e::redis_server::RedisServer;

use crate::classify::support::{App, bound_app};

/// No request may wait on a dead Redis for long (a hung connection would take seconds).
const QUICK: Duration = Duration::from_secs(3);
/// A request that runs the local model (and may ask the cloud) on a busy 2-core machine.
const WITH_MODEL: Duration = Duration::from_secs(10);

async fn quickly<T>(what: &str, call: impl Future<Output = T>) -> T {
    within(QUICK, what, call).await
}

async fn within<T>(limit: Duration, what: &str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = call.await;
    let took = started.elapsed();
    assert!(took < limit, "{what} took {took:?}");
    answer
}

/// Keys of this test's Redis that hold classification results.
async fn cached_keys(redis: &RedisServer) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:photo:cls:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_classification_limits_and_payments_keep_working() {
    let mut redis = RedisServer::start().await;
    let app: App = bound_app(
        Options {
            redis_url: Some(redis.url()),
            photo: PhotoOptions {
                lookups_per_client_per_minute: 20,
                ..PhotoOptions::default()
            },
            ..Options::default()
        },
        "o_no_redis",
    )
    .await;
    let system = &app.system;
    let first = app.classify_photo("coffee.png", None).await;
    assert_eq!(first["source"], "local", "{first}");
    assert_eq!(cached_keys(&redis).await, 1, "the hot copy is in Redis");
    let browser = system.sign_in(&app.openid).await;
    let created = browser.create_order(e2e::api::credits_order(10)).await;
    let order_no = created.order.order_no.clone();
    let admin = system.admin_sign_in().await;

    redis.kill();

    // Classification: the durable copy answers what Redis held; the local model the rest.
    let again = quickly("a cached photo", app.classify_photo("coffee.png", None)).await;
    assert_eq!(again["source"], "cache", "{again}");
    assert_eq!(again["category"], first["category"]);
    let fresh = within(
        WITH_MODEL,
        "a new photo",
        app.classify_photo("chelsea.png", None),
    )
    .await;
    assert_ne!(fresh["source"], "cache", "{fresh}");

    // Rate limits are kept in each gateway's memory: they hold without Redis.
    let coffee = e2e_digest("coffee.png");
    let mut allowed = 0;
    loop {
        let (status, body) = quickly("a lookup", app.lookup(std::slice::from_ref(&coffee))).await;
        match status {
            200 => allowed += 1,
            429 => break,
            other => panic!("lookup answered {other}: {body}"),
        }
        assert!(allowed <= 20, "the lookup limit was not applied");
    }
    assert_eq!(allowed, 20);

    // Binding: a new QR code (the access token comes straight from WeChat) and a status poll.
    let qr = quickly("a QR code", system.create_qrcode("pc-after-redis")).await;
    let token = qr.client_token.as_str();
    quickly("a binding poll", system.binding("pc-after-redis", token))
        .await
        .expect("a binding");

    // Payments: five racing notifies and two late ones apply the purchase once.
    let before = system.snapshot(&app.openid).await;
    system
        .sandbox
        .set_notify_mode(sandbox::NotifyMode::Duplicates(5));
    system.sandbox.pay(&order_no).await.unwrap();
    browser.wait_for_order(&order_no, "paid").await;
    for _ in 0..2 {
        assert!(
            system.sandbox.send_notify(&order_no).await,
            "late notify acknowledged"
        );
    }
    let after = system.snapshot(&app.openid).await;
    assert_eq!(after.ledger_rows, before.ledger_rows + 1);
    assert_eq!(
        after.remaining_credits,
        before.remaining_credits.map(|c| c + 10)
    );
    system.assert_ledger_invariant().await;
    let profile = quickly("the member page", browser.profile()).await;
    assert_eq!(
        Some(profile.remaining_credits),
        after.remaining_credits,
        "{profile:?}"
    );

    // The admin sign-in fails closed: without its failure counts there is no lockout.
    let (status, body) = quickly(
        "an admin sign-in",
        browser.post(
            "/api/v1/admin/login",
            serde_json::json!({ "username": "admin", "password": e2e::ADMIN_PASSWORD }),
        ),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    // So does a session made before: whether it was signed out cannot be known.
    let (status, body) = quickly("an admin read", admin.get("/api/v1/admin/me")).await;
    assert_eq!(status, 503, "{body}");

    // Redis back (empty): once the pause after the failure is over, hot copies are stored again.
    let redis = RedisServer::start_on(redis.port).await;
    tokio::time::sleep(platform::redis::SKIP_AFTER_FAILURE + Duration::from_millis(500)).await;
    let mut stored = 0;
    for _ in 0..20 {
        app.classify_photo("rocket.jpg", None).await;
        stored = cached_keys(&redis).await;
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(stored > 0, "nothing reached Redis after it came back");
}

fn e2e_digest(name: &str) -> String {
    crate::classify::support::sha256_hex(&crate::classify::support::photo(name))
}

/// The primary's pool gives up on a connection after this long (`PoolSettings::acquire_timeout`,
/// 3 s), plus room for the answer.
const WRITE_FAILS_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_primary_cut_writes_fail_fast_with_503_and_reads_go_on() {
    let system = e2e::System::start(Options {
        cuttable_primary: true,
        ..Options::default()
    })
    .await;
    // Made while the primary is up: a bound app client and a signed-in member.
    let openid = "o_no_primary";
    let token = crate::classify::support::bind(&system, "pc-no-primary", openid).await;
    let browser = system.sign_in(openid).await;
    system.db.wait_for_replica().await;
    let credits = browser.profile().await.remaining_credits;
    assert_eq!(credits, 10, "the follow bonus");

    system.primary_proxy.as_ref().unwrap().cut();

    // Writes: a clear 503, not a hang.
    let started = Instant::now();
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .json(&serde_json::json!({ "client_id": "pc-while-down" }))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    assert!(took < WRITE_FAILS_WITHIN, "a QR code took {took:?} to fail");
    let started = Instant::now();
    let refused = browser.place_order(e2e::api::credits_order(5)).await;
    assert_eq!(e2e::api::refusal(refused).status, 503);
    assert!(started.elapsed() < WRITE_FAILS_WITHIN);

    // Reads: the binding poll, the app's token and the member page come from the replica.
    let view = quickly("a binding poll", system.binding("pc-no-primary", &token))
        .await
        .expect("a binding");
    assert_eq!(view.status, "completed");
    let profile = quickly("the member page", browser.profile()).await;
    assert_eq!(profile.remaining_credits, credits);
    let lookup = quickly(
        "a photo lookup",
        system
            .http
            .post(format!("{}/api/v1/photos/lookup", system.gateway()))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "sha256": [crate::classify::support::sha256_hex(b"x")] }))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(lookup.status(), 200);

    // Back: writes work again.
    system.primary_proxy.as_ref().unwrap().restore();
    let mut answered = 0;
    for _ in 0..50 {
        let response = system
            .http
            .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
            .json(&serde_json::json!({ "client_id": "pc-after-primary" }))
            .send()
            .await
            .unwrap();
        answered = response.status().as_u16();
        if answered == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, 200);
}
