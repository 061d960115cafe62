//! Graceful operation: with their replica unreachable, the services answer reads from the
//! primary instead of failing.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use e2e::{Options, System};
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
    cfg.database.database_url = db.primary_url.clone();
    let token = cfg.service.service_token.clone();
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

/// Membership and photo with their replica down from the start: an app binds and classifies
/// (its token and the classification cache are replica reads), a member signs in, orders, pays
/// and reads the order, and the admin site's overview and lists answer, all from the primary.
#[tokio::test]
async fn user_and_admin_reads_fall_back_to_the_primary_when_the_replica_is_unreachable() {
    let system = System::start(Options {
        replica: Replica::Unreachable,
        ..Options::default()
    })
    .await;
    let token = system
        .bind_client("pc-replica-down", "o_replica_down")
        .await;
    let photo = crate::classify::support::photo("coffee.png");
    // Twice: the second answer comes from the classification cache.
    for _ in 0..2 {
        let response = system
            .http
            .post(format!("{}/api/v1/photos/classify", system.gateway()))
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part(
                "image",
                reqwest::multipart::Part::bytes(photo.clone()).file_name("photo"),
            ))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "classify with the replica down: {body}");
    }
    let response = system
        .http
        .get(format!("{}/api/v1/auth/wechat/binding", system.gateway()))
        .query(&[("client_id", "pc-replica-down")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "binding status");

    let member = system.sign_in("o_replica_down").await;
    let before = member.profile().await["remaining_credits"]
        .as_i64()
        .expect("credits");
    let created = member
        .create_order(serde_json::json!({ "order_type": "credits", "credits_amount": 5 }))
        .await;
    let order_no = created["order"]["order_no"].as_str().expect("order_no");
    system.sandbox.pay(order_no).await.unwrap();
    member.wait_for_order(order_no, "paid").await;
    let after = member.profile().await["remaining_credits"]
        .as_i64()
        .expect("credits");
    assert_eq!(after, before + 5);

    let admin = system.admin_sign_in().await;
    for path in [
        "/api/v1/admin/overview",
        "/api/v1/admin/users",
        "/api/v1/admin/orders?status=paid",
        "/api/v1/admin/bindings",
    ] {
        let (status, body) = admin.get(path).await;
        assert_eq!(status, 200, "{path} with the replica down: {body}");
    }
    let (_, orders) = admin.get("/api/v1/admin/orders?status=paid").await;
    assert_eq!(orders["total"], 1, "{orders}");
}
