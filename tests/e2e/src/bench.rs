//! What the bench commands share: run N calls with C in flight and report requests/s, p50, p99.

#![allow(clippy::print_stdout)] // the benches' report goes to stdout

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;

/// The numeric command-line arguments, in order (counts and concurrency; words are skipped).
pub fn numeric_args() -> Vec<usize> {
    std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect()
}

pub struct Report {
    pub name: &'static str,
    pub requests: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Report {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn print(&mut self) {
        self.latencies.sort();
        let pick = |q: f64| {
            let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies
                .get(index)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{:<36} {:>6} req  {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.name,
            self.requests,
            self.requests_per_second(),
            pick(0.50),
            pick(0.99),
        );
    }
}

/// Runs `requests` calls of `call(i)` with `concurrency` in flight; each must succeed.
pub async fn measure<F, Fut>(
    name: &'static str,
    requests: usize,
    concurrency: usize,
    call: F,
) -> Report
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..requests)
        .map(|i| {
            let fut = call(i);
            async move {
                let t = Instant::now();
                assert!(fut.await, "{name}: request {i} failed");
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    Report {
        name,
        requests,
        elapsed: started.elapsed(),
        latencies,
    }
}
