//! Resident memory and CPU of every container's processes, sampled every 10 s from the host's
//! `/proc` (the processes `docker top` lists), and whether each service's memory stays flat.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use e2e::compose::{Compose, Container};

use crate::record::Recorder;

pub const EVERY: Duration = Duration::from_secs(10);

/// The kernel's clock ticks per second in `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Clone, Debug)]
pub struct ProcessSample {
    pub at: Duration,
    pub container: String,
    /// The container's main process: a new one means it was restarted.
    pub main_pid: u32,
    pub rss_bytes: u64,
    /// CPU since the container's previous sample, in percent of one core.
    pub cpu_percent: f64,
}

/// `VmRSS` and utime + stime (ticks) of one process; `None` once it is gone.
fn read_process(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        // Kernel threads and zombies have no VmRSS.
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: the fields after it follow its ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name's ')'.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((rss_kib * 1024, ticks))
}

/// Samples every running container of the project every [`EVERY`] until `stop`. Blocking: run it
/// on a thread of its own.
pub fn sample(
    compose: &Compose,
    recorder: &Recorder,
    stop: &CancellationToken,
) -> Result<Vec<ProcessSample>> {
    let mut samples = Vec::new();
    // Per container: the total CPU ticks and when they were read.
    let mut previous = BTreeMap::<String, (u64, Duration)>::new();
    while !stop.is_cancelled() {
        let at = recorder.elapsed();
        for container in compose.running()? {
            let Some((main_pid, pids)) = read_container(compose, &container)? else {
                continue;
            };
            let (mut rss_bytes, mut ticks) = (0, 0);
            for pid in pids {
                if let Some((rss, cpu)) = read_process(pid) {
                    rss_bytes += rss;
                    ticks += cpu;
                }
            }
            let cpu_percent = match previous.get(&container.name) {
                Some(&(before, then)) if ticks >= before && at > then => {
                    (ticks - before) as f64 / TICKS_PER_SECOND / (at - then).as_secs_f64() * 100.0
                }
                _ => 0.0,
            };
            previous.insert(container.name.clone(), (ticks, at));
            samples.push(ProcessSample {
                at,
                container: container.name,
                main_pid,
                rss_bytes,
                cpu_percent,
            });
        }
        let next = at + EVERY;
        while !stop.is_cancelled() && recorder.elapsed() < next {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(samples)
}

/// A container's main process and all its processes; None when it is not running. The faults
/// stop containers (a killed instance before its restart, Redis while it restarts), so one
/// listed as running a moment ago may be gone by the time it is read.
fn read_container(compose: &Compose, container: &Container) -> Result<Option<(u32, Vec<u32>)>> {
    let main_pid = compose.main_pid(container)?;
    if main_pid == 0 {
        return Ok(None);
    }
    match compose.processes(container) {
        Ok(pids) => Ok(Some((main_pid, pids))),
        Err(_) if compose.main_pid(container)? != main_pid => Ok(None),
        Err(err) => Err(err),
    }
}

/// The containers of our own programs (not the databases, Redis or the edges).
pub fn is_ours(container: &str) -> bool {
    ["gateway", "photo", "membership", "stats"]
        .iter()
        .any(|service| container.contains(&format!("_{service}_")))
}

/// One service's memory from the end of warm-up to the end of the run.
#[derive(Debug)]
pub struct MemoryTrend {
    pub container: String,
    pub after_warm_up: u64,
    pub at_end: u64,
    pub peak: u64,
}

impl MemoryTrend {
    /// Flat: at the end within a fifth (or 16 MiB, for small processes) of what it was after
    /// warm-up. A leak grows with traffic and fails it over a long run.
    pub fn is_flat(&self) -> bool {
        let allowance = (self.after_warm_up / 5).max(16 << 20);
        self.at_end <= self.after_warm_up + allowance
    }
}

/// Per container of ours, its memory from the first sample at or after `warm_up` to the last,
/// over the samples of its last process (a restarted instance starts over).
pub fn memory_trends(samples: &[ProcessSample], warm_up: Duration) -> Result<Vec<MemoryTrend>> {
    let mut by_container = BTreeMap::<&str, Vec<&ProcessSample>>::new();
    for sample in samples.iter().filter(|s| is_ours(&s.container)) {
        by_container
            .entry(&sample.container)
            .or_default()
            .push(sample);
    }
    let mut trends = Vec::new();
    for (container, samples) in by_container {
        let last = samples.last().context("a sample")?;
        let same_process: Vec<&&ProcessSample> = samples
            .iter()
            .filter(|s| s.main_pid == last.main_pid && s.at >= warm_up)
            .collect();
        let Some(first) = same_process.first() else {
            continue;
        };
        trends.push(MemoryTrend {
            container: container.to_owned(),
            after_warm_up: first.rss_bytes,
            at_end: last.rss_bytes,
            peak: same_process.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
        });
    }
    Ok(trends)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: u64, container: &str, main_pid: u32, mib: u64) -> ProcessSample {
        ProcessSample {
            at: Duration::from_secs(at),
            container: container.to_owned(),
            main_pid,
            rss_bytes: mib << 20,
            cpu_percent: 0.0,
        }
    }

    #[test]
    fn reads_this_process_from_proc() {
        let (rss, _ticks) = read_process(std::process::id()).expect("this process");
        assert!(rss > 1 << 20, "{rss}");
        assert!(read_process(u32::MAX).is_none());
    }

    #[test]
    fn a_trend_follows_the_last_process_after_warm_up() {
        let samples = [
            sample(0, "p_membership_2", 10, 10),
            sample(10, "p_membership_2", 10, 300),
            // Restarted: only its own samples after warm-up count.
            sample(20, "p_membership_2", 11, 40),
            sample(30, "p_membership_2", 11, 44),
            sample(20, "p_gateway_1", 5, 100),
            sample(30, "p_gateway_1", 5, 200),
            sample(30, "p_redis_1", 7, 999),
        ];
        let trends = memory_trends(&samples, Duration::from_secs(15)).expect("trends");
        let names: Vec<&str> = trends.iter().map(|t| t.container.as_str()).collect();
        assert_eq!(names, ["p_gateway_1", "p_membership_2"]);
        assert_eq!(
            (trends[1].after_warm_up, trends[1].at_end),
            (40 << 20, 44 << 20)
        );
        assert!(trends[1].is_flat());
        assert!(!trends[0].is_flat(), "100 → 200 MiB is growth");
    }
}
