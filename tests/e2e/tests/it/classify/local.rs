//! The local model on real photos with known content, through the gateway.

use e2e::Options;

use super::support::{bound_app, photo, sha256_hex};

#[tokio::test]
async fn real_photos_are_classified_by_the_local_model() {
    let app = bound_app(Options::default(), "o_local_photos").await;
    let cases = [
        ("coffee.png", "food", "美食", "espresso"),
        ("chelsea.png", "animal", "动物", ""),
        ("motorcycle_left.png", "vehicle", "交通", ""),
    ];
    for (name, category, label, top_label) in cases {
        let body = app.classify_photo(name, Some("local")).await;
        assert_eq!(body["category"], category, "{name}: {body}");
        assert_eq!(body["label"], label, "{name}: {body}");
        assert_eq!(body["source"], "local", "{name}: {body}");
        assert_eq!(body["model"], "local-efficientnet-lite0");
        assert_eq!(body["sure"], true, "{name}: {body}");
        assert_eq!(body["credits_charged"], 0);
        assert!(body["cloud_skipped"].is_null(), "{body}");
        assert_eq!(body["sha256"], sha256_hex(&photo(name)));
        let top = body["top_labels"].as_array().unwrap();
        assert!(!top.is_empty(), "{body}");
        if !top_label.is_empty() {
            assert_eq!(top[0]["label"], top_label, "{body}");
        }
        let confidence = body["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence), "{body}");
    }
    // Sure local answers in auto mode do not go to the cloud either.
    let coffee = app.classify_photo("coffee.png", None).await;
    assert_eq!(coffee["category"], "food");
    assert_eq!(app.vision_calls(), 0);
    assert_eq!(app.credits().await, (10, 0));
}

#[tokio::test]
async fn an_unsure_photo_in_local_mode_stays_local_and_free() {
    let app = bound_app(Options::default(), "o_local_only").await;
    let body = app.classify_photo("astronaut.png", Some("local")).await;
    assert_eq!(body["sure"], false, "{body}");
    assert_eq!(body["source"], "local");
    assert!(
        body["cloud_skipped"].is_null(),
        "local mode never wants the cloud: {body}"
    );
    assert_eq!(app.vision_calls(), 0);
    assert_eq!(app.credits().await, (10, 0));
}
