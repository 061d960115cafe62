//! One command for the side-by-side performance comparison. It starts this system (release
//! binaries, one process per service), the seed's stack (FastAPI + Gunicorn, 2 workers, from
//! `XINTU_PEER_DIR`) and a one-hop axum + sqlx baseline on the same MariaDB primary + replica and
//! Redis, binds clients on each through the sandbox, then loads each path with wrk in
//! interleaved rounds and prints requests/s, p99 and the ratios.
//!
//!   compare [seconds per run = 8] [rounds = 2] [connections = 32] [clients = 64] [--only=PATH]
//!   compare long-poll [waiting clients = 5000] [scans = 200]
//!
//! The second form measures this system's long poll instead: memory per waiting client, the
//! gateway's CPU while they wait, and the time from a scan to its client's answer.
//!
//! `--only=location` (any part of a path's name) loads that path alone, for a profiler to watch.
//! `--hold` starts everything, writes each path's wrk script and waits (Ctrl-C ends it), for
//! loading and profiling by hand.
//!
//! Needs the test infrastructure and its environment, release builds and wrk:
//! `deploy/local/xintu bench-compare` provides all three.

mod long_poll;
mod procs;
mod systems;
mod wrk;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use sandbox::{Sandbox, SandboxConfig};

use wrk::{Measured, Request, Script};

/// (scenario, system) → one measurement per round.
type Results = BTreeMap<(&'static str, &'static str), Vec<Measured>>;

struct Settings {
    seconds: u32,
    rounds: u32,
    connections: u32,
    clients: usize,
    /// Loads only the paths whose name contains this.
    only: Option<String>,
    /// Starts everything and waits instead of loading (`--hold`).
    hold: bool,
}

/// What to measure, from the command line.
enum Mode {
    Compare(Settings),
    LongPoll { waiting: usize, scans: usize },
}

fn mode() -> Mode {
    let long_poll = std::env::args().nth(1).as_deref() == Some("long-poll");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    if long_poll {
        return Mode::LongPoll {
            waiting: usize::try_from(arg(0, 5000)).unwrap_or(5000),
            scans: usize::try_from(arg(1, 200)).unwrap_or(200),
        };
    }
    Mode::Compare(Settings {
        seconds: u32::try_from(arg(0, 8)).unwrap_or(8),
        rounds: u32::try_from(arg(1, 2)).unwrap_or(2),
        connections: u32::try_from(arg(2, 32)).unwrap_or(32),
        clients: usize::try_from(arg(3, 64)).unwrap_or(64),
        only: std::env::args().find_map(|arg| arg.strip_prefix("--only=").map(str::to_owned)),
        hold: std::env::args().any(|arg| arg == "--hold"),
    })
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".to_owned(), format!("Bearer {token}"))]
}

/// The binding poll of each bound client, in turn.
fn binding_polls(clients: &[(String, String)]) -> Script {
    Script {
        method: "GET",
        requests: clients
            .iter()
            .map(|(client_id, token)| Request {
                path: format!("/api/v1/auth/wechat/binding?client_id={client_id}"),
                headers: bearer(token),
                body: None,
            })
            .collect(),
    }
}

fn locations(clients: &[(String, String)]) -> Script {
    Script {
        method: "GET",
        requests: clients
            .iter()
            .enumerate()
            .map(|(i, (_, token))| {
                let lat = 30.2 + (i % 50) as f64 * 0.01;
                Request {
                    path: format!("/api/v1/location?lat={lat:.3}&lng=120.13"),
                    headers: bearer(token),
                    body: None,
                }
            })
            .collect(),
    }
}

/// Lookups of ten digests (not cached: the path and the cache read are what is measured).
fn lookups(clients: &[(String, String)]) -> Script {
    let digests: Vec<String> = (0..10).map(|i| format!("{i:064x}")).collect();
    let body = serde_json::json!({ "sha256": digests }).to_string();
    Script {
        method: "POST",
        requests: clients
            .iter()
            .map(|(_, token)| {
                let mut headers = bearer(token);
                headers.push(("Content-Type".into(), "application/json".into()));
                Request {
                    path: "/api/v1/photos/lookup".to_owned(),
                    headers,
                    body: Some(body.clone()),
                }
            })
            .collect(),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn summary(results: &Results, key: (&'static str, &'static str)) -> Option<(f64, f64, u64)> {
    let runs = results.get(&key)?;
    let mut rates: Vec<f64> = runs.iter().map(|m| m.requests_per_sec).collect();
    let mut p99s: Vec<f64> = runs.iter().map(|m| m.p99_ms).collect();
    let failures = runs.iter().map(|m| m.failures).sum();
    Some((median(&mut rates), median(&mut p99s), failures))
}

fn print_table(results: &Results, settings: &Settings) {
    println!(
        "\n{} rounds of {} s per run, wrk -t2 -c{}; medians of the rounds\n",
        settings.rounds, settings.seconds, settings.connections
    );
    println!("| path | system | req/s (each round) | p99 ms | failures |");
    println!("|---|---|---|---|---|");
    for ((scenario, system), runs) in results {
        let rounds: Vec<String> = runs
            .iter()
            .map(|m| format!("{:.0}", m.requests_per_sec))
            .collect();
        if let Some((_, p99, failures)) = summary(results, (scenario, system)) {
            println!(
                "| {scenario} | {system} | {} | {p99:.1} | {failures} |",
                rounds.join(", ")
            );
        }
    }
    println!("\n| ratio | value |\n|---|---|");
    let ratio = |name: &str, a: (&'static str, &'static str), b: (&'static str, &'static str)| {
        if let (Some(a), Some(b)) = (summary(results, a), summary(results, b)) {
            println!("| {name} | {:.2}× |", a.0 / b.0);
        }
    };
    ratio(
        "binding poll: this system / seed's stack",
        ("binding poll", "this system"),
        ("binding poll", "seed's stack"),
    );
    for scenario in ["binding poll", "location", "lookup"] {
        ratio(
            &format!("{scenario}: this system / one-hop baseline"),
            (scenario, "this system"),
            ("binding poll", "one-hop baseline"),
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mode = mode();
    let logs = std::env::temp_dir().join(format!("xintu-compare-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    println!("logs and wrk scripts: {}", logs.display());
    let http = reqwest::Client::new();
    let sandbox = Sandbox::start_local(SandboxConfig::default())
        .await
        .context("start the sandbox")?;

    let membership_db = systems::databases("perf_membership").await;
    let photo_db = systems::databases("perf_photo").await;
    let stats_db = systems::databases("perf_stats").await;
    let ours = systems::start_ours(
        &sandbox,
        [&membership_db, &photo_db, &stats_db],
        &logs,
        &http,
    )
    .await?;
    let settings = match mode {
        Mode::Compare(settings) => settings,
        Mode::LongPoll { waiting, scans } => {
            let report = long_poll::measure(&sandbox, &ours, waiting, scans).await?;
            report.print();
            drop(ours);
            for db in [membership_db, photo_db, stats_db] {
                db.drop_database().await;
            }
            return Ok(());
        }
    };
    let one_hop = systems::start_one_hop(&membership_db, &logs).await?;
    let peer_dir = PathBuf::from(
        std::env::var("XINTU_PEER_DIR").unwrap_or_else(|_| "../shared/peer-fastapi".into()),
    );
    let peer_db = systems::databases("perf_peer").await;
    let peer = if peer_dir.join("run.sh").exists() {
        Some(systems::start_peer(&sandbox, &peer_dir, &peer_db, &logs, &http).await?)
    } else {
        println!(
            "no seed's stack at {} (XINTU_PEER_DIR): left out",
            peer_dir.display()
        );
        None
    };

    let our_clients =
        systems::bind_clients(&sandbox, &http, &ours.url, "ours", settings.clients).await?;
    let peer_clients = match &peer {
        Some(peer) => {
            systems::bind_clients(&sandbox, &http, &peer.url, "peer", settings.clients).await?
        }
        None => Vec::new(),
    };
    membership_db.wait_for_replica().await;
    peer_db.wait_for_replica().await;

    let mut runs: Vec<(&'static str, &'static str, String, Script)> = vec![
        (
            "binding poll",
            "this system",
            ours.url.clone(),
            binding_polls(&our_clients),
        ),
        (
            "binding poll",
            "one-hop baseline",
            one_hop.url.clone(),
            binding_polls(&our_clients),
        ),
        (
            "location",
            "this system",
            ours.url.clone(),
            locations(&our_clients),
        ),
        (
            "lookup",
            "this system",
            ours.url.clone(),
            lookups(&our_clients),
        ),
    ];
    if let Some(peer) = &peer {
        runs.insert(
            1,
            (
                "binding poll",
                "seed's stack",
                peer.url.clone(),
                binding_polls(&peer_clients),
            ),
        );
    }
    if let Some(only) = &settings.only {
        runs.retain(|(scenario, ..)| scenario.contains(only.as_str()));
    }
    if settings.hold {
        for (scenario, system, url, script) in &runs {
            let path = logs.join(format!("{scenario}-{system}.lua").replace([' ', '\''], "_"));
            std::fs::write(&path, script.lua())?;
            println!(
                "{scenario} / {system}: wrk -t2 -c32 -d8s --latency -s {} {url}",
                path.display()
            );
        }
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    let mut results = Results::new();
    for round in 1..=settings.rounds {
        for (scenario, system, url, script) in &runs {
            let name = format!("{scenario}-{system}-{round}").replace([' ', '\''], "_");
            let measured = wrk::run(
                url,
                script,
                settings.seconds,
                settings.connections,
                &logs,
                &name,
            )
            .await?;
            println!(
                "round {round}: {scenario} / {system}: {:.0} req/s, p99 {:.1} ms, {} failures",
                measured.requests_per_sec, measured.p99_ms, measured.failures
            );
            results
                .entry((scenario, system))
                .or_default()
                .push(measured);
        }
    }
    print_table(&results, &settings);
    drop((ours, one_hop, peer));
    for db in [membership_db, photo_db, stats_db, peer_db] {
        db.drop_database().await;
    }
    Ok(())
}
