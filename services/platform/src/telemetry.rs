//! Tracing and metrics setup: structured logs, plus OTLP/gRPC export of traces and metrics when
//! an endpoint is configured.
//!
//! Metrics go through the OpenTelemetry metrics API: each service builds its instruments from
//! [`meter`] once at start (after [`init`]), and a periodic reader pushes them to the collector
//! every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (default 60 s). Without an endpoint the
//! global meter provider is the no-op one, so instruments cost next to nothing.

use std::time::Duration;

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the exporters alive; flushes spans and metrics when dropped (this blocks on the
/// exporters: drop it off the async workers, e.g. at the end of `main`).
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take()
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(error = %err, "trace exporter shutdown failed");
        }
        if let Some(provider) = self.meter.take()
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(error = %err, "metrics exporter shutdown failed");
        }
    }
}

/// Log format of the fmt layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber for `service`. `RUST_LOG` filters (default: info). Spans and
/// metrics are exported over OTLP/gRPC only when `otlp_endpoint` is set, so tests need no
/// collector; metrics every `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60 s).
pub fn init(
    service: &'static str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<TelemetryGuard, Box<dyn std::error::Error + Send + Sync>> {
    init_with(service, format, otlp_endpoint, None)
}

/// [`init`] with an explicit metrics export interval (tests use a short one).
pub fn init_with(
    service: &'static str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
    metrics_interval: Option<Duration>,
) -> Result<TelemetryGuard, Box<dyn std::error::Error + Send + Sync>> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().boxed(),
    };
    let (tracer, meter) = match otlp_endpoint.filter(|endpoint| !endpoint.is_empty()) {
        Some(endpoint) => {
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build();
            let span_exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let tracer = SdkTracerProvider::builder()
                .with_batch_exporter(span_exporter)
                .with_resource(resource.clone())
                .build();
            let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let mut reader = PeriodicReader::builder(metric_exporter);
            if let Some(interval) = metrics_interval {
                reader = reader.with_interval(interval);
            }
            let meter = SdkMeterProvider::builder()
                .with_reader(reader.build())
                .with_resource(resource)
                .build();
            opentelemetry::global::set_meter_provider(meter.clone());
            (Some(tracer), Some(meter))
        }
        None => (None, None),
    };
    let otel_layer = tracer
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(service)));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    Ok(TelemetryGuard { tracer, meter })
}

/// The meter of one component (`xintu.gateway`, `xintu.membership`, ...): build instruments from
/// it once, after [`init`] (instruments made before it stay no-ops).
pub fn meter(scope: &'static str) -> Meter {
    opentelemetry::global::meter(scope)
}

/// Bucket bounds, in seconds, for latencies from a millisecond to half a minute (the OpenTelemetry
/// HTTP semantic conventions' bounds, extended for model calls).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
];

/// A latency histogram in seconds with [`SECONDS_BUCKETS`].
pub fn seconds_histogram(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(SECONDS_BUCKETS.to_vec())
        .build()
}

/// Makes `span` continue the W3C trace context (`traceparent`) that came with a request: nginx's
/// span for the gateway, the gateway's for a service. Without one the span starts a trace.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    // Fails only when the span is disabled (filtered out): nothing to continue then.
    let _ = span.set_parent(parent);
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
