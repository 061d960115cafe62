//! Latency summaries.

use std::time::Duration;

use serde::Serialize;

/// p50/p95/mean of a set of timings, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// Summarises timings with nearest-rank percentiles.
    pub fn of(timings: &[Duration]) -> Self {
        let mut ms: Vec<f64> = timings.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len().max(1)) - 1;
            ms.get(index).copied().unwrap_or(f64::NAN)
        };
        Self {
            samples: ms.len(),
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:7.2} ms  p95 {:7.2} ms  mean {:7.2} ms  (n={})",
            self.p50_ms, self.p95_ms, self.mean_ms, self.samples
        )
    }
}

/// Runs `f` `times` times and returns each run's duration.
pub fn time_runs<T>(
    times: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Duration>> {
    let mut timings = Vec::with_capacity(times);
    for _ in 0..times {
        let started = std::time::Instant::now();
        std::hint::black_box(f()?);
        timings.push(started.elapsed());
    }
    Ok(timings)
}
