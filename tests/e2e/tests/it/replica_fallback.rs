//! Graceful operation: with its replica unreachable, the stats service answers reads from the
//! primary instead of failing.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use platform::db::{PoolSettings, Pools};
use platform::testing::{Replica, TestDatabase};
use proto::stats::v1::stats_service_client::StatsServiceClient;
use proto::stats::v1::{OverviewRequest, RecordRequestsRequest, RequestRecord, TimeRange};
use stats_svc::config::StatsConfig;

#[tokio::test]
async fn stats_reads_fall_back_to_the_primary_when_the_replica_is_unreachable() {
    let db = TestDatabase::create("stats", Replica::Shared).await;
    let primary = db.primary().await;
    stats_svc::MIGRATOR.run(&primary).await.unwrap();
    primary.close().await;

    // A replica address where nothing listens: the port of a listener we just closed.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let mut replica_url = reqwest::Url::parse(db.replica_url.expose_secret()).unwrap();
    replica_url.set_host(Some("127.0.0.1")).unwrap();
    replica_url.set_port(Some(dead.port())).unwrap();
    let settings = PoolSettings {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(1),
    };
    let pools = Pools::connect_lazy(
        &db.primary_url,
        Some(&SecretString::from(replica_url.to_string())),
        &settings,
    )
    .unwrap();

    let mut cfg = StatsConfig::defaults().unwrap();
    cfg.database_url = db.primary_url.clone();
    let token = cfg.service_token.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let serving = stop.clone();
    tokio::spawn(async move { stats_svc::run(&cfg, pools, listener, serving).await });
    let channel = platform::grpc::channel(&url, Duration::from_secs(10), &token).unwrap();
    let mut client = StatsServiceClient::new(channel);

    let now_ms = chrono::Utc::now().timestamp_millis();
    let records = (0..3)
        .map(|i| RequestRecord {
            at_unix_ms: now_ms - 1000 * i,
            endpoint: "/api/v1/location".to_owned(),
            method: "GET".to_owned(),
            status: 200,
            latency_ms: 5,
            client_id: "replica-fallback".to_owned(),
            ..Default::default()
        })
        .collect();
    // Poll until the service is up (bounded), then record on the primary.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stored = loop {
        match client
            .record_requests(RecordRequestsRequest {
                records: Vec::clone(&records),
                ..Default::default()
            })
            .await
        {
            Ok(answer) => break answer.into_inner().stored,
            Err(status) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "stats never answered: {status}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
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
    stop.cancel();
}
