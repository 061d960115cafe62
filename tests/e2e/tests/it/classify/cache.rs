//! The result cache through the gateway: a second upload of the same bytes is answered from it,
//! and apps can ask for results by digest before uploading. How the cache keeps and forgets its
//! copies is photo's own service-level test (`services/photo/tests/classify_cache.rs`).

use serde_json::Value;

use e2e::Options;

use super::support::{bound_app, photo, sha256_hex};

#[tokio::test]
async fn the_second_upload_is_a_cache_hit_and_lookup_finds_it() {
    let app = bound_app(Options::default(), "o_cache").await;
    let first = app.classify_photo("coffee.png", None).await;
    assert_eq!(first["source"], "local", "{first}");
    assert_eq!(app.cached_rows().await, 1);

    let second = app.classify_photo("coffee.png", None).await;
    assert_eq!(second["source"], "cache", "no model ran: {second}");
    for field in [
        "category",
        "label",
        "top_labels",
        "confidence",
        "model",
        "sha256",
    ] {
        assert_eq!(first[field], second[field], "{field}");
    }
    assert_eq!(second["credits_charged"], 0);
    assert_eq!(app.cached_rows().await, 1, "nothing new was stored");

    let coffee = sha256_hex(&photo("coffee.png"));
    let unknown = sha256_hex(b"a photo nobody uploaded");
    let (status, body) = app.lookup(&[coffee.to_uppercase(), unknown.clone()]).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0]["sha256"], coffee,
        "digests come back in lower case"
    );
    assert_eq!(results[0]["found"], true);
    assert_eq!(results[0]["classification"]["category"], "food");
    assert_eq!(results[0]["classification"]["source"], "cache");
    assert_eq!(results[1]["sha256"], unknown);
    assert_eq!(results[1]["found"], false);
    assert_eq!(results[1]["classification"], Value::Null);
    assert_eq!(app.vision_calls(), 0);
    assert_eq!(app.credits().await, (10, 0));
}

#[tokio::test]
async fn lookup_refuses_malformed_requests() {
    let app = bound_app(Options::default(), "o_lookup_bad").await;
    let (status, body) = app.lookup(&[]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_batch_size");
    let (status, body) = app
        .lookup(&[sha256_hex(b"x"), "not-a-digest".to_owned()])
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_digest");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("index 1"),
        "{body}"
    );
    let too_many: Vec<String> = (0..501)
        .map(|i| sha256_hex(&[i as u8, (i >> 8) as u8]))
        .collect();
    let (status, body) = app.lookup(&too_many).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_batch_size");
}
