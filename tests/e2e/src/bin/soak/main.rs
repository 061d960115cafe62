//! The whole system under a realistic mix for a while, with faults injected mid-run (a command,
//! not a test: `deploy/local/xintu soak [SECONDS]` builds the images, starts the docker compose
//! deployment with two membership instances and runs this against the ports it publishes; the
//! test command runs it on the deployment its compose check left up, which `up` here brings to
//! two membership instances and the soak's settings).
//!
//! 1. Setup: users bound through QR codes, signed in on the member page, credits bought.
//! 2. Capacity: the mix as fast as 32 closed-loop clients can drive it.
//! 3. The run: the mix at 80% of that rate (open loop: requests keep coming however slowly
//!    answers do), WeChat Pay's notifies cycling through normal, duplicated and dropped, while
//!    a membership instance is killed with SIGKILL, the replica's SQL thread stops, Redis
//!    restarts and the primary freezes. Every request, and each container's memory and CPU
//!    every 10 s, are recorded.
//! 4. Checks: every paid order credited once, the ledger adds up, no hold left open, no request
//!    record lost, our services' memory flat after warm-up. Then the report.

#![allow(clippy::print_stdout)] // a CLI report

mod checks;
mod faults;
mod mix;
mod processes;
mod record;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::seq::IndexedRandom;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use e2e::compose::Compose;
use e2e::compose::edge::{Edge, sample_photo};

use mix::{MIX, Operation, Traffic};

/// Closed-loop clients of the capacity measurement: enough that the system, not the clients,
/// is the limit (some operations wait between polls).
const CAPACITY_CLIENTS: usize = 32;
/// Operations in flight at most during the run; more are counted as shed, not sent.
const MAX_IN_FLIGHT: usize = 512;
/// The share of the measured capacity the run drives.
const LOAD_SHARE: f64 = 0.8;
/// How long after a fault ends its errors are still counted as its own.
const RECOVERY: Duration = Duration::from_secs(5);
/// Runs at least this long judge whether memory stays flat after warm-up (a third of the run).
const MEMORY_JUDGED_FROM: Duration = Duration::from_secs(300);
/// WeChat Pay's notifies, cycled through every few seconds.
const NOTIFY_MODES_EVERY: Duration = Duration::from_secs(5);

fn pick() -> Operation {
    MIX.choose_weighted(&mut rand::rng(), |(_, weight)| *weight)
        .map_or(Operation::Location, |(operation, _)| *operation)
}

/// Operations per kind: (run, failed).
type Counts = std::collections::BTreeMap<Operation, (u64, u64)>;

fn count(counts: &mut Counts, operation: Operation, result: &Result<bool>) {
    let entry = counts.entry(operation).or_default();
    entry.0 += 1;
    entry.1 += u64::from(!matches!(result, Ok(true)));
}

/// The mix from `clients` closed loops for `length`: operations completed per second within it.
/// Each loop then finishes the operation it is in (a poll may wait many seconds); the loops are
/// handed back rather than awaited, so the run begins at once, and awaited after it.
async fn capacity(traffic: &Arc<Traffic>, clients: usize, length: Duration) -> (f64, JoinSet<()>) {
    let deadline = Instant::now() + length;
    let done = Arc::new(AtomicU64::new(0));
    let mut loops = JoinSet::new();
    for _ in 0..clients {
        let (traffic, done) = (traffic.clone(), done.clone());
        loops.spawn(async move {
            while Instant::now() < deadline {
                if matches!(traffic.run(pick()).await, Ok(true)) && Instant::now() <= deadline {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep_until(deadline.into()).await;
    let done = done.load(Ordering::Relaxed);
    (done as f64 / length.as_secs_f64(), loops)
}

/// The mix at `rate` operations a second for `length`, open loop; returns the operations per
/// kind and how many were shed.
async fn open_loop(traffic: &Arc<Traffic>, rate: f64, length: Duration) -> (Counts, u64) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let deadline = Instant::now() + length;
    let mut running = JoinSet::new();
    let mut counts = Counts::new();
    let mut shed = 0;
    while Instant::now() < deadline {
        ticker.tick().await;
        let operation = pick();
        match in_flight.clone().try_acquire_owned() {
            Ok(permit) => {
                let traffic = traffic.clone();
                running.spawn(async move {
                    let result = traffic.run(operation).await;
                    drop(permit);
                    (operation, result)
                });
            }
            Err(_) => shed += 1,
        }
        while let Some(Ok((operation, result))) = running.try_join_next() {
            count(&mut counts, operation, &result);
        }
    }
    while let Some(Ok((operation, result))) = running.join_next().await {
        count(&mut counts, operation, &result);
    }
    (counts, shed)
}

/// Cycles WeChat Pay's notifies through normal, duplicated (3 at once) and dropped until `stop`.
async fn cycle_notify_modes(edge: &Edge, stop: CancellationToken) -> Result<()> {
    let modes = [json!("normal"), json!({ "duplicates": 3 }), json!("drop")];
    for mode in modes.iter().cycle() {
        edge.notify_mode(mode.clone()).await?;
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(NOTIFY_MODES_EVERY) => {}
        }
    }
    edge.notify_mode(json!("normal")).await
}

fn seconds_from_args() -> Result<Duration> {
    let seconds = match std::env::args().nth(1) {
        Some(arg) => arg.parse().with_context(|| format!("seconds: {arg}"))?,
        None => 600,
    };
    if seconds < 60 {
        bail!("a soak runs for at least 60 seconds (its faults need the time)");
    }
    Ok(Duration::from_secs(seconds))
}

#[tokio::main]
async fn main() -> Result<()> {
    let length = seconds_from_args()?;
    let users: usize = std::env::var("XINTU_SOAK_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
        .max(3);
    let compose = Arc::new(Compose::from_env()?);
    let started = Instant::now();

    println!("== up: the whole stack with the sandbox, membership ×2");
    compose.up(&[("membership", 2)])?;
    compose.wait_healthy(Duration::from_secs(240))?;
    println!("healthy after {:.0?}", started.elapsed());

    println!("\n== setup: {users} users bound, signed in, credits bought");
    let recorder = record::Recorder::new(Instant::now());
    let traffic = Arc::new(
        Traffic::prepare(
            Edge::from_env()?,
            recorder,
            users,
            500,
            (sample_photo("coffee.png")?, sample_photo("astronaut.png")?),
        )
        .await?,
    );
    println!("ready after {:.0?}", started.elapsed());

    let measure = (length / 20).clamp(Duration::from_secs(10), Duration::from_secs(30));
    println!("\n== capacity: {CAPACITY_CLIENTS} closed-loop clients for {measure:.0?}");
    let (capacity, measuring) = capacity(&traffic, CAPACITY_CLIENTS, measure).await;
    let rate = capacity * LOAD_SHARE;
    println!("{capacity:.1} operations/s; the run drives {rate:.1}/s");

    println!(
        "\n== the run: {length:.0?} at {rate:.1} operations/s, faults injected (at {:.0?})",
        started.elapsed()
    );
    let load_started = traffic.recorder.elapsed();
    let stop = CancellationToken::new();
    // However this ends, the sampler and the notify cycle stop (the runtime waits for them).
    let _stop_on_return = stop.clone().drop_guard();
    let notify_modes = {
        let (traffic, stop) = (traffic.clone(), stop.clone());
        tokio::spawn(async move { cycle_notify_modes(&traffic.edge, stop).await })
    };
    let sampler = {
        let (compose, traffic, stop) = (compose.clone(), traffic.clone(), stop.clone());
        tokio::task::spawn_blocking(move || processes::sample(&compose, &traffic.recorder, &stop))
    };
    let faults = {
        let (compose, traffic) = (compose.clone(), traffic.clone());
        tokio::task::spawn_blocking(move || {
            faults::inject_all(&compose, &traffic.recorder, load_started, length)
        })
    };
    let (counts, shed) = open_loop(&traffic, rate, length).await;
    measuring.join_all().await;
    let (windows, injected) = faults.await?;
    stop.cancel();
    notify_modes.await??;
    let process_samples = sampler.await??;
    let load_ended = traffic.recorder.elapsed();
    let mut failed = Vec::new();
    if let Err(err) = injected {
        println!("FAILED: a fault could not be injected: {err:#}");
        failed.push(format!("injecting the faults: {err:#}"));
    }

    println!("\n== checks (at {:.0?})", started.elapsed());
    let orders = traffic.paid_orders();
    let request_ids = traffic.recorder.request_ids();
    let warm_up = load_started + length / 3;
    let trends = processes::memory_trends(&process_samples, warm_up)?;
    let compose_checks = compose.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        [
            checks::orders_credited_once(&compose_checks, &orders),
            checks::ledger_adds_up(&compose_checks),
            checks::no_open_holds(&compose_checks),
            checks::no_record_lost(&compose_checks, &request_ids),
        ]
    })
    .await?;

    println!("checked after {:.0?}", started.elapsed());
    report::print(&report::Report {
        capacity,
        rate,
        load: (load_started, load_ended),
        counts: &counts,
        shed,
        samples: &traffic.recorder.samples(),
        windows: &windows,
        recovery: RECOVERY,
        processes: &process_samples,
    });

    // A fault may make a request fail, but with what it is (unavailable, timeout): never as an
    // internal error, which says a bug.
    let internal = traffic
        .recorder
        .samples()
        .iter()
        .filter(|s| matches!(&s.outcome, record::Outcome::Answered { status: 500, .. }))
        .count();
    if internal == 0 {
        println!("ok: no request ended in an internal error");
    } else {
        println!("FAILED: {internal} requests ended in an internal error (500)");
        failed.push(format!("{internal} internal errors"));
    }
    for outcome in outcomes {
        match outcome {
            Ok(passed) => println!("ok: {passed}"),
            Err(err) => {
                println!("FAILED: {err:#}");
                failed.push(format!("{err:#}"));
            }
        }
    }
    // A minute is all warm-up (caches filling, the primary's freeze near the end): memory is
    // judged on longer runs and only shown on short ones.
    let judge_memory = length >= MEMORY_JUDGED_FROM;
    for trend in &trends {
        if !judge_memory {
            println!(
                "memory of {} (not judged in a run under {MEMORY_JUDGED_FROM:.0?}): {} → {} MiB",
                trend.container,
                trend.after_warm_up >> 20,
                trend.at_end >> 20
            );
        } else if trend.is_flat() {
            println!(
                "ok: {} memory flat after warm-up ({} → {} MiB, peak {} MiB)",
                trend.container,
                trend.after_warm_up >> 20,
                trend.at_end >> 20,
                trend.peak >> 20
            );
        } else {
            let grew = format!(
                "{} memory grew after warm-up: {} → {} MiB",
                trend.container,
                trend.after_warm_up >> 20,
                trend.at_end >> 20
            );
            println!("FAILED: {grew}");
            failed.push(grew);
        }
    }
    if !failed.is_empty() {
        bail!("the soak failed: {}", failed.join("; "));
    }
    println!("\nsoak passed in {:.0?}", started.elapsed());
    Ok(())
}
