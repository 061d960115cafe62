//! Recording requests through the stats service's gRPC API, on the real database: a batch is
//! stored once however often it is sent, a malformed one is refused whole, and each record is
//! stored as the kind it names.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: failing loudly is the point

use proto::stats::v1 as pb;
use stats_svc::testing::StatsService;

#[tokio::test]
async fn a_batch_sent_again_is_stored_once_even_when_the_copies_race() {
    let stats = StatsService::start_alone().await;
    let client = stats.client();
    let at = chrono::Utc::now().timestamp_millis() - 60_000;
    let batch = pb::RecordRequestsRequest {
        records: (0..3)
            .map(|i| pb::RequestRecord {
                at_unix_ms: at,
                kind: pb::RecordKind::Http.into(),
                endpoint: "/api/v1/location".into(),
                method: "POST".into(),
                status: 200,
                latency_ms: 5,
                client_id: format!("batch-client-{i}"),
                ..Default::default()
            })
            .collect(),
        batch_id: "0123456789abcdef0123456789abcdef".into(),
    };
    // A retry racing its slow original: eight copies at once, then one more later.
    let copies = (0..8).map(|_| {
        let (mut client, batch) = (client.clone(), batch.clone());
        async move {
            client
                .record_requests(batch)
                .await
                .unwrap()
                .into_inner()
                .stored
        }
    });
    let stored = futures::future::join_all(copies).await;
    assert_eq!(stored.iter().filter(|n| **n == 3).count(), 1, "{stored:?}");
    assert_eq!(stored.iter().sum::<u32>(), 3, "{stored:?}");
    let again = client.clone().record_requests(batch.clone()).await.unwrap();
    assert_eq!(again.into_inner().stored, 0);

    let pool = stats.db.primary().await;
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE endpoint = '/api/v1/location'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let rolled_up: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(requests) AS SIGNED) FROM hourly_endpoint_stats \
         WHERE endpoint = '/api/v1/location'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows, rolled_up), (3, 3));

    // An id longer than a sender's makes is refused, and nothing is stored.
    let long = pb::RecordRequestsRequest {
        batch_id: "x".repeat(33),
        ..batch
    };
    let refused = client.clone().record_requests(long).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let rows_after: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE endpoint = '/api/v1/location'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(rows_after, 3);
}

#[tokio::test]
async fn a_record_is_stored_as_the_kind_it_says_and_one_without_a_kind_is_not_stored() {
    let stats = StatsService::start_alone().await;
    let at = chrono::Utc::now().timestamp_millis() - 60_000;
    let record = |kind: pb::RecordKind, endpoint: &str| pb::RequestRecord {
        at_unix_ms: at,
        kind: kind.into(),
        endpoint: endpoint.into(),
        method: "POST".into(),
        status: 200,
        latency_ms: 5,
        client_id: "kind-client".into(),
        ..Default::default()
    };
    let batch = pb::RecordRequestsRequest {
        records: vec![
            record(pb::RecordKind::Http, "/api/v1/location"),
            record(pb::RecordKind::ModelCall, "qwen-vl-max"),
            // The kind comes from the field, never from the look of the endpoint.
            record(pb::RecordKind::Http, "model:lookalike"),
            record(pb::RecordKind::Unspecified, "/api/v1/devices"),
        ],
        ..Default::default()
    };
    let stored = stats.client().record_requests(batch).await.unwrap();
    assert_eq!(stored.into_inner().stored, 3);

    let pool = stats.db.primary().await;
    let logged = text_pairs(
        &pool,
        "SELECT endpoint, method FROM request_logs ORDER BY endpoint",
    )
    .await;
    assert_eq!(
        logged,
        owned(&[
            ("/api/v1/location", "POST"),
            ("model:lookalike", "POST"),
            ("model:qwen-vl-max", "MODEL"),
        ])
    );
    let kinds = text_pairs(
        &pool,
        "SELECT endpoint, CAST(kind AS CHAR) FROM hourly_endpoint_stats ORDER BY endpoint",
    )
    .await;
    assert_eq!(
        kinds,
        owned(&[
            ("/api/v1/location", "http"),
            ("model:lookalike", "http"),
            ("model:qwen-vl-max", "model"),
        ])
    );
}

/// The two text columns of every row `sql` selects.
async fn text_pairs(pool: &sqlx::MySqlPool, sql: &str) -> Vec<(String, String)> {
    sqlx::query_as(sql).fetch_all(pool).await.unwrap()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}
