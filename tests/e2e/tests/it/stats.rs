//! Request recording, statistics and the admin API.

use std::time::Duration;

use futures::StreamExt;

use e2e::{ADMIN_PASSWORD, Options, System, api};
use platform::testing::Replica;

async fn logged(system: &System, endpoint: &str) -> i64 {
    let pool = system.stats.db.primary().await;
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE endpoint = ?")
        .bind(endpoint)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

/// Waits until `expected` rows of `endpoint` are stored (or fails after 20 s).
async fn wait_logged(system: &System, endpoint: &str, expected: i64) {
    let mut last = 0;
    for _ in 0..400 {
        last = logged(system, endpoint).await;
        if last >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, expected, "rows of {endpoint}");
}

/// Sends `count` binding polls with an unknown token, 50 at a time. Each poll reads the replica
/// and then the primary through membership's pools (10 connections, 3 s to get one); a thousand
/// at once on a loaded 2-core machine queued past that and one was answered 503, as an overloaded
/// service should answer, where these tests are about recording every request.
async fn poll_binding(system: &System, count: usize) {
    const IN_FLIGHT: usize = 50;
    let url = format!(
        "{}/api/v1/auth/wechat/binding?client_id=stats-probe",
        system.gateway()
    );
    let statuses: Vec<u16> = futures::stream::iter(0..count)
        .map(|_| async {
            let response = system.http.get(&url).bearer_auth("ct_nobody").send().await;
            response.unwrap().status().as_u16()
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let unexpected: Vec<u16> = statuses
        .into_iter()
        .filter(|status| *status != 401)
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than 401: {unexpected:?}"
    );
}

#[tokio::test]
async fn a_thousand_requests_make_a_thousand_rows() {
    let system = System::start(Options::default()).await;
    poll_binding(&system, 1000).await;
    wait_logged(&system, "/api/v1/auth/wechat/binding", 1000).await;
    let pool = system.stats.db.primary().await;
    let (status, code, with_id): (u16, String, i64) = sqlx::query_as(
        "SELECT MIN(status), MIN(error_code), CAST(SUM(request_id <> '') AS SIGNED) FROM request_logs \
         WHERE endpoint = '/api/v1/auth/wechat/binding'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (status, code.as_str(), with_id),
        (401, "invalid_client_token", 1000)
    );
}

/// Health probes are the orchestrator's, not users' (compose, Kubernetes and nginx probe every
/// few seconds): the overview's requests and errors count neither `/healthz` nor `/readyz`.
#[tokio::test]
async fn health_probes_are_not_recorded_as_requests() {
    let system = System::start(Options::default()).await;
    for path in ["/healthz", "/readyz"] {
        for _ in 0..20 {
            let url = format!("{}{path}", system.gateway());
            assert_eq!(system.http.get(url).send().await.unwrap().status(), 200);
        }
    }
    // Records travel in order: once these are stored, the probes' would be too.
    poll_binding(&system, 5).await;
    wait_logged(&system, "/api/v1/auth/wechat/binding", 5).await;
    assert_eq!(logged(&system, "/healthz").await, 0);
    assert_eq!(logged(&system, "/readyz").await, 0);
}

#[tokio::test]
async fn requests_succeed_while_stats_is_down_and_recording_resumes() {
    let system = System::start(Options::default()).await;
    system.stats.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    poll_binding(&system, 200).await;
    // Users were answered; the records wait in the bounded buffer.
    system.stats.restart().await;
    wait_logged(&system, "/api/v1/auth/wechat/binding", 200).await;
}

/// Records rows with known values through the stats service's own API (then waits for the
/// replica, unless it is paused): six gateway requests and the three model calls they made.
async fn seed(system: &System, wait_for_replica: bool) {
    use proto::stats::v1 as pb;
    let mut client =
        pb::stats_service_client::StatsServiceClient::new(system.grpc_channel(&system.stats.url()));
    let at = chrono::Utc::now().timestamp_millis() - 3_600_000;
    use pb::RecordKind::{Http, ModelCall};
    const CLASSIFY: &str = "/api/v1/photos/classify";
    const LOCATION: &str = "/api/v1/location";
    const LOCAL: &str = "local-efficientnet-lite0";
    const CLOUD: &str = "qwen-vl-max";
    let rows = [
        // kind, endpoint (a route, or a model's name), status, latency, client, source, tokens
        (Http, CLASSIFY, 200, 10, "c1", "cache", 0),
        (Http, CLASSIFY, 200, 20, "c1", "local", 0),
        (Http, CLASSIFY, 200, 30, "c2", "model", 1200),
        (Http, CLASSIFY, 502, 40, "c2", "", 0),
        (Http, LOCATION, 200, 5, "c3", "", 0),
        (Http, LOCATION, 400, 7, "", "", 0),
        // The photo service's model calls behind those classifications: the local inference,
        // the cloud call that answered (its tokens are on the request above too), and one
        // whose answer was refused but billed.
        (ModelCall, LOCAL, 200, 25, "c1", "local", 0),
        (ModelCall, CLOUD, 200, 800, "c2", "model", 1200),
        (ModelCall, CLOUD, 502, 1000, "c2", "model", 300),
    ];
    let records = rows
        .into_iter()
        .map(
            |(kind, endpoint, status, latency, client, source, tokens)| pb::RequestRecord {
                at_unix_ms: at,
                kind: kind.into(),
                endpoint: endpoint.into(),
                method: "POST".into(),
                status,
                latency_ms: latency,
                client_id: client.into(),
                source: source.into(),
                model_tokens: tokens,
                ..Default::default()
            },
        )
        .collect();
    let stored = client
        .record_requests(pb::RecordRequestsRequest {
            records,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stored;
    assert_eq!(stored, 9);
    if wait_for_replica {
        system.stats.db.wait_for_replica().await;
    }
}

#[tokio::test]
async fn the_overview_gives_exact_numbers_for_seeded_logs() {
    let system = System::start(Options {
        request_logging: false,
        ..Options::default()
    })
    .await;
    seed(&system, true).await;
    let admin = system.admin_sign_in().await;
    let overview = api::answer(admin.api().admin_overview().send())
        .await
        .expect("the overview");
    assert_eq!(overview.requests, 6);
    assert_eq!(overview.active_clients, 3);
    assert_eq!(overview.server_errors, 1);
    assert_eq!(overview.client_errors, 1);
    let classification = &overview.classification;
    assert_eq!(
        (
            classification.cache,
            classification.local,
            classification.model
        ),
        (1, 1, 1)
    );
    assert!((classification.cache_hit_rate - 1.0 / 3.0).abs() < 1e-9);
    // Tokens are the model calls' (the refused answer was billed too), not added again from the
    // request that carried the answer's tokens.
    assert_eq!(overview.model_tokens, 1500);
    // 1500 tokens at 150 fen per million: 0.225 fen, rounded to 0.
    assert_eq!(overview.model_cost_fen, 0);
    let endpoints = &overview.endpoints;
    assert_eq!(endpoints.len(), 2, "HTTP endpoints only: {endpoints:?}");
    let models = &overview.model_calls;
    assert_eq!(models.len(), 2, "{models:?}");
    let (cloud, local) = (&models[0], &models[1]);
    assert_eq!(cloud.model, "qwen-vl-max", "most calls first: {models:?}");
    assert_eq!(cloud.source, "model");
    assert_eq!((cloud.calls, cloud.errors, cloud.tokens), (2, 1, 1500));
    // PERCENTILE_CONT over 800, 1000: p50 = 900, p95 = 990.
    assert_eq!(cloud.p50_ms, 900.0);
    assert!((cloud.p95_ms - 990.0).abs() < 1e-9);
    assert_eq!(local.model, "local-efficientnet-lite0");
    assert_eq!(local.source, "local");
    assert_eq!((local.calls, local.errors, local.tokens), (1, 0, 0));
    assert_eq!(local.p50_ms, 25.0);
    let classify = endpoints
        .iter()
        .find(|e| e.endpoint == "/api/v1/photos/classify")
        .unwrap();
    assert_eq!((classify.requests, classify.errors), (4, 1));
    // PERCENTILE_CONT over 10, 20, 30, 40: p50 = 25, p95 = 30 + 0.85 × 10 = 38.5.
    assert_eq!(classify.p50_ms, 25.0);
    assert!((classify.p95_ms - 38.5).abs() < 1e-9);

    let series = api::answer(admin.api().admin_timeseries().bucket("hour").send())
        .await
        .expect("the hourly series");
    assert_eq!(series.bucket, "hour");
    let total: i64 = series.points.iter().map(|p| p.requests).sum();
    assert_eq!(total, 6);
    let calls: i64 = series.points.iter().map(|p| p.model_calls).sum();
    assert_eq!(calls, 2, "calls of the cloud model");
    let daily = api::answer(admin.api().admin_timeseries().bucket("day").send())
        .await
        .expect("the daily series");
    assert!(!daily.points.is_empty());
}

#[tokio::test]
async fn statistics_come_from_the_replica_so_they_lag_when_the_replica_lags() {
    let system = System::start(Options {
        request_logging: false,
        stats_replica: Replica::Lagging,
        ..Options::default()
    })
    .await;
    let admin = system.admin_sign_in().await;
    system.stats.db.pause_replica().await;
    seed(&system, false).await;
    let overview = api::answer(admin.api().admin_overview().send()).await;
    system.stats.db.resume_replica().await;
    assert_eq!(
        overview.expect("the overview").requests,
        0,
        "the paused replica has not seen the rows yet"
    );
    system.stats.db.wait_for_replica().await;
    let overview = api::answer(admin.api().admin_overview().send()).await;
    assert_eq!(overview.expect("the overview").requests, 6);
}

#[tokio::test]
async fn admin_sign_in_lockout_and_sessions() {
    let system = System::start(Options::default()).await;
    let anonymous = e2e::MemberBrowser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap(),
        gateway: system.gateway().to_owned(),
    };
    for path in [
        "/api/v1/admin/me",
        "/api/v1/admin/overview",
        "/api/v1/admin/timeseries",
        "/api/v1/admin/users",
        "/api/v1/admin/orders",
        "/api/v1/admin/bindings",
    ] {
        let (status, body) = anonymous.get(path).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"]["code"], "admin_sign_in_required");
    }
    let (status, _) = anonymous
        .post(
            "/api/v1/admin/credits/adjust",
            serde_json::json!({ "openid": "o", "delta": 5, "reason": "x" }),
        )
        .await;
    assert_eq!(status, 401);
    // A member session is not an admin session.
    let member = system.sign_in("o_not_admin").await;
    assert_eq!(member.get("/api/v1/admin/me").await.0, 401);

    let (status, body) = anonymous
        .post(
            "/api/v1/admin/login",
            serde_json::json!({ "username": "admin", "password": "wrong" }),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let admin = system.admin_sign_in().await;
    let (status, me) = admin.get("/api/v1/admin/me").await;
    assert_eq!((status, me["username"].as_str()), (200, Some("admin")));

    // Five failures lock the account, even against the right password.
    for _ in 0..5 {
        let (status, _) = anonymous
            .post(
                "/api/v1/admin/login",
                serde_json::json!({ "username": "admin", "password": "guess" }),
            )
            .await;
        assert!(status == 401 || status == 429, "{status}");
    }
    let (status, body) = anonymous
        .post(
            "/api/v1/admin/login",
            serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "admin_locked");
    // The session made before the lockout still works.
    assert_eq!(admin.get("/api/v1/admin/me").await.0, 200);
}

#[tokio::test]
async fn credit_adjustment_writes_one_audited_ledger_row() {
    let system = System::start(Options::default()).await;
    let qr = system.create_qrcode("adjusted-client").await;
    system
        .sandbox
        .scan(&system.push_url(), qr.ticket.as_str(), "o_adjusted")
        .await
        .unwrap();
    let admin = system.admin_sign_in().await;
    let (status, answer) = admin
        .post(
            "/api/v1/admin/credits/adjust",
            serde_json::json!({ "openid": "o_adjusted", "delta": 15, "reason": "compensation for ticket 42" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["remaining_credits"], 25);
    let (status, answer) = admin
        .post(
            "/api/v1/admin/credits/adjust",
            serde_json::json!({ "openid": "o_adjusted", "delta": -30, "reason": "too much" }),
        )
        .await;
    assert_eq!(status, 409, "never below zero: {answer}");
    for bad in [
        serde_json::json!({ "openid": "o_adjusted", "delta": 5, "reason": "  " }),
        serde_json::json!({ "openid": "o_adjusted", "delta": 0, "reason": "zero" }),
    ] {
        assert_eq!(admin.post("/api/v1/admin/credits/adjust", bad).await.0, 400);
    }
    assert_eq!(
        admin
            .post(
                "/api/v1/admin/credits/adjust",
                serde_json::json!({ "openid": "o_nobody", "delta": 1, "reason": "r" })
            )
            .await
            .0,
        404
    );
    let pool = system.db.primary().await;
    let (rows, delta, reference): (i64, i64, String) = sqlx::query_as(
        "SELECT COUNT(*), CAST(SUM(delta) AS SIGNED), MIN(reference) FROM credit_ledger WHERE reason = 'admin_adjust'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows, delta), (1, 15));
    let (admin_name, reason): (String, String) =
        sqlx::query_as("SELECT admin, reason FROM admin_audit WHERE CONCAT('audit:', id) = ?")
            .bind(&reference)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (admin_name.as_str(), reason.as_str()),
        ("admin", "compensation for ticket 42")
    );
    system.assert_ledger_invariant().await;

    // The lists show it.
    let users = api::answer(admin.api().admin_users().openid("o_adj").send())
        .await
        .expect("the users");
    assert_eq!(users.total, 1);
    assert_eq!(users.users[0].remaining_credits, 25);
    let bindings = api::answer(admin.api().admin_bindings().send())
        .await
        .expect("the bindings");
    assert_eq!(bindings.bindings[0].status, "completed");
    let orders = api::answer(admin.api().admin_orders().status("paid").send())
        .await
        .expect("the paid orders");
    assert_eq!(orders.total, 0);
    let bogus = api::refusal(api::answer(admin.api().admin_orders().status("bogus").send()).await);
    assert_eq!(bogus.status, 400, "{bogus:?}");
}
