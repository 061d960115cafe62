//! Classification metrics (OpenTelemetry; names listed in the README's metrics table): result
//! cache lookups by layer and result, and model calls (local, cloud) by outcome with their time.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

/// Which copy of the result cache was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLayer {
    Redis,
    Database,
}

/// Which model was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Local,
    Cloud,
}

#[derive(Clone, Debug)]
pub struct PhotoMetrics {
    /// `xintu.photo.cache.lookups` {layer = redis | database, result = hit | miss | error}
    cache_lookups: Counter<u64>,
    /// `xintu.photo.model.calls` {model = local | cloud, outcome}
    model_calls: Counter<u64>,
    /// `xintu.photo.model.duration` (s) {model, outcome}
    model_duration: Histogram<f64>,
}

impl Default for PhotoMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PhotoMetrics {
    /// Builds the instruments from the global meter provider (call after telemetry init).
    pub fn new() -> Self {
        let meter = platform::telemetry::meter("xintu.photo");
        Self {
            cache_lookups: meter
                .u64_counter("xintu.photo.cache.lookups")
                .with_unit("{key}")
                .with_description(
                    "Classification results looked up, per key, by layer (redis, then database \
                     for what redis lacked) and result (hit, miss, error)",
                )
                .build(),
            model_calls: meter
                .u64_counter("xintu.photo.model.calls")
                .with_unit("{call}")
                .with_description(
                    "Model calls by model (local, cloud) and outcome (ok, or why not: \
                     overloaded, bad_image, timeout, rate_limited, moderation_rejected, ...)",
                )
                .build(),
            model_duration: platform::telemetry::seconds_histogram(
                &meter,
                "xintu.photo.model.duration",
                "Time of one model call (local: queue, decode and inference; cloud: all \
                 attempts), by model and outcome",
            ),
        }
    }

    /// Counts `count` keys looked up in `layer` with `result`.
    pub fn cache(&self, layer: CacheLayer, result: &'static str, count: usize) {
        if count == 0 {
            return;
        }
        let layer = match layer {
            CacheLayer::Redis => "redis",
            CacheLayer::Database => "database",
        };
        self.cache_lookups.add(
            count as u64,
            &[
                KeyValue::new("layer", layer),
                KeyValue::new("result", result),
            ],
        );
    }

    /// Counts one model call.
    pub fn model_call(&self, model: Model, outcome: &'static str, elapsed: Duration) {
        let model = match model {
            Model::Local => "local",
            Model::Cloud => "cloud",
        };
        let attributes = [
            KeyValue::new("model", model),
            KeyValue::new("outcome", outcome),
        ];
        self.model_calls.add(1, &attributes);
        self.model_duration
            .record(elapsed.as_secs_f64(), &attributes);
    }
}
