//! The cloud model misbehaving: down, throttled, refusing on moderation, answering garbage. The
//! app always gets the local answer with the reason, and no credit is lost.

use e2e::Options;
use sandbox::VisionFaults;

use super::support::{assert_skipped, bound_app};

#[tokio::test]
async fn a_provider_that_is_down_opens_the_breaker_and_credits_are_released() {
    // The test options open the breaker after 3 failed attempts: one call and its 2 retries.
    let app = bound_app(Options::default(), "o_provider_down").await;
    app.system.sandbox.set_vision_faults(VisionFaults {
        down: true,
        ..VisionFaults::default()
    });
    let body = app.classify_photo("astronaut.png", None).await;
    assert_skipped(&body, "provider_unavailable");
    assert_eq!(body["source"], "local");
    assert_eq!(
        body["remaining_credits"], 10,
        "the reserved credit came back"
    );
    assert_eq!(app.vision_calls(), 3, "the first try and two retries");
    assert_eq!(app.credits().await, (10, 0), "nothing spent, nothing held");

    // Open: the next photo fails fast, without a provider call and without touching credits.
    let ledger = app.ledger_rows().await;
    let fast = app.classify_photo("coffee.png", Some("cloud")).await;
    assert_skipped(&fast, "provider_unavailable");
    assert_eq!(fast["category"], "food", "the local answer stands in");
    assert_eq!(app.vision_calls(), 3, "the breaker refused at once");
    assert_eq!(app.credits().await, (10, 0));
    assert_eq!(app.ledger_rows().await, ledger);
    // Holds were made and released, never captured.
    let pool = app.system.db.primary().await;
    let holds: Vec<(String, String)> = sqlx::query_as(
        "SELECT reference, CAST(status AS CHAR) FROM credit_holds ORDER BY created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(holds.len(), 1, "{holds:?}");
    assert!(holds[0].0.starts_with("classify:"), "{holds:?}");
    assert_eq!(holds[0].1, "released");
    app.system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_until_an_answer() {
    let app = bound_app(Options::default(), "o_retried").await;
    app.system.sandbox.set_vision_faults(VisionFaults {
        rate_limited: 1,
        server_errors: 1,
        ..VisionFaults::default()
    });
    let body = app.classify_photo("astronaut.png", None).await;
    assert_eq!(body["source"], "model", "{body}");
    assert_eq!(body["credits_charged"], 1);
    assert_eq!(app.vision_calls(), 3, "429, then 500, then the answer");
    assert_eq!(app.credits().await, (9, 0));
}

#[tokio::test]
async fn a_moderation_refusal_is_not_retried_and_is_remembered() {
    let app = bound_app(Options::default(), "o_moderated").await;
    app.system.sandbox.set_vision_faults(VisionFaults {
        data_inspection_failed: 1,
        ..VisionFaults::default()
    });
    let body = app.classify_photo("astronaut.png", None).await;
    assert_skipped(&body, "moderation_rejected");
    assert_eq!(body["remaining_credits"], 10);
    assert_eq!(app.vision_calls(), 1, "400 is never retried");

    // The refusal is stored: the image is not sent again, and nothing is charged.
    let again = app.classify_photo("astronaut.png", Some("cloud")).await;
    assert_skipped(&again, "moderation_rejected");
    assert_eq!(again["source"], "cache");
    assert_eq!(app.vision_calls(), 1);
    assert_eq!(app.credits().await, (10, 0));
    app.system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn garbage_or_off_list_answers_fall_back_to_the_local_answer() {
    let app = bound_app(Options::default(), "o_garbage").await;
    app.system.sandbox.set_vision_faults(VisionFaults {
        malformed: 1,
        wrong_category: 1,
        ..VisionFaults::default()
    });
    let prose = app.classify_photo("astronaut.png", None).await;
    assert_skipped(&prose, "invalid_answer");
    let off_list = app.classify_photo("chelsea.png", Some("cloud")).await;
    assert_skipped(&off_list, "invalid_answer");
    assert_eq!(off_list["category"], "animal", "the local answer stands in");
    assert_eq!(app.vision_calls(), 2, "an invalid answer is not retried");
    assert_eq!(app.credits().await, (10, 0));

    // Nothing invalid was stored: once the provider behaves, the cloud answers.
    let fixed = app.classify_photo("astronaut.png", None).await;
    assert_eq!(fixed["source"], "model", "{fixed}");
    assert_eq!(fixed["credits_charged"], 1);
    assert_eq!(app.credits().await, (9, 0));
}
