//! Benchmarks through the gateway on loopback (a command, not a test): the whole system runs
//! in-process against the real MariaDB + Redis of `deploy/local/xintu infra-up`, with the
//! sandbox as WeChat. Reports requests/s and p50/p99 per scenario, side by side in one run.
//!
//!   eval "$(deploy/local/xintu env)"; cargo run --release -p e2e --bin bench -- [requests] [concurrency]

#![allow(clippy::expect_used, clippy::print_stdout, clippy::unwrap_used)] // a CLI report

use std::time::Duration;

use e2e::bench::{Report, measure};
use e2e::{Options, System};
use sandbox::NotifyMode;

/// Binding polls through a system with request recording on and one with it off, interleaved
/// in rounds so machine noise hits both alike; prints both and the ratio.
async fn recording_cost(requests: usize, concurrency: usize) {
    let mut systems = Vec::new();
    for logging in [true, false] {
        let system = System::start(Options {
            request_logging: logging,
            ..Options::default()
        })
        .await;
        let bound = system.create_qrcode("bench-poller").await;
        system
            .sandbox
            .scan(&system.push_url(), bound.ticket.as_str(), "o_bench")
            .await
            .unwrap();
        let token = bound.client_token.as_str().to_owned();
        systems.push((logging, system, token));
    }
    let http = reqwest::Client::new();
    let mut totals: Vec<(usize, Duration, Vec<Duration>)> = vec![
        (0, Duration::ZERO, Vec::new()),
        (0, Duration::ZERO, Vec::new()),
    ];
    for _round in 0..5 {
        for (index, (_, system, token)) in systems.iter().enumerate() {
            let url = format!(
                "{}/api/v1/auth/wechat/binding?client_id=bench-poller",
                system.gateway()
            );
            let report = measure("poll", requests / 5, concurrency, |_| {
                let http = http.clone();
                let url = url.clone();
                let token = token.clone();
                async move {
                    http.get(url)
                        .bearer_auth(token)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .await;
            totals[index].0 += report.requests;
            totals[index].1 += report.elapsed;
            totals[index].2.extend(report.latencies);
        }
    }
    let mut rates = Vec::new();
    for (index, (logging, _, _)) in systems.iter().enumerate() {
        let (count, elapsed, latencies) = std::mem::take(&mut totals[index]);
        rates.push(count as f64 / elapsed.as_secs_f64());
        Report {
            name: if *logging {
                "binding poll, recording on"
            } else {
                "binding poll, recording off"
            },
            requests: count,
            elapsed,
            latencies,
        }
        .print();
    }
    println!("recording on / off throughput: {:.3}", rates[0] / rates[1]);
    // Every recorded request reached the stats service.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pool = systems[0].1.stats.db.primary().await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM request_logs WHERE endpoint = '/api/v1/auth/wechat/binding'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!("rows recorded in the recording-on run: {stored}");
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("recording") {
        let args = e2e::bench::numeric_args();
        let requests = args.first().copied().unwrap_or(10_000);
        recording_cost(requests, args.get(1).copied().unwrap_or(32)).await;
        return;
    }
    let args = e2e::bench::numeric_args();
    let requests = args.first().copied().unwrap_or(2000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    println!("xintu gateway benchmark: {requests} requests per scenario, {concurrency} in flight");
    let system = System::start(Options {
        qrcode_per_client_per_minute: u32::MAX,
        orders_per_user_per_minute: u32::MAX,
        locations_per_client_per_minute: u32::MAX,
        ..Options::default()
    })
    .await;
    let gateway = system.gateway().to_owned();
    let http = reqwest::Client::new();

    // QR creation: distinct clients (each is a DB upsert + a sandbox qrcode/create).
    let mut qr = measure("qrcode create", requests, concurrency, |i| {
        let http = http.clone();
        let url = format!("{gateway}/api/v1/auth/wechat/qrcode");
        async move {
            http.post(url)
                .json(&serde_json::json!({ "client_id": format!("bench-{i}") }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    // Binding polls of one bound client (the app's polling loop).
    let bound = system.create_qrcode("bench-poller").await;
    system
        .sandbox
        .scan(&system.push_url(), bound.ticket.as_str(), "o_bench")
        .await
        .unwrap();
    let token = bound.client_token.as_str().to_owned();
    let mut poll = measure("binding poll (completed)", requests, concurrency, |_| {
        let http = http.clone();
        let url = format!("{gateway}/api/v1/auth/wechat/binding?client_id=bench-poller");
        let token = token.clone();
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    // Orders through the member session, against the sandbox's WeChat Pay.
    let browser = system.sign_in("o_bench_buyer").await;
    system.sandbox.set_notify_mode(NotifyMode::Drop);
    let order_count = requests / 4;
    let mut create = measure(
        "create-order (sandbox pay)",
        order_count,
        concurrency,
        |_| {
            let browser = &browser;
            async move {
                browser
                    .post(
                        "/api/v1/payment/create-order",
                        serde_json::json!({ "order_type": "credits", "credits_amount": 1 }),
                    )
                    .await
                    .0
                    == 200
            }
        },
    )
    .await;

    // Notifies: each order paid once (valid), then the same notifies again (duplicates).
    let pool = system.db.primary().await;
    let orders: Vec<String> = sqlx::query_scalar("SELECT out_trade_no FROM payment_orders")
        .fetch_all(&pool)
        .await
        .unwrap();
    for no in &orders {
        system.sandbox.pay(no).await.unwrap();
    }
    let notifies: Vec<_> = orders
        .iter()
        .map(|no| system.sandbox.notify_fields(no).unwrap())
        .collect();
    let url = format!("{gateway}/api/v1/payment/notify");
    let mut valid = measure(
        "notify (valid, applies)",
        notifies.len(),
        concurrency,
        |i| {
            let fields = &notifies[i];
            let sandbox = &system.sandbox;
            let url = &url;
            async move { sandbox.post_notify(url, fields).await.0 }
        },
    )
    .await;
    let mut duplicate = measure("notify (duplicate)", notifies.len(), concurrency, |i| {
        let fields = &notifies[i];
        let sandbox = &system.sandbox;
        let url = &url;
        async move { sandbox.post_notify(url, fields).await.0 }
    })
    .await;
    for report in [&mut qr, &mut poll, &mut create, &mut valid, &mut duplicate] {
        report.print();
    }
    system.assert_ledger_invariant().await;
}
