//! Outages of what the services lean on (issue 8, reliability §0): Redis stopped mid-run. Redis
//! only accelerates and coordinates; with it gone every answer still comes, and quickly.

use std::time::{Duration, Instant};

use e2e::Options;
use e2e::photo::PhotoOptions;
use e2e::redis_server::RedisServer;

use crate::classify::support::{App, bound_app};

/// No request may wait on a dead Redis for long (a hung connection would take seconds).
const QUICK: Duration = Duration::from_secs(3);

async fn quickly<T>(what: &str, call: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = call.await;
    let took = started.elapsed();
    assert!(took < QUICK, "{what} took {took:?} without Redis");
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
    let created = browser
        .create_order(serde_json::json!({ "order_type": "credits", "credits_amount": 10 }))
        .await;
    let order_no = created["order"]["order_no"].as_str().unwrap().to_owned();

    redis.kill();

    // Classification: the durable copy answers what Redis held; the local model the rest.
    let again = quickly("a cached photo", app.classify_photo("coffee.png", None)).await;
    assert_eq!(again["source"], "cache", "{again}");
    assert_eq!(again["category"], first["category"]);
    let fresh = quickly("a new photo", app.classify_photo("chelsea.png", None)).await;
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
    let token = qr["client_token"].as_str().unwrap();
    let (status, body) = quickly("a binding poll", system.binding("pc-after-redis", token)).await;
    assert_eq!(status, 200, "{body}");

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
        profile["remaining_credits"].as_i64(),
        after.remaining_credits,
        "{profile}"
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
