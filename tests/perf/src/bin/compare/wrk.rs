//! Load from wrk: one run per scenario, its requests/s, p99 and failures read from wrk's report.

use std::path::Path;

use anyhow::{Context, bail};

/// What one wrk run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub requests_per_sec: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx/3xx, and socket errors.
    pub failures: u64,
}

/// One request of a mix: path, headers, body.
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// A request mix for wrk: each request takes the next of `requests`, in turn.
pub struct Script {
    pub method: &'static str,
    pub requests: Vec<Request>,
}

impl Script {
    pub fn lua(&self) -> String {
        let quote = |text: &str| format!("{text:?}");
        let mut lua = String::from("local all = {\n");
        for Request {
            path,
            headers,
            body,
        } in &self.requests
        {
            let headers: Vec<String> = headers
                .iter()
                .map(|(name, value)| format!("[{}] = {}", quote(name), quote(value)))
                .collect();
            lua.push_str(&format!(
                "  {{ {}, {{ {} }}, {} }},\n",
                quote(path),
                headers.join(", "),
                body.as_deref().map_or_else(|| "nil".to_owned(), quote)
            ));
        }
        lua.push_str("}\nlocal next = 0\n");
        lua.push_str(&format!(
            "request = function()\n  next = next + 1\n  local r = all[(next % #all) + 1]\n  \
             return wrk.format({}, r[1], r[2], r[3])\nend\n",
            quote(self.method)
        ));
        lua
    }
}

/// Runs wrk against `base` for `seconds` with `connections` on two threads.
pub async fn run(
    base: &str,
    script: &Script,
    seconds: u32,
    connections: u32,
    dir: &Path,
    name: &str,
) -> anyhow::Result<Measured> {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, script.lua())?;
    let output = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--latency", "-s"])
        .arg(&path)
        .arg(base)
        .output()
        .await
        .context("run wrk (apt-get install wrk)")?;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed: {report} {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&report).with_context(|| format!("wrk's report for {name}: {report}"))
}

fn parse(report: &str) -> anyhow::Result<Measured> {
    let mut measured = Measured::default();
    for line in report.lines().map(str::trim) {
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            measured.requests_per_sec = rate.trim().parse()?;
        } else if let Some(p99) = line.strip_prefix("99%") {
            measured.p99_ms = milliseconds(p99.trim())?;
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            measured.failures += count.trim().parse::<u64>()?;
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            measured.failures += errors
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    if measured.requests_per_sec == 0.0 {
        bail!("no Requests/sec line");
    }
    Ok(measured)
}

/// wrk writes latencies as `812.00us`, `3.41ms` or `1.02s`.
fn milliseconds(text: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(us) = text.strip_suffix("us") {
        (us, 0.001)
    } else if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1.0)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000.0)
    } else {
        bail!("latency {text}")
    };
    Ok(number.parse::<f64>()? * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrks_report() {
        let report = "Running 8s test @ http://127.0.0.1:1\n  2 threads and 32 connections\n\
            Latency Distribution\n     50%    1.20ms\n     99%  812.00us\n\
            Requests/sec:   3510.22\nTransfer/sec:      1.02MB\n\
            Non-2xx or 3xx responses: 3\nSocket errors: connect 0, read 2, write 0, timeout 1\n";
        let measured = parse(report).unwrap();
        assert!((measured.requests_per_sec - 3510.22).abs() < 1e-9);
        assert!((measured.p99_ms - 0.812).abs() < 1e-9);
        assert_eq!(measured.failures, 6);
        assert!((milliseconds("1.5s").unwrap() - 1500.0).abs() < 1e-9);
    }
}
