//! The result cache through the photo service's gRPC API: a result lives in Redis (the hot copy)
//! and MySQL (the durable copy); either answers an upload, a remembered absence is not trusted
//! by an upload, and results past their retention are deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: failing loudly is the point

mod service;

use std::time::Duration;

use proto::photo::v1::{ClassificationSource, ClassifyMode};
use service::{Photo, sample, sha256_hex};

/// The hot-copy keys of `digest` in this service's Redis prefix, with their values.
async fn hot_copies(
    photo: &Photo,
    digest: &str,
) -> (redis::aio::MultiplexedConnection, Vec<(String, String)>) {
    let client = redis::Client::open(std::env::var("XINTU_TEST_REDIS_URL").unwrap()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:photo:cls:{digest}:*", photo.redis_prefix))
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
async fn the_durable_copy_answers_when_redis_has_forgotten() {
    let photo = Photo::start().await;
    let first = photo
        .classify("chelsea.png", ClassifyMode::Auto)
        .await
        .unwrap();
    assert_eq!(first.source(), ClassificationSource::Local);
    // Drop every hot copy of the result: MySQL still has it.
    let digest = sha256_hex(&sample("chelsea.png"));
    let (mut redis, copies) = hot_copies(&photo, &digest).await;
    assert!(!copies.is_empty(), "the result has a hot copy");
    for (key, _) in copies {
        let _: () = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    // The replica serves cache reads; let it catch up with the write.
    photo.db.wait_for_replica().await;
    let again = photo
        .classify("chelsea.png", ClassifyMode::Auto)
        .await
        .unwrap();
    assert_eq!(again.source(), ClassificationSource::Cache, "{again:?}");
    assert_eq!(again.category, "animal");
    assert_eq!(again.category, first.category);
}

#[tokio::test]
async fn a_lookup_remembers_an_absence_that_an_upload_does_not_trust() {
    let photo = Photo::start().await;
    let digest = sha256_hex(&sample("coffee.png"));
    let items = photo.lookup(std::slice::from_ref(&digest)).await.unwrap();
    assert!(items[0].classification.is_none(), "{items:?}");
    let (_, copies) = hot_copies(&photo, &digest).await;
    assert!(
        !copies.is_empty() && copies.iter().all(|(_, value)| value == "absent"),
        "the miss is remembered: {copies:?}"
    );

    let first = photo
        .classify("coffee.png", ClassifyMode::Auto)
        .await
        .unwrap();
    assert_eq!(first.source(), ClassificationSource::Local, "{first:?}");
    let items = photo.lookup(std::slice::from_ref(&digest)).await.unwrap();
    assert!(
        items[0].classification.is_some(),
        "storing replaced the marker: {items:?}"
    );

    // A marker over a stored result (its hot copy lost): lookups may say "not found", but an
    // upload reads the database and answers the stored result, with no model run or charge.
    let (mut redis, copies) = hot_copies(&photo, &digest).await;
    for (key, _) in &copies {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("absent")
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    photo.db.wait_for_replica().await;
    let items = photo.lookup(std::slice::from_ref(&digest)).await.unwrap();
    assert!(items[0].classification.is_none(), "{items:?}");
    let again = photo
        .classify("coffee.png", ClassifyMode::Auto)
        .await
        .unwrap();
    assert_eq!(again.source(), ClassificationSource::Cache, "{again:?}");
    assert_eq!(again.category, first.category);
    assert_eq!(again.credits_charged, 0);
    assert_eq!(photo.cached_rows().await, 1);
}

#[tokio::test]
async fn stored_results_past_their_retention_are_deleted_and_recent_ones_stay() {
    let photo = Photo::start().await;
    photo
        .classify("coffee.png", ClassifyMode::Auto)
        .await
        .unwrap();
    photo
        .classify("astronaut.png", ClassifyMode::Local)
        .await
        .unwrap();
    assert_eq!(photo.cached_rows().await, 2);

    // The coffee's result was computed 400 days ago; the service keeps results 365 days.
    let coffee = hex::decode(sha256_hex(&sample("coffee.png"))).unwrap();
    let pool = photo.db.primary().await;
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored(coffee).await, 0, "the old result was never deleted");
    let astronaut = hex::decode(sha256_hex(&sample("astronaut.png"))).unwrap();
    assert_eq!(stored(astronaut).await, 1, "the recent result stays");
    pool.close().await;
}
