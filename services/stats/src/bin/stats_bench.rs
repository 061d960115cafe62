//! Overview and time-series query times on many seeded log rows (a command, not a test).
//!
//!   eval "$(deploy/local/xintu env)"
//!   cargo run --release -p stats-svc --bin stats-bench -- [rows, default 10000000]
//!
//! Seeds a fresh database on the local primary (doubling INSERT … SELECT, spread over 30 days),
//! waits for the replica, then times the queries the admin site makes, on the replica.

#![allow(clippy::expect_used, clippy::print_stdout)] // a CLI report

use std::time::Instant;

use chrono::{Duration, Utc};
use platform::testing::{Replica, TestDatabase};
use stats_svc::stats::Stats;

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let db = TestDatabase::create("statsbench", Replica::Shared).await;
    let primary = db.primary().await;
    // The raw table first; the rollup migration then folds the seeded rows, as it would
    // fold the logs of an existing deployment.
    let mut raw_only = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(stats_svc::MIGRATOR.migrations[..1].to_vec()),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    raw_only.set_ignore_missing(true);
    raw_only.run(&primary).await.expect("migrate the raw table");
    let started = Instant::now();
    // A seed of 1000 varied rows, then doubling until the target.
    sqlx::query(
        "INSERT INTO request_logs (at, endpoint, method, status, latency_ms, client_id, source, model_tokens) \
         SELECT NOW(3) - INTERVAL (seq * 2591) SECOND, \
           ELT(1 + seq % 6, '/api/v1/photos/classify', '/api/v1/location', '/api/v1/auth/wechat/binding', \
               '/api/v1/member/profile', '/api/v1/payment/create-order', '/api/v1/photos/lookup'), \
           'GET', IF(seq % 97 = 0, 502, IF(seq % 31 = 0, 400, 200)), 5 + (seq * 37) % 400, \
           CONCAT('client-', seq % 500), ELT(1 + seq % 4, 'cache', 'local', 'model', ''), IF(seq % 4 = 2, 900, 0) \
         FROM seq_0_to_999",
    )
    .execute(&primary)
    .await
    .expect("seed");
    let mut count: u64 = 1000;
    while count < rows {
        let add = (rows - count).min(count);
        sqlx::query(&format!(
            "INSERT INTO request_logs (at, endpoint, method, status, latency_ms, client_id, source, model_tokens) \
             SELECT at - INTERVAL 1 SECOND, endpoint, method, status, latency_ms, client_id, source, model_tokens \
             FROM request_logs LIMIT {add}"
        ))
        .execute(&primary)
        .await
        .expect("double");
        count += add;
    }
    println!(
        "seeded {count} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let folding = Instant::now();
    stats_svc::MIGRATOR
        .run(&primary)
        .await
        .expect("migrate the rollups");
    println!("rolled up in {:.1} s", folding.elapsed().as_secs_f64());
    let replicating = Instant::now();
    db.wait_for_replica_within(1800).await;
    println!(
        "replica caught up in {:.1} s",
        replicating.elapsed().as_secs_f64()
    );
    let stats = Stats::new(db.pools(), 150);
    let now = Utc::now();
    for (name, days) in [
        ("overview, last 24 h", 1),
        ("overview, last 7 days", 7),
        ("overview, 30 days", 30),
    ] {
        let t = Instant::now();
        let overview = stats
            .overview(now - Duration::days(days), now)
            .await
            .expect("overview");
        println!(
            "{name:<24} {:>8.0} ms  ({} requests, {} endpoints)",
            t.elapsed().as_secs_f64() * 1000.0,
            overview.totals.requests,
            overview.endpoints.len()
        );
    }
    for (name, days, bucket) in [
        ("series by hour, 7 days", 7, 3600),
        ("series by day, 30 days", 30, 86_400),
    ] {
        let t = Instant::now();
        let points = stats
            .series(now - Duration::days(days), now, bucket)
            .await
            .expect("series");
        println!(
            "{name:<24} {:>8.0} ms  ({} points)",
            t.elapsed().as_secs_f64() * 1000.0,
            points.len()
        );
    }
    db.drop_database().await;
}
