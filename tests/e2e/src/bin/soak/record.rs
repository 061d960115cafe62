//! Every request the soak sends, as it went: endpoint, when it was sent, how long it took and how
//! it ended; and what the report makes of them (errors by kind and endpoint, p99 per endpoint
//! per window).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How a request ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// An HTTP answer; `code` is the error code of an error body.
    Answered { status: u16, code: String },
    /// No answer: timeout, refused or reset connection (`kind`), and the client's own words.
    Transport { kind: String, detail: String },
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub endpoint: &'static str,
    pub sent: Duration,
    pub latency: Duration,
    pub outcome: Outcome,
}

impl Sample {
    /// The error's kind (`503 unavailable`, `transport: timeout`), or `None` for a success.
    pub fn error_kind(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Answered { status, .. } if *status < 400 => None,
            Outcome::Answered { status, code } if code.is_empty() => Some(status.to_string()),
            Outcome::Answered { status, code } => Some(format!("{status} {code}")),
            Outcome::Transport { kind, .. } => Some(format!("transport: {kind}")),
        }
    }
}

/// What one call gave back to the operation that made it.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

/// The samples of the whole run, and the ids of the requests the gateway answered.
pub struct Recorder {
    started: Instant,
    samples: Mutex<Vec<Sample>>,
    request_ids: Mutex<Vec<String>>,
}

/// The error code of the API's error bodies (the gateway's and the edges' alike).
fn error_code(body: &Value) -> String {
    body["error"]["code"]
        .as_str()
        .or_else(|| body["code"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// nginx answers these itself when no gateway answered; the request never reached one.
const EDGE_OWN_CODES: [&str; 2] = ["upstream_unavailable", "upstream_timeout"];

fn transport_kind(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else if err.is_connect() {
        "connect".into()
    } else if err.is_body() || err.is_decode() {
        "body".into()
    } else {
        "request".into()
    }
}

impl Recorder {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            samples: Mutex::new(Vec::new()),
            request_ids: Mutex::new(Vec::new()),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn push(&self, sample: Sample) {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(sample);
    }

    /// Sends `request`, records it under `endpoint`, and returns the answer (`None` when there was
    /// none). A request the gateway answered leaves its `x-request-id` for the record check.
    pub async fn send(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Option<Answer> {
        let sent = self.started.elapsed();
        let result = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        }
        .await;
        let latency = self.started.elapsed().saturating_sub(sent);
        match result {
            Ok((status, headers, bytes)) => {
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let code = if status >= 400 {
                    error_code(&body)
                } else {
                    String::new()
                };
                let from_gateway = !EDGE_OWN_CODES.contains(&code.as_str());
                if let (true, Some(id)) = (
                    from_gateway,
                    headers.get("x-request-id").and_then(|v| v.to_str().ok()),
                ) {
                    self.request_ids
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(id.to_owned());
                }
                self.push(Sample {
                    endpoint,
                    sent,
                    latency,
                    outcome: Outcome::Answered { status, code },
                });
                Some(Answer {
                    status,
                    body,
                    headers,
                })
            }
            Err(err) => {
                self.push(Sample {
                    endpoint,
                    sent,
                    latency,
                    outcome: Outcome::Transport {
                        kind: transport_kind(&err),
                        detail: format!("{:#}", anyhow::Error::from(err)),
                    },
                });
                None
            }
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn request_ids(&self) -> Vec<String> {
        self.request_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The `q` quantile (0..=1) of `values`, which it sorts.
pub fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    // Nearest rank: the smallest value with at least q of the values at or below it.
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Errors of one endpoint and kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ErrorCount {
    pub all: usize,
    /// In flight at some time of a fault's window (the fault and its recovery time).
    pub in_faults: usize,
    /// When the first few were sent, and what the client said of the first that had no answer.
    pub first_sent: Vec<Duration>,
    pub detail: String,
}

/// Errors per (endpoint, kind), and how many of them were in flight during one of `windows`.
pub fn errors_by_kind(
    samples: &[Sample],
    windows: &[(Duration, Duration)],
) -> BTreeMap<(&'static str, String), ErrorCount> {
    let mut errors = BTreeMap::<(&'static str, String), ErrorCount>::new();
    for sample in samples {
        if let Some(kind) = sample.error_kind() {
            let entry = errors.entry((sample.endpoint, kind)).or_default();
            entry.all += 1;
            let answered = sample.sent + sample.latency;
            if windows
                .iter()
                .any(|(from, to)| sample.sent <= *to && answered >= *from)
            {
                entry.in_faults += 1;
            }
            if entry.first_sent.len() < 3 {
                entry.first_sent.push(sample.sent);
            }
            if let (Outcome::Transport { detail, .. }, true) =
                (&sample.outcome, entry.detail.is_empty())
            {
                entry.detail.clone_from(detail);
            }
        }
    }
    errors
}

/// Per endpoint: requests, errors and latency quantiles over the whole run.
pub struct EndpointSummary {
    pub requests: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
}

pub fn by_endpoint(samples: &[Sample]) -> BTreeMap<&'static str, EndpointSummary> {
    let mut latencies = BTreeMap::<&'static str, (Vec<Duration>, usize)>::new();
    for sample in samples {
        let entry = latencies.entry(sample.endpoint).or_default();
        entry.0.push(sample.latency);
        entry.1 += usize::from(sample.error_kind().is_some());
    }
    latencies
        .into_iter()
        .map(|(endpoint, (mut values, errors))| {
            let requests = values.len();
            let p50 = quantile(&mut values, 0.5);
            let p99 = quantile(&mut values, 0.99);
            (
                endpoint,
                EndpointSummary {
                    requests,
                    errors,
                    p50,
                    p99,
                },
            )
        })
        .collect()
}

/// p99 latency per endpoint per `window` of send time: rows of (window start, endpoint → p99).
pub fn p99_over_time(
    samples: &[Sample],
    window: Duration,
) -> BTreeMap<u64, BTreeMap<&'static str, Duration>> {
    let mut grouped = BTreeMap::<u64, BTreeMap<&'static str, Vec<Duration>>>::new();
    for sample in samples {
        let slot = sample.sent.as_secs() / window.as_secs().max(1) * window.as_secs().max(1);
        grouped
            .entry(slot)
            .or_default()
            .entry(sample.endpoint)
            .or_default()
            .push(sample.latency);
    }
    grouped
        .into_iter()
        .map(|(slot, endpoints)| {
            (
                slot,
                endpoints
                    .into_iter()
                    .map(|(endpoint, mut values)| (endpoint, quantile(&mut values, 0.99)))
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let mut values: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&mut values, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&mut [], 0.99), Duration::ZERO);
        assert_eq!(
            quantile(&mut [Duration::from_millis(7)], 0.99),
            Duration::from_millis(7)
        );
    }

    fn answered(endpoint: &'static str, sent: u64, status: u16, code: &str) -> Sample {
        Sample {
            endpoint,
            sent: Duration::from_secs(sent),
            latency: Duration::from_millis(5),
            outcome: Outcome::Answered {
                status,
                code: code.to_owned(),
            },
        }
    }

    #[test]
    fn errors_are_counted_by_kind_and_by_fault_window() {
        let samples = [
            answered("location", 1, 200, ""),
            answered("location", 2, 503, "unavailable"),
            answered("location", 12, 503, "unavailable"),
            answered("auth/qrcode", 12, 429, ""),
            // Sent before the fault, still waiting when it began: the fault's.
            Sample {
                latency: Duration::from_secs(2),
                ..answered("photos/classify", 9, 504, "service_timeout")
            },
            Sample {
                outcome: Outcome::Transport {
                    kind: "timeout".into(),
                    detail: String::new(),
                },
                ..answered("photos/lookup", 30, 0, "")
            },
        ];
        let errors = errors_by_kind(
            &samples,
            &[(Duration::from_secs(10), Duration::from_secs(20))],
        );
        let counts = |endpoint, kind: &str| {
            let count = &errors[&(endpoint, kind.to_owned())];
            (count.all, count.in_faults)
        };
        assert_eq!(counts("location", "503 unavailable"), (2, 1));
        assert_eq!(counts("auth/qrcode", "429"), (1, 1));
        assert_eq!(counts("photos/lookup", "transport: timeout"), (1, 0));
        assert_eq!(
            errors[&("location", "503 unavailable".to_owned())].first_sent,
            [Duration::from_secs(2), Duration::from_secs(12)]
        );
        assert_eq!(counts("photos/classify", "504 service_timeout"), (1, 1));
        assert_eq!(errors.len(), 4, "a 200 is no error: {errors:?}");
    }
}
