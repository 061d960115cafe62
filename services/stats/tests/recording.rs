//! Recording requests through the stats service's gRPC API, on the real database: a batch is
//! stored once however often it is sent, and a malformed one is refused whole.

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
