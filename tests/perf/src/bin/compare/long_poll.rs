//! The long poll at scale: `waiting` pending clients each hold `GET …/binding?wait=25` open on
//! one gateway; measured are the gateway's memory per waiting client, its CPU while they wait,
//! and the time from a scan's push to its client's answer.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use sandbox::Sandbox;

use crate::procs::{cpu_ticks, rss_kib};
use crate::systems::{Running, create_qrcode};

/// What the measurement found.
pub struct LongPollReport {
    pub waiting: usize,
    pub rss_before_kib: u64,
    pub rss_waiting_kib: u64,
    pub idle_cpu_percent: f64,
    pub scans: usize,
    pub answer_p50_ms: f64,
    pub answer_p99_ms: f64,
    pub answered_late: usize,
}

struct Pending {
    client_id: String,
    token: String,
    ticket: String,
}

async fn create_pending(
    http: &reqwest::Client,
    base: &str,
    count: usize,
) -> anyhow::Result<Vec<Pending>> {
    let created = futures::stream::iter(0..count)
        .map(|i| async move {
            let client_id = format!("waiting-pc-{i}");
            let (token, ticket) = create_qrcode(http, base, &client_id).await?;
            anyhow::Ok(Pending {
                client_id,
                token,
                ticket,
            })
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    created.into_iter().collect()
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn measure(
    sandbox: &Sandbox,
    ours: &Running,
    waiting: usize,
    scans: usize,
) -> anyhow::Result<LongPollReport> {
    let gateway_pid = ours.pid("gateway").context("the gateway's pid")?;
    let setup = reqwest::Client::new();
    println!("creating {waiting} pending clients");
    let pending = create_pending(&setup, &ours.url, waiting).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before_kib = rss_kib(gateway_pid).unwrap_or(0);

    // One connection per waiting client, as each app holds its own.
    let waiter = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()?;
    let started = Instant::now();
    let mut polls = Vec::with_capacity(waiting);
    for client in &pending {
        let request = waiter
            .get(format!("{}/api/v1/auth/wechat/binding", ours.url))
            .query(&[("client_id", client.client_id.as_str()), ("wait", "25")])
            .bearer_auth(&client.token);
        polls.push(tokio::spawn(async move {
            let answer = request.send().await;
            let at = Instant::now();
            let status = match answer {
                Ok(response) => {
                    let code = response.status();
                    match response.json::<serde_json::Value>().await {
                        Ok(body) => body["status"]
                            .as_str()
                            .map_or_else(|| format!("http {code}: {body}"), str::to_owned),
                        Err(err) => format!("http {code}: {err}"),
                    }
                }
                Err(err) => format!("error: {err:?}"),
            };
            (status, at)
        }));
    }
    println!("{waiting} long polls opened in {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_waiting_kib = rss_kib(gateway_pid).unwrap_or(0);
    let ticks_before = cpu_ticks(gateway_pid).unwrap_or(0);
    let idle = Duration::from_secs(5);
    tokio::time::sleep(idle).await;
    let ticks = cpu_ticks(gateway_pid)
        .unwrap_or(0)
        .saturating_sub(ticks_before);
    // Linux reports CPU time in 1/100 s.
    let idle_cpu_percent = ticks as f64 / idle.as_secs_f64();

    // Scans, spread over a few seconds, each timed from the push to its client's answer.
    let push_url = format!("{}/api/v1/auth/wechat/verify", ours.url);
    let mut scanned_at = Vec::with_capacity(scans);
    for (i, client) in pending.iter().take(scans).enumerate() {
        let at = Instant::now();
        sandbox
            .scan(&push_url, &client.ticket, &format!("o_waiting_{i}"))
            .await
            .map_err(|err| anyhow::anyhow!("scan: {err:?}"))?;
        scanned_at.push(at);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::with_capacity(scans);
    let mut answered_late = 0;
    let mut otherwise = std::collections::BTreeMap::<String, usize>::new();
    for (poll, at) in polls.into_iter().zip(scanned_at) {
        let (status, answered) = poll.await?;
        if status == "completed" && answered >= at {
            latencies.push((answered - at).as_secs_f64() * 1000.0);
        } else {
            answered_late += 1;
            let early = if answered < at {
                " before its scan"
            } else {
                ""
            };
            *otherwise.entry(format!("{status}{early}")).or_default() += 1;
        }
    }
    for (outcome, count) in &otherwise {
        println!("{count} polls answered otherwise: {outcome}");
    }
    latencies.sort_by(f64::total_cmp);
    Ok(LongPollReport {
        waiting,
        rss_before_kib,
        rss_waiting_kib,
        idle_cpu_percent,
        scans,
        answer_p50_ms: percentile(&latencies, 0.5),
        answer_p99_ms: percentile(&latencies, 0.99),
        answered_late,
    })
}

impl LongPollReport {
    pub fn print(&self) {
        let per_client = (self.rss_waiting_kib.saturating_sub(self.rss_before_kib)) as f64 * 1024.0
            / self.waiting.max(1) as f64;
        println!(
            "\n| long poll, {} waiting clients on one gateway | |",
            self.waiting
        );
        println!("|---|---|");
        println!(
            "| gateway RSS before / while waiting | {:.1} MiB / {:.1} MiB |",
            self.rss_before_kib as f64 / 1024.0,
            self.rss_waiting_kib as f64 / 1024.0
        );
        println!(
            "| memory per waiting client | {:.1} KiB |",
            per_client / 1024.0
        );
        println!(
            "| gateway CPU while they wait | {:.1} % of a core |",
            self.idle_cpu_percent
        );
        println!(
            "| scan to answer, {} scans | p50 {:.1} ms, p99 {:.1} ms ({} not answered by their scan) |",
            self.scans, self.answer_p50_ms, self.answer_p99_ms, self.answered_late
        );
    }
}
