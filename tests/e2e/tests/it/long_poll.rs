//! Binding status without polling, and bound tokens remembered by the gateways: a long poll
//! answers when the scan lands on any instance; a rotated or revoked token stops on every
//! instance at once (binding changes on Redis pub/sub), and a change whose message is lost stops
//! working within the cache's lifetime.

use std::time::{Duration, Instant};

use serde_json::Value;

use e2e::{Options, System};

async fn poll(
    system: &System,
    gateway: &str,
    client_id: &str,
    token: &str,
    wait: u64,
) -> (u16, Value) {
    let response = system
        .http
        .get(format!("{gateway}/api/v1/auth/wechat/binding"))
        .query(&[("client_id", client_id), ("wait", &wait.to_string())])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn locate(system: &System, gateway: &str, token: &str) -> u16 {
    system
        .http
        .get(format!("{gateway}/api/v1/location"))
        .query(&[("lat", "39.9087"), ("lng", "116.3975")])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Calls until the answer is `expected`, for at most `limit`; returns how long that took.
async fn until_status(
    system: &System,
    gateway: &str,
    token: &str,
    expected: u16,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = locate(system, gateway, token).await;
        if status == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still {status} after {limit:?} on {gateway}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_long_poll_answers_when_the_scan_lands_on_another_instance() {
    let system = System::start(Options {
        gateways: 2,
        ..Options::default()
    })
    .await;
    let [first, second] = [&system.gateway_urls[0], &system.gateway_urls[1]];
    let qr = system.create_qrcode_via(first, "long-poll-pc").await;
    let token = qr.client_token.clone();
    let ticket = qr.ticket.clone();

    // Nothing happens: the wait ends with `pending`.
    let (status, body) = poll(&system, second, "long-poll-pc", &token, 1).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );

    // The user scans while the app waits on the other instance (the push goes to the first).
    let waiting = {
        let (system, second, token) = (&system, second.clone(), token.clone());
        async move {
            let started = Instant::now();
            let answer = poll(system, &second, "long-poll-pc", &token, 20).await;
            (answer, started.elapsed())
        }
    };
    let scan = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        system
            .sandbox
            .scan(
                &format!("{first}/api/v1/auth/wechat/verify"),
                &ticket,
                "o_long_poller",
            )
            .await
            .unwrap();
    };
    let (((status, body), waited), ()) = tokio::join!(waiting, scan);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["openid"], "o_long_poller");
    // Answered by the scan, not by the end of the 20 s wait.
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );

    // Completed: a long poll answers at once, from either instance.
    for gateway in [first, second] {
        let started = Instant::now();
        let (_, body) = poll(&system, gateway, "long-poll-pc", &token, 20).await;
        assert_eq!(body["status"], "completed", "{body}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // A wrong token waits for nothing.
    let (status, _) = poll(&system, second, "long-poll-pc", "not-the-token", 20).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_rotated_or_revoked_token_stops_on_every_instance_at_once() {
    let system = System::start(Options {
        gateways: 2,
        token_cache_ttl_secs: Some(3600),
        ..Options::default()
    })
    .await;
    let [first, second] = [&system.gateway_urls[0], &system.gateway_urls[1]];
    let token = system.bind_client("cached-pc", "o_cached_user").await;
    for gateway in [first, second] {
        assert_eq!(locate(&system, gateway, &token).await, 200);
        assert_eq!(locate(&system, gateway, &token).await, 200);
    }

    // Rotated on the first instance (a new QR code with the current token): the old token is
    // refused by both, though each remembered it for an hour.
    let rotated = system
        .http
        .post(format!("{first}/api/v1/auth/wechat/qrcode"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "client_id": "cached-pc" }))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    assert_eq!(locate(&system, first, &token).await, 401);
    until_status(&system, second, &token, 401, Duration::from_secs(2)).await;

    // Bound again and remembered, then signed out on the second instance.
    let token = system.bind_client("cached-pc-2", "o_cached_user").await;
    for gateway in [first, second] {
        assert_eq!(locate(&system, gateway, &token).await, 200);
    }
    let signed_out = system
        .http
        .post(format!("{second}/api/v1/auth/wechat/unbind"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 200);
    assert_eq!(locate(&system, second, &token).await, 401);
    until_status(&system, first, &token, 401, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_change_whose_message_is_lost_stops_within_the_cache_lifetime() {
    let ttl = 5;
    let system = System::start(Options {
        token_cache_ttl_secs: Some(ttl),
        ..Options::default()
    })
    .await;
    let token = system.bind_client("silent-pc", "o_silent_user").await;
    assert_eq!(locate(&system, system.gateway(), &token).await, 200);
    // Revoked behind membership's back: no change message is published.
    let pool = system.db.primary().await;
    sqlx::query("UPDATE client_bindings SET client_token_hash = UNHEX(SHA2('other', 256)) WHERE client_id = 'silent-pc'")
        .execute(&pool)
        .await
        .unwrap();
    system.db.wait_for_replica().await;
    // Remembered: this gateway has not heard of the change.
    assert_eq!(locate(&system, system.gateway(), &token).await, 200);
    let stopped = until_status(
        &system,
        system.gateway(),
        &token,
        401,
        Duration::from_secs(ttl + 3),
    )
    .await;
    println!("stopped after {stopped:?} (cache lifetime {ttl} s)");
}
