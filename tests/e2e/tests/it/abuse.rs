//! Abuse is cheap to refuse: unknown tokens cost no primary read, place names need a bound client
//! and an allowance, and allowances hold across gateway instances (Redis), and per instance while
//! Redis is down.

use serde_json::{Value, json};

use e2e::redis_server::RedisServer;
use e2e::{Options, System};

async fn locate_via(system: &System, gateway: &str, token: &str) -> (u16, Value) {
    let response = system
        .http
        .get(format!("{gateway}/api/v1/location"))
        .query(&[("lat", "30.2590"), ("lng", "120.1305")])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn locate_batch(system: &System, token: &str, points: usize) -> (u16, Value) {
    let points: Vec<Value> = (0..points)
        .map(|_| json!({ "lat": 30.259, "lng": 120.1305 }))
        .collect();
    let response = system
        .http
        .post(format!("{}/api/v1/location/batch", system.gateway()))
        .bearer_auth(token)
        .json(&json!({ "points": points }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn unknown_tokens_are_refused_without_asking_the_primary() {
    let system = System::start(Options {
        cuttable_primary: true,
        ..Options::default()
    })
    .await;
    let token = system.bind_client("abuse-pc", "o_abuse_owner").await;
    let (status, body) = locate_via(&system, system.gateway(), &token).await;
    assert_eq!(status, 200, "{body}");

    // With the primary out of reach, a guessed token is still a clear 401 (not a 503 from a
    // primary read), and the real client goes on from the replica.
    system.primary_proxy.as_ref().unwrap().cut();
    for guess in [
        "guessed-token-0001",
        "guessed-token-0002",
        "guessed-token-0001",
    ] {
        let (status, body) = locate_via(&system, system.gateway(), guess).await;
        assert_eq!(status, 401, "{guess}: {body}");
        assert_eq!(body["error"]["code"], "invalid_client_token", "{body}");
    }
    let (status, body) = locate_via(&system, system.gateway(), &token).await;
    assert_eq!(status, 200, "{body}");
    system.primary_proxy.as_ref().unwrap().restore();
}

#[tokio::test]
async fn place_names_need_a_bound_client_and_an_allowance() {
    let system = System::start(Options {
        locations_per_client_per_minute: 5,
        ..Options::default()
    })
    .await;
    let qr = system.create_qrcode("pending-pc").await;
    let pending = qr.client_token.as_str();
    let (status, body) = locate_via(&system, system.gateway(), pending).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "client_not_bound");
    let (status, _) = locate_batch(&system, pending, 1).await;
    assert_eq!(status, 403);

    let token = system.bind_client("bound-pc", "o_place_seeker").await;
    let (status, body) = locate_batch(&system, &token, 3).await;
    assert_eq!(status, 200, "{body}");
    // A batch counts each point: 3 + 2 of 5, then refused, and a batch over what is left too.
    for _ in 0..2 {
        let (status, body) = locate_via(&system, system.gateway(), &token).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = locate_via(&system, system.gateway(), &token).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let (status, _) = locate_batch(&system, &token, 2).await;
    assert_eq!(status, 429);
    // Another client has its own allowance.
    let other = system.bind_client("other-pc", "o_other_seeker").await;
    let (status, body) = locate_via(&system, system.gateway(), &other).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn allowances_hold_across_gateway_instances_and_per_instance_without_redis() {
    let mut redis = RedisServer::start().await;
    let system = System::start(Options {
        gateways: 2,
        locations_per_client_per_minute: 6,
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let gateways = system.gateway_urls.clone();

    // Shared: six in all, whichever instance answers.
    let token = system.bind_client("shared-pc", "o_shared_limit").await;
    let mut allowed = 0;
    for i in 0..12 {
        let (status, body) = locate_via(&system, &gateways[i % 2], &token).await;
        match status {
            200 => allowed += 1,
            429 => assert_eq!(body["error"]["code"], "rate_limited"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(allowed, 6, "the instances share one allowance");

    // Redis gone: each instance still holds the client to the allowance on its own.
    let second = system.bind_client("fallback-pc", "o_fallback_limit").await;
    redis.kill();
    for gateway in &gateways {
        let mut allowed = 0;
        for _ in 0..8 {
            let (status, body) = locate_via(&system, gateway, &second).await;
            match status {
                200 => allowed += 1,
                429 => {}
                other => panic!("{other}: {body}"),
            }
        }
        assert_eq!(allowed, 6, "{gateway} applies the allowance without Redis");
    }
}
