//! Erasing a caller (`ForgetCaller`) through the stats service's gRPC API, on the real database:
//! their rows lose their ids and nothing else, the per-hour client counts stay, their records
//! that arrive later are blanked for a day, a second call changes nothing, bad requests change
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: failing loudly is the point

use std::collections::BTreeSet;
use std::time::Duration;

use platform::grpc::ServiceChannel;
use proto::stats::v1 as pb;
use proto::stats::v1::stats_service_client::StatsServiceClient;
use sha2::{Digest as _, Sha256};
use stats_svc::testing::StatsService;

/// (openid, client id, endpoint, status, latency) of a stored row.
type Row = (String, String, String, u16, u32);

/// The start of the hour `hours_ago` hours before now, in unix milliseconds.
fn hour_start(hours_ago: i64) -> i64 {
    let now = chrono::Utc::now().timestamp();
    (now - now.rem_euclid(3600) - hours_ago * 3600) * 1000
}

fn record(
    at_unix_ms: i64,
    (openid, client_id, endpoint, status, latency_ms): &Row,
) -> pb::RequestRecord {
    pb::RequestRecord {
        at_unix_ms,
        kind: pb::RecordKind::Http.into(),
        endpoint: endpoint.clone(),
        method: "POST".into(),
        status: u32::from(*status),
        latency_ms: *latency_ms,
        client_id: client_id.clone(),
        openid: openid.clone(),
        ..Default::default()
    }
}

fn row(openid: &str, client_id: &str, endpoint: &str, status: u16, latency_ms: u32) -> Row {
    (
        openid.into(),
        client_id.into(),
        endpoint.into(),
        status,
        latency_ms,
    )
}

async fn store(client: &mut StatsServiceClient<ServiceChannel>, records: Vec<pb::RequestRecord>) {
    let sent = records.len();
    let stored = client
        .record_requests(pb::RecordRequestsRequest {
            records,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stored;
    assert_eq!(stored as usize, sent);
}

async fn forget(
    client: &mut StatsServiceClient<ServiceChannel>,
    openid: &str,
    client_ids: &[&str],
) -> Result<u64, tonic::Status> {
    client
        .forget_caller(pb::ForgetCallerRequest {
            openid: openid.into(),
            client_ids: client_ids.iter().map(|id| (*id).to_owned()).collect(),
        })
        .await
        .map(|answer| answer.into_inner().request_logs)
}

/// Every stored row, in the order stored.
async fn rows(stats: &StatsService) -> Vec<Row> {
    let pool = stats.db.primary().await;
    let rows = sqlx::query_as(
        "SELECT openid, client_id, endpoint, status, latency_ms FROM request_logs ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// (hour in unix seconds, client id) of `hourly_clients`.
async fn hourly_clients(stats: &StatsService) -> BTreeSet<(i64, String)> {
    let pool = stats.db.primary().await;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT CAST(UNIX_TIMESTAMP(hour) AS SIGNED), client_id FROM hourly_clients",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().collect()
}

/// The tombstones, as lower-case hex.
async fn tombstones(stats: &StatsService) -> BTreeSet<String> {
    let pool = stats.db.primary().await;
    let digests: Vec<Vec<u8>> = sqlx::query_scalar("SELECT digest FROM erased_callers")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    digests.into_iter().map(hex::encode).collect()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text))
}

/// Distinct clients over [from, from + 2 h) as the dashboard reads them (from the replica): the
/// whole range, then each hour.
async fn active_clients(
    stats: &StatsService,
    client: &mut StatsServiceClient<ServiceChannel>,
    from_unix_ms: i64,
) -> (u64, Vec<u64>) {
    stats.db.wait_for_replica().await;
    let range = pb::TimeRange {
        from_unix_ms,
        to_unix_ms: from_unix_ms + 2 * 3_600_000,
    };
    let overview = client
        .overview(pb::OverviewRequest { range: Some(range) })
        .await
        .unwrap()
        .into_inner();
    let series = client
        .time_series(pb::TimeSeriesRequest {
            range: Some(range),
            bucket: pb::Bucket::Hour.into(),
        })
        .await
        .unwrap()
        .into_inner();
    (
        overview.active_clients,
        series.points.iter().map(|p| p.active_clients).collect(),
    )
}

#[tokio::test]
async fn forgetting_blanks_the_callers_rows_and_keeps_the_client_counts() {
    let stats = StatsService::start_alone().await;
    let mut client = stats.client();
    let (first_hour, second_hour) = (hour_start(3), hour_start(2));
    let first = [
        row("o_gone", "c_gone_phone", "/api/v1/photos/classify", 200, 10),
        row("", "c_gone_tablet", "/api/v1/location", 200, 11),
        row("o_stays", "c_stays", "/api/v1/photos/classify", 200, 12),
        row("", "", "/api/v1/location", 400, 13),
    ];
    let second = [
        row("", "c_gone_tablet", "/api/v1/location", 502, 14),
        row("o_gone", "c_gone_phone", "/api/v1/location", 200, 15),
        // Another caller whose openid differs only in case keeps it.
        row("O_GONE", "c_case", "/api/v1/location", 200, 16),
        row("", "c_stays", "/api/v1/location", 200, 17),
    ];
    let mut records: Vec<_> = first
        .iter()
        .map(|r| record(first_hour + 600_000, r))
        .collect();
    records.extend(second.iter().map(|r| record(second_hour + 600_000, r)));
    store(&mut client, records).await;
    let clients_before = hourly_clients(&stats).await;
    let counts_before = active_clients(&stats, &mut client, first_hour).await;
    assert_eq!(counts_before, (4, vec![3, 4]), "seeded distinct clients");

    let forgotten = forget(&mut client, "o_gone", &["c_gone_tablet"])
        .await
        .unwrap();
    assert_eq!(forgotten, 4, "two rows of the openid, two of the client");

    // The forgotten caller's rows keep everything but their ids; the others' are untouched.
    let expected: Vec<Row> = first
        .iter()
        .chain(&second)
        .map(|(openid, client_id, endpoint, status, latency)| {
            if openid == "o_gone" || client_id == "c_gone_tablet" {
                row("", "", endpoint, *status, *latency)
            } else {
                row(openid, client_id, endpoint, *status, *latency)
            }
        })
        .collect();
    let after = rows(&stats).await;
    assert_eq!(after, expected);

    // The client is counted under one pseudonym in both hours; nothing else changed.
    let clients_after = hourly_clients(&stats).await;
    let kept: BTreeSet<_> = clients_before
        .iter()
        .filter(|(_, id)| id != "c_gone_tablet")
        .cloned()
        .collect();
    assert!(kept.is_subset(&clients_after), "{clients_after:?}");
    let renamed: Vec<_> = clients_after.difference(&kept).collect();
    assert_eq!(renamed.len(), 2, "one row per hour: {clients_after:?}");
    let pseudonym = &renamed[0].1;
    assert_eq!(&renamed[1].1, pseudonym, "the same pseudonym across hours");
    let digits = pseudonym.strip_prefix("erased:").unwrap();
    assert!(
        digits.len() == 24
            && digits
                .bytes()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "{pseudonym}"
    );
    assert_eq!(
        active_clients(&stats, &mut client, first_hour).await,
        counts_before,
        "distinct clients per hour and over the range"
    );
    assert_eq!(
        tombstones(&stats).await,
        BTreeSet::from([
            sha256_hex("openid:o_gone"),
            sha256_hex("client:c_gone_tablet")
        ])
    );

    // Asked again: nothing more to blank, nothing changes.
    assert_eq!(
        forget(&mut client, "o_gone", &["c_gone_tablet"])
            .await
            .unwrap(),
        0
    );
    assert_eq!(rows(&stats).await, after);
    assert_eq!(hourly_clients(&stats).await, clients_after);
}

#[tokio::test]
async fn records_of_a_forgotten_caller_arrive_blanked_for_a_day() {
    let stats = StatsService::start_alone().await;
    let mut client = stats.client();
    // Forgotten before any of their records arrived: nothing to blank yet.
    assert_eq!(forget(&mut client, "o_late", &["c_late"]).await.unwrap(), 0);

    let at = hour_start(1) + 60_000;
    let batch = [
        row("o_late", "c_late_phone", "/api/v1/photos/classify", 200, 20),
        row("", "c_late", "/api/v1/location", 200, 21),
        row("o_other", "c_other", "/api/v1/location", 200, 22),
    ];
    store(&mut client, batch.iter().map(|r| record(at, r)).collect()).await;
    assert_eq!(
        rows(&stats).await,
        [
            row("", "", "/api/v1/photos/classify", 200, 20),
            row("", "", "/api/v1/location", 200, 21),
            row("o_other", "c_other", "/api/v1/location", 200, 22),
        ]
    );
    // The rollups saw the blanked records: the requests count, the forgotten clients do not.
    let clients: Vec<String> = hourly_clients(&stats)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(clients, ["c_other"]);
    let pool = stats.db.primary().await;
    let requests: i64 =
        sqlx::query_scalar("SELECT CAST(SUM(requests) AS SIGNED) FROM hourly_endpoint_stats")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(requests, 3);

    // A day later the tombstones are no longer looked at, and retention deletes them.
    sqlx::query("UPDATE erased_callers SET erased_at = erased_at - INTERVAL 25 HOUR")
        .execute(&pool)
        .await
        .unwrap();
    let later = row("o_late", "c_late", "/api/v1/location", 200, 23);
    store(&mut client, vec![record(at, &later)]).await;
    assert_eq!(rows(&stats).await.last(), Some(&later));
    let service = stats_svc::stats::Stats::new(stats.db.pools(), 150);
    let mut left = 2;
    // Retention runs under a server-wide named lock that other tests' services may hold.
    for _ in 0..100 {
        service.purge(90, 5000).await.unwrap();
        left = tombstones(&stats).await.len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "expired tombstones purged");
    pool.close().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let stats = StatsService::start_alone().await;
    let mut client = stats.client();
    let kept = row("o_kept", "c_kept", "/api/v1/location", 200, 30);
    store(&mut client, vec![record(hour_start(1), &kept)]).await;
    let clients = hourly_clients(&stats).await;

    let long = "x".repeat(65);
    let too_many: Vec<String> = (0..101).map(|i| format!("c_kept{i}")).collect();
    let too_many: Vec<&str> = std::iter::once("c_kept")
        .chain(too_many.iter().map(String::as_str).skip(1))
        .collect();
    let bad: [(&str, &[&str]); 5] = [
        ("", &[]),
        ("", &[""]),
        (&long, &[]),
        ("o_kept", &[&long]),
        ("o_kept", &too_many),
    ];
    for (openid, client_ids) in bad {
        let refused = forget(&mut client, openid, client_ids).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::InvalidArgument,
            "{openid} {}: {refused:?}",
            client_ids.len()
        );
    }
    assert_eq!(rows(&stats).await, [kept]);
    assert_eq!(hourly_clients(&stats).await, clients);
    assert!(tombstones(&stats).await.is_empty());

    // The longest id that is accepted.
    assert_eq!(forget(&mut client, &"o".repeat(64), &[]).await.unwrap(), 0);
}

/// Batches of the caller racing the erasure: each is either stored before it (and blanked by
/// it) or sees its tombstone; none leaves the openid behind.
#[tokio::test]
async fn batches_racing_the_erasure_leave_no_ids_behind() {
    let stats = StatsService::start_alone().await;
    let client = stats.client();
    let at = hour_start(1) + 120_000;
    let batches = (0..60u32).map(|i| {
        let mut client = client.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(u64::from(i))).await;
            let records = vec![
                record(at, &row("o_racing", "", "/api/v1/location", 200, i)),
                record(
                    at,
                    &row("o_bystander", "c_bystander", "/api/v1/location", 200, i),
                ),
            ];
            store(&mut client, records).await;
        }
    });
    let erasure = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        forget(&mut client.clone(), "o_racing", &[]).await.unwrap()
    };
    let (_, blanked) = tokio::join!(futures::future::join_all(batches), erasure);
    let rows = rows(&stats).await;
    assert_eq!(rows.len(), 120);
    let left = rows
        .iter()
        .filter(|(openid, ..)| openid == "o_racing")
        .count();
    let bystanders = rows
        .iter()
        .filter(|(openid, ..)| openid == "o_bystander")
        .count();
    assert_eq!(
        (left, bystanders),
        (0, 60),
        "{blanked} blanked by the erasure"
    );
}
