//! The gateway's request metrics (OpenTelemetry; names listed in the README's metrics table):
//! every answered request counted and timed by route template, method and status, answers of
//! 400 and above also by their error code, and the requests in flight.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};

#[derive(Clone, Debug)]
pub struct RequestMetrics {
    /// `xintu.gateway.requests` {http.route, http.request.method, http.response.status_code}
    requests: Counter<u64>,
    /// `xintu.gateway.request.duration` (s), same attributes
    duration: Histogram<f64>,
    /// `xintu.gateway.errors` {http.route, http.response.status_code, error.type}
    errors: Counter<u64>,
    /// `xintu.gateway.requests.active`
    active: UpDownCounter<i64>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestMetrics {
    /// Builds the instruments from the global meter provider (call after telemetry init).
    pub fn new() -> Self {
        let meter = platform::telemetry::meter("xintu.gateway");
        Self {
            requests: meter
                .u64_counter("xintu.gateway.requests")
                .with_unit("{request}")
                .with_description("HTTP requests answered, by route template, method and status")
                .build(),
            duration: platform::telemetry::seconds_histogram(
                &meter,
                "xintu.gateway.request.duration",
                "Time from receiving a request to its answer, by route, method and status",
            ),
            errors: meter
                .u64_counter("xintu.gateway.errors")
                .with_unit("{request}")
                .with_description(
                    "Answers with status 400 or above, by route, status and the error code of \
                     the body",
                )
                .build(),
            active: meter
                .i64_up_down_counter("xintu.gateway.requests.active")
                .with_unit("{request}")
                .with_description("Requests being worked on")
                .build(),
        }
    }

    /// Counts a request as started; the guard counts it as finished when dropped (also when the
    /// request is abandoned: a client that hung up, a timeout).
    pub fn started(&self) -> ActiveGuard {
        self.active.add(1, &[]);
        ActiveGuard {
            active: self.active.clone(),
        }
    }

    /// Records one answered request.
    pub fn answered(
        &self,
        route: &str,
        method: &str,
        status: u16,
        error_code: &str,
        elapsed: Duration,
    ) {
        let attributes = [
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ];
        self.requests.add(1, &attributes);
        self.duration.record(elapsed.as_secs_f64(), &attributes);
        if status >= 400 {
            let error_type = if error_code.is_empty() {
                status.to_string()
            } else {
                error_code.to_owned()
            };
            self.errors.add(
                1,
                &[
                    KeyValue::new("http.route", route.to_owned()),
                    KeyValue::new("http.response.status_code", i64::from(status)),
                    KeyValue::new("error.type", error_type),
                ],
            );
        }
    }
}

/// Decrements `xintu.gateway.requests.active` when dropped.
pub struct ActiveGuard {
    active: UpDownCounter<i64>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.active.add(-1, &[]);
    }
}
