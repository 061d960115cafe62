//! The result cache: a second upload of the same bytes is answered from it, and apps can ask for
//! results by digest before uploading.

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
async fn the_durable_copy_answers_when_redis_has_forgotten() {
    let app = bound_app(Options::default(), "o_durable").await;
    app.classify_photo("chelsea.png", None).await;
    // Drop every hot copy of this test's prefix: MySQL still has the result.
    let client = redis::Client::open(std::env::var("XINTU_TEST_REDIS_URL").unwrap()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:photo:cls:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    let digest = sha256_hex(&photo("chelsea.png"));
    let ours: Vec<&String> = keys.iter().filter(|k| k.contains(&digest)).collect();
    assert!(!ours.is_empty(), "the result has a hot copy: {keys:?}");
    for key in ours {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    // The replica serves cache reads; let it catch up with the write.
    app.system.photo_db.wait_for_replica().await;
    let again = app.classify_photo("chelsea.png", None).await;
    assert_eq!(again["source"], "cache", "{again}");
    assert_eq!(again["category"], "animal");
}

/// The hot-copy keys of `digest` under `prefix` in the shared test Redis, with their values.
async fn hot_copies(
    prefix: &str,
    digest: &str,
) -> (redis::aio::MultiplexedConnection, Vec<(String, String)>) {
    let client = redis::Client::open(std::env::var("XINTU_TEST_REDIS_URL").unwrap()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:photo:cls:{digest}:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut copies = Vec::new();
    for key in keys {
        let value: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        copies.push((key, value));
    }
    (redis, copies)
}

#[tokio::test]
async fn a_lookup_remembers_an_absence_that_an_upload_does_not_trust() {
    let app = bound_app(Options::default(), "o_absent").await;
    let digest = sha256_hex(&photo("coffee.png"));
    let (status, body) = app.lookup(std::slice::from_ref(&digest)).await;
    assert_eq!(
        (status, &body["results"][0]["found"]),
        (200, &Value::Bool(false)),
        "{body}"
    );
    let (_, copies) = hot_copies(&app.system.redis_prefix, &digest).await;
    assert!(
        !copies.is_empty() && copies.iter().all(|(_, value)| value == "absent"),
        "the miss is remembered: {copies:?}"
    );

    let first = app.classify_photo("coffee.png", None).await;
    assert_eq!(first["source"], "local", "{first}");
    let (_, body) = app.lookup(std::slice::from_ref(&digest)).await;
    assert_eq!(
        body["results"][0]["found"], true,
        "storing replaced the marker: {body}"
    );

    // A marker over a stored result (its hot copy lost): lookups may say "not found", but an
    // upload reads the database and answers the stored result, with no model run or charge.
    let (mut redis, copies) = hot_copies(&app.system.redis_prefix, &digest).await;
    for (key, _) in &copies {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("absent")
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    app.system.photo_db.wait_for_replica().await;
    let (_, body) = app.lookup(std::slice::from_ref(&digest)).await;
    assert_eq!(body["results"][0]["found"], false, "{body}");
    let again = app.classify_photo("coffee.png", None).await;
    assert_eq!(again["source"], "cache", "{again}");
    assert_eq!(again["category"], first["category"]);
    assert_eq!(app.cached_rows().await, 1);
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

#[tokio::test]
async fn stored_results_past_their_retention_are_deleted_and_recent_ones_stay() {
    let app = bound_app(Options::default(), "o_cache_retention").await;
    app.classify_photo("coffee.png", None).await;
    app.classify_photo("astronaut.png", Some("local")).await;
    assert_eq!(app.cached_rows().await, 2);

    // The coffee's result was computed 400 days ago; the service keeps results 365 days.
    let coffee = hex::decode(sha256_hex(&photo("coffee.png"))).unwrap();
    let pool = app.system.photo_db.primary().await;
    sqlx::query(
        "UPDATE classification_cache SET created_at = NOW(3) - INTERVAL 400 DAY WHERE sha256 = ?",
    )
    .bind(&coffee)
    .execute(&pool)
    .await
    .unwrap();
    let stored = |digest: Vec<u8>| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM classification_cache WHERE sha256 = ?",
            )
            .bind(digest)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    for _ in 0..100 {
        if stored(coffee.clone()).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(stored(coffee).await, 0, "the old result was never deleted");
    let astronaut = hex::decode(sha256_hex(&photo("astronaut.png"))).unwrap();
    assert_eq!(stored(astronaut).await, 1, "the recent result stays");
    pool.close().await;
}
