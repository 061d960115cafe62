//! Every model call of the photo service is recorded to the stats service, one row per call, under
//! the gateway request that made it; the overview counts requests and model calls apart; recording
//! survives a stats outage.

use std::time::Duration;

use e2e::{Options, System};

use super::support::{App, bound_app, photo};

const CLOUD: &str = "model:qwen-vl-max";
const LOCAL: &str = "model:local-efficientnet-lite0";

#[derive(Debug, sqlx::FromRow)]
struct Logged {
    endpoint: String,
    method: String,
    status: u16,
    client_id: String,
    openid: String,
    source: String,
    model_tokens: u32,
    error_code: String,
}

/// The rows stored under a gateway request id, gateway row first, then by endpoint.
async fn logged(system: &System, request_id: &str) -> Vec<Logged> {
    let pool = system.stats.db.primary().await;
    let rows = sqlx::query_as(
        "SELECT endpoint, method, status, client_id, openid, source, model_tokens, error_code \
         FROM request_logs WHERE request_id = ? ORDER BY endpoint LIKE 'model:%', endpoint, id",
    )
    .bind(request_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// Waits until `expected` rows are stored under `request_id` (20 s at most), then returns them.
async fn wait_logged(system: &System, request_id: &str, expected: usize) -> Vec<Logged> {
    let mut rows = Vec::new();
    for _ in 0..400 {
        rows = logged(system, request_id).await;
        if rows.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), expected, "rows of {request_id}: {rows:#?}");
    rows
}

fn of<'a>(rows: &'a [Logged], endpoint: &str) -> Vec<&'a Logged> {
    rows.iter().filter(|row| row.endpoint == endpoint).collect()
}

/// Checks a model-call row: whom it was for and how it ended.
fn assert_call(row: &Logged, app: &App, source: &str, status: u16, error_code: &str) {
    assert_eq!(row.method, "MODEL", "{row:?}");
    assert_eq!(row.source, source, "{row:?}");
    assert_eq!(row.status, status, "{row:?}");
    assert_eq!(row.error_code, error_code, "{row:?}");
    assert_eq!(row.client_id, format!("pc-{}", app.openid), "{row:?}");
    assert_eq!(row.openid, app.openid, "{row:?}");
}

async fn http_rows(system: &System) -> u64 {
    let pool = system.stats.db.primary().await;
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE endpoint NOT LIKE 'model:%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    u64::try_from(count).unwrap()
}

#[tokio::test]
async fn each_model_call_of_a_batch_is_recorded_under_the_gateway_request() {
    let app = bound_app(Options::default(), "o_rec_batch").await;
    let images = ["coffee.png", "chelsea.png", "rocket.jpg"];
    // The local answers first, one request each: a local inference apiece, and the batch then
    // spends its deadline on the cloud calls alone (a busy test machine is slow at inference).
    for (index, name) in images.iter().enumerate() {
        let id = format!("rec-local-{index}");
        app.classify_photo_with_id(name, Some("local"), &id).await;
        let rows = wait_logged(&app.system, &id, 2).await;
        assert_eq!(rows[1].endpoint, LOCAL, "{rows:#?}");
        assert_call(&rows[1], &app, "local", 200, "");
        assert_eq!(rows[1].model_tokens, 0);
    }
    let (status, body) = app
        .batch_with_id(
            images.iter().map(|name| (*name, photo(name))).collect(),
            Some("cloud"),
            Some("rec-batch"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["credits_charged"], 3, "{body}");
    assert_eq!(app.vision_calls(), 3);

    // The request, and one row per cloud call.
    let rows = wait_logged(&app.system, "rec-batch", 4).await;
    let request = &rows[0];
    assert_eq!(request.endpoint, "/api/v1/photos/classify/batch");
    assert_eq!((request.method.as_str(), request.status), ("POST", 200));
    let cloud = of(&rows, CLOUD);
    assert_eq!(cloud.len(), 3, "{rows:#?}");
    for row in &cloud {
        assert_call(row, &app, "model", 200, "");
        assert!(row.model_tokens > 0, "{row:?}");
    }
    let tokens: u32 = cloud.iter().map(|row| row.model_tokens).sum();
    assert_eq!(
        request.model_tokens, tokens,
        "the request carries the tokens of the calls it made"
    );

    // The overview counts the request once, and the calls apart.
    let before = http_rows(&app.system).await;
    app.system.stats.db.wait_for_replica().await;
    let admin = app.system.admin_sign_in().await;
    let overview = e2e::api::answer(admin.api().admin_overview().send())
        .await
        .expect("the overview");
    let requests = u64::try_from(overview.requests).unwrap();
    // At most the admin's login besides (its row may or may not have arrived): the six
    // model-call rows are not requests.
    assert!(
        (before..=before + 1).contains(&requests),
        "{requests} requests, {before} HTTP rows"
    );
    assert_eq!(overview.model_tokens, i64::from(tokens));
    let models = &overview.model_calls;
    let model = |name: &str| {
        models
            .iter()
            .find(|m| m.model == name)
            .unwrap_or_else(|| panic!("no {name} in {models:?}"))
    };
    let qwen = model("qwen-vl-max");
    assert_eq!((qwen.calls, qwen.errors), (3, 0));
    assert_eq!(qwen.tokens, i64::from(tokens));
    assert_eq!(qwen.source, "model");
    let lite = model("local-efficientnet-lite0");
    assert_eq!(lite.calls, 3);
    assert_eq!(lite.source, "local");
    assert!(
        overview
            .endpoints
            .iter()
            .all(|e| !e.endpoint.starts_with("model:")),
        "{:?}",
        overview.endpoints
    );
}

#[tokio::test]
async fn retries_are_one_call_and_failures_are_recorded_with_their_outcome() {
    let app = bound_app(Options::default(), "o_rec_outcomes").await;

    // A 500 and then an answer: two attempts, one call.
    app.system.sandbox.set_vision_faults(sandbox::VisionFaults {
        server_errors: 1,
        ..Default::default()
    });
    let body = app
        .classify_photo_with_id("astronaut.png", None, "rec-retried")
        .await;
    assert_eq!(body["source"], "model", "{body}");
    assert_eq!(app.vision_calls(), 2);
    let rows = wait_logged(&app.system, "rec-retried", 3).await;
    let cloud = of(&rows, CLOUD);
    assert_eq!(cloud.len(), 1, "{rows:#?}");
    assert_call(cloud[0], &app, "model", 200, "");
    assert!(cloud[0].model_tokens > 0);

    // Content moderation refuses the image: the call failed, with the provider's 400.
    app.system.sandbox.set_vision_faults(sandbox::VisionFaults {
        data_inspection_failed: 1,
        ..Default::default()
    });
    let body = app
        .classify_photo_with_id("rocket.jpg", Some("cloud"), "rec-refused")
        .await;
    assert_eq!(body["cloud_skipped"]["reason"], "moderation_rejected");
    let rows = wait_logged(&app.system, "rec-refused", 3).await;
    let cloud = of(&rows, CLOUD);
    assert_eq!(cloud.len(), 1, "{rows:#?}");
    assert_call(cloud[0], &app, "model", 400, "moderation_rejected");
    assert_eq!(cloud[0].model_tokens, 0);

    // A local inference on its own.
    let body = app
        .classify_photo_with_id("coffee.png", Some("local"), "rec-local")
        .await;
    assert_eq!(body["source"], "local", "{body}");
    let rows = wait_logged(&app.system, "rec-local", 2).await;
    assert_eq!(rows[0].endpoint, "/api/v1/photos/classify");
    assert_eq!(rows[1].endpoint, LOCAL);
    assert_call(&rows[1], &app, "local", 200, "");

    // The same photo again: a cache hit runs no model, so nothing but the request is recorded
    // (given the time for a model-call row to have arrived too: two flush intervals).
    app.classify_photo_with_id("coffee.png", Some("local"), "rec-cached")
        .await;
    wait_logged(&app.system, "rec-cached", 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rows = logged(&app.system, "rec-cached").await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].source, "cache");
}

#[tokio::test]
async fn classification_answers_while_stats_is_down_and_the_calls_are_recorded_later() {
    let app = bound_app(Options::default(), "o_rec_outage").await;
    app.system.stats.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = app
        .classify_photo_with_id("astronaut.png", None, "rec-outage")
        .await;
    assert_eq!(body["source"], "model", "{body}");
    assert_eq!(body["credits_charged"], 1);
    app.system.stats.restart().await;
    let rows = wait_logged(&app.system, "rec-outage", 3).await;
    assert_eq!(of(&rows, CLOUD).len(), 1, "{rows:#?}");
    assert_eq!(of(&rows, LOCAL).len(), 1, "{rows:#?}");
}
