//! Graceful operation: with its replica unreachable, the stats service answers statistics from
//! the primary instead of failing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: failing loudly is the point

use platform::testing::Replica;
use proto::stats::v1::{
    OverviewRequest, RecordKind, RecordRequestsRequest, RequestRecord, TimeRange,
};
use stats_svc::testing::StatsService;

#[tokio::test]
async fn stats_reads_fall_back_to_the_primary_when_the_replica_is_unreachable() {
    let stats = StatsService::start_alone_on(Replica::Unreachable).await;
    let mut client = stats.client();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let records = (0..3)
        .map(|i| RequestRecord {
            at_unix_ms: now_ms - 1000 * i,
            kind: RecordKind::Http.into(),
            endpoint: "/api/v1/location".to_owned(),
            method: "GET".to_owned(),
            status: 200,
            latency_ms: 5,
            client_id: "replica-fallback".to_owned(),
            ..Default::default()
        })
        .collect();
    let stored = client
        .record_requests(RecordRequestsRequest {
            records,
            ..Default::default()
        })
        .await
        .expect("recording goes to the primary")
        .into_inner()
        .stored;
    assert_eq!(stored, 3);

    // Twice: the first read finds the replica down, the second skips it.
    for _ in 0..2 {
        let overview = client
            .overview(OverviewRequest {
                range: Some(TimeRange {
                    from_unix_ms: now_ms - 3_600_000,
                    to_unix_ms: now_ms + 60_000,
                }),
            })
            .await
            .expect("overview with the replica down")
            .into_inner();
        assert_eq!(overview.requests, 3);
    }
}
