//! The soak's report: operations, per-endpoint latency and errors, errors by kind inside and
//! outside the faults, p99 per endpoint per 10 s, and each container's memory and CPU.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::faults::Window;
use crate::processes::{self, ProcessSample};
use crate::record::{self, Sample};

pub struct Report<'a> {
    pub capacity: f64,
    pub rate: f64,
    /// When the load began and ended, from the recorder's start.
    pub load: (Duration, Duration),
    pub counts: &'a BTreeMap<crate::mix::Operation, (u64, u64)>,
    pub shed: u64,
    pub samples: &'a [Sample],
    pub windows: &'a [Window],
    pub recovery: Duration,
    pub processes: &'a [ProcessSample],
}

fn ms(duration: Duration) -> String {
    format!("{}", duration.as_millis())
}

/// A container's name without the project's prefix and the instance suffix of the first.
fn short(container: &str) -> String {
    let name = container
        .split_once('_')
        .map_or(container, |(_, rest)| rest);
    name.strip_suffix("_1").unwrap_or(name).replace('_', "#")
}

pub fn print(report: &Report<'_>) {
    let (from, to) = report.load;
    let samples: Vec<Sample> = report
        .samples
        .iter()
        .filter(|s| s.sent >= from && s.sent <= to)
        .cloned()
        .collect();
    let seconds = (to - from).as_secs_f64();
    println!(
        "\n== report: capacity {:.1} operations/s, driven at {:.1}/s for {seconds:.0} s: {} \
         requests ({:.0}/s), {} operations shed",
        report.capacity,
        report.rate,
        samples.len(),
        samples.len() as f64 / seconds,
        report.shed
    );

    println!("\noperations (run, failed):");
    for (operation, (run, failed)) in report.counts {
        println!("  {:<14} {run:>8} {failed:>6}", format!("{operation:?}"));
    }

    println!("\nper endpoint:        requests  errors   p50 ms   p99 ms");
    for (endpoint, summary) in record::by_endpoint(&samples) {
        println!(
            "  {endpoint:<22} {:>8} {:>7} {:>8} {:>8}",
            summary.requests,
            summary.errors,
            ms(summary.p50),
            ms(summary.p99)
        );
    }

    let faults: Vec<(Duration, Duration)> = report
        .windows
        .iter()
        .map(|w| (w.from, w.to + report.recovery))
        .collect();
    println!(
        "\nerrors by endpoint and kind (all, in flight during a fault or within {:.0?} after it):",
        report.recovery
    );
    let errors = record::errors_by_kind(&samples, &faults);
    if errors.is_empty() {
        println!("  none");
    }
    for ((endpoint, kind), count) in &errors {
        let first: Vec<String> = count
            .first_sent
            .iter()
            .map(|at| format!("{:.1}", at.saturating_sub(from).as_secs_f64()))
            .collect();
        println!(
            "  {endpoint:<22} {kind:<36} {:>6} {:>6}   first at {} s {}",
            count.all,
            count.in_faults,
            first.join(", "),
            count.detail
        );
    }
    println!("  errors outside the faults: {}", outside_faults(&errors));

    println!("\nfaults:");
    for window in report.windows {
        println!(
            "  {:>6.1}s … {:>6.1}s  {}",
            (window.from.saturating_sub(from)).as_secs_f64(),
            (window.to.saturating_sub(from)).as_secs_f64(),
            window.what
        );
    }

    print_p99_over_time(&samples, from);
    print_processes(report.processes, from);
}

/// Errors sent while no fault was on or recovering.
pub fn outside_faults(errors: &BTreeMap<(&'static str, String), record::ErrorCount>) -> usize {
    errors.values().map(|c| c.all - c.in_faults).sum()
}

fn print_p99_over_time(samples: &[Sample], from: Duration) {
    let window = processes::EVERY;
    let rows = record::p99_over_time(samples, window);
    // The endpoints seen in most windows; the rare ones are in the per-endpoint table.
    let mut seen = BTreeMap::<&str, usize>::new();
    for endpoints in rows.values() {
        for endpoint in endpoints.keys() {
            *seen.entry(endpoint).or_default() += 1;
        }
    }
    let columns: Vec<&str> = seen
        .iter()
        .filter(|(_, n)| **n * 2 >= rows.len())
        .map(|(e, _)| *e)
        .collect();
    println!("\np99 ms per endpoint, per {window:.0?} of send time:");
    print!("  {:>6}", "t (s)");
    for column in &columns {
        print!(" {:>14}", column.rsplit('/').next().unwrap_or(column));
    }
    println!();
    for (slot, endpoints) in &rows {
        print!("  {:>6}", slot.saturating_sub(from.as_secs()));
        for column in &columns {
            match endpoints.get(column) {
                Some(p99) => print!(" {:>14}", ms(*p99)),
                None => print!(" {:>14}", "-"),
            }
        }
        println!();
    }
}

fn print_processes(samples: &[ProcessSample], from: Duration) {
    let containers: BTreeSet<&str> = samples.iter().map(|s| s.container.as_str()).collect();
    println!(
        "\nRSS MiB / CPU % of one core, per container, every {:.0?}:",
        processes::EVERY
    );
    print!("  {:>6}", "t (s)");
    for container in &containers {
        print!(" {:>16}", short(container));
    }
    println!();
    let mut rows = BTreeMap::<u64, BTreeMap<&str, &ProcessSample>>::new();
    for sample in samples {
        rows.entry(sample.at.as_secs() / 10)
            .or_default()
            .insert(&sample.container, sample);
    }
    for (slot, row) in rows {
        print!("  {:>6}", (slot * 10).saturating_sub(from.as_secs()));
        for container in &containers {
            match row.get(container) {
                Some(s) => print!(
                    " {:>16}",
                    format!("{} / {:.0}", s.rss_bytes >> 20, s.cpu_percent)
                ),
                None => print!(" {:>16}", "-"),
            }
        }
        println!();
    }
}
