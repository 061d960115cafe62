//! Observability (issue 8): one request's trace reaches an OTLP receiver with the gateway's span
//! and the membership service's span, joined by the W3C trace context the gateway sends; the
//! services' metrics reach the same receiver with the counts of what was done.
//!
//! The tracer and meter providers are global to the process; nextest runs each test in its own
//! process, so each test installs them for itself (the subscriber can be installed once per
//! process: run these tests with nextest).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use e2e::{Options, System};

/// An OTLP/gRPC receiver that keeps every span and every metrics export it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
    /// Metrics exports in arrival order (cumulative: the last one holds the totals).
    metrics: Arc<Mutex<Vec<ResourceMetrics>>>,
}

impl Receiver {
    /// Serves the receiver on a loopback port; returns its endpoint.
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = receiver.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(server.clone()))
                .add_service(MetricsServiceServer::new(server))
                .serve_with_incoming(TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        (receiver, endpoint)
    }

    /// The latest export of metric `name` in meter scope `scope`.
    fn metric(&self, scope: &str, name: &str) -> Option<Metric> {
        let exports = self.metrics.lock().unwrap();
        exports.iter().rev().find_map(|resource| {
            resource
                .scope_metrics
                .iter()
                .filter(|s| s.scope.as_ref().is_some_and(|s| s.name == scope))
                .flat_map(|s| s.metrics.iter())
                .find(|m| m.name == name)
                .cloned()
        })
    }

    /// The value of counter `name` for the data point carrying every one of `attributes`.
    fn counter(&self, scope: &str, name: &str, attributes: &[(&str, &str)]) -> Option<i64> {
        let Some(Data::Sum(sum)) = self.metric(scope, name)?.data else {
            return None;
        };
        let point = sum
            .data_points
            .iter()
            .find(|p| has_attributes(&p.attributes, attributes))?;
        match point.value {
            Some(number_data_point::Value::AsInt(value)) => Some(value),
            Some(number_data_point::Value::AsDouble(value)) => Some(value as i64),
            None => None,
        }
    }

    /// (count, sum) of histogram `name` for the data point carrying every one of `attributes`.
    fn histogram(
        &self,
        scope: &str,
        name: &str,
        attributes: &[(&str, &str)],
    ) -> Option<(u64, f64)> {
        let Some(Data::Histogram(histogram)) = self.metric(scope, name)?.data else {
            return None;
        };
        let point = histogram
            .data_points
            .iter()
            .find(|p| has_attributes(&p.attributes, attributes))?;
        Some((point.count, point.sum.unwrap_or_default()))
    }

    /// Every metric name received, for failure messages.
    fn names(&self) -> Vec<String> {
        let exports = self.metrics.lock().unwrap();
        let mut names: Vec<String> = exports
            .iter()
            .flat_map(|r| r.scope_metrics.iter())
            .flat_map(|s| s.metrics.iter().map(|m| m.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// An attribute value as text (string, int or bool), for matching.
fn value_text(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn has_attributes(actual: &[KeyValue], wanted: &[(&str, &str)]) -> bool {
    wanted.iter().all(|(key, value)| {
        actual
            .iter()
            .any(|kv| kv.key == *key && value_text(kv).as_deref() == Some(*value))
    })
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.metrics
            .lock()
            .unwrap()
            .extend(request.into_inner().resource_metrics);
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

/// The gateway's HTTP span for `path` and the membership server span in the same trace.
fn joined_trace(spans: &[Span], path: &str) -> Option<(Span, Span)> {
    spans
        .iter()
        .filter(|s| s.name == "http" && attribute(s, "path") == Some(path))
        .find_map(|http| {
            spans
                .iter()
                .find(|s| {
                    s.name == "grpc"
                        && s.trace_id == http.trace_id
                        && attribute(s, "rpc").is_some_and(|rpc| rpc.starts_with("/membership."))
                })
                .map(|grpc| (http.clone(), grpc.clone()))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_trace_reaches_the_otlp_receiver_from_gateway_and_membership() {
    let (receiver, endpoint) = Receiver::start().await;
    let telemetry = platform::telemetry::init(
        "xintu-e2e",
        platform::telemetry::LogFormat::Json,
        Some(&endpoint),
    )
    .unwrap();

    let system = System::start(Options::default()).await;
    let qr = system.create_qrcode("otel-client").await;
    assert!(qr["client_token"].is_string(), "{qr}");

    // The batch exporter sends every few seconds; wait for the trace, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (http, grpc) = loop {
        let found = joined_trace(
            &receiver.spans.lock().unwrap(),
            "/api/v1/auth/wechat/qrcode",
        );
        if let Some(found) = found {
            break found;
        }
        let names: Vec<String> = receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{} {:?} {:?}",
                    s.name,
                    attribute(s, "path"),
                    attribute(s, "rpc")
                )
            })
            .collect();
        assert!(
            Instant::now() < deadline,
            "no trace with gateway and membership spans; received: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The membership span continues the gateway's trace rather than starting its own.
    assert_eq!(grpc.trace_id, http.trace_id);
    assert!(!grpc.parent_span_id.is_empty(), "membership span is a root");
    assert_ne!(grpc.span_id, http.span_id);

    system.stop();
    // Shutting the provider down blocks on the exporter; keep that off the async workers.
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap();
}

/// Waits (bounded) until `check` finds what it wants in the receiver's metrics.
async fn wait_for_metrics<T>(receiver: &Receiver, what: &str, check: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never arrived; metrics received: {:?}",
            receiver.names()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const GATEWAY: &str = "xintu.gateway";
const MEMBERSHIP: &str = "xintu.membership";
const QRCODE_ROUTE: &str = "/api/v1/auth/wechat/qrcode";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_credit_metrics_reach_the_otlp_receiver() {
    let (receiver, endpoint) = Receiver::start().await;
    let telemetry = platform::telemetry::init_with(
        "xintu-e2e",
        platform::telemetry::LogFormat::Json,
        Some(&endpoint),
        Some(Duration::from_millis(300)),
    )
    .unwrap();
    let system = System::start(Options::default()).await;

    // Three QR codes and one refused binding poll through the gateway.
    for i in 0..3 {
        system.create_qrcode(&format!("metrics-client-{i}")).await;
    }
    let (status, _) = system.binding("metrics-client-0", "ct_wrong").await;
    assert_eq!(status, 401);

    // Credits: a purchase grants 10, one charge spends 3, its retry is a duplicate.
    let openid = "o_metrics";
    let browser = system.sign_in(openid).await;
    let created = browser
        .create_order(serde_json::json!({ "order_type": "credits", "credits_amount": 10 }))
        .await;
    let order_no = created["order"]["order_no"].as_str().unwrap().to_owned();
    system.sandbox.pay(&order_no).await.unwrap();
    browser.wait_for_order(&order_no, "paid").await;
    let user_id = system.user_id(openid).await;
    let mut credits = system.credit_client().await;
    for _ in 0..2 {
        credits
            .charge(proto::membership::v1::ChargeRequest {
                user_id,
                amount: 3,
                reference: "metrics-task".into(),
            })
            .await
            .unwrap();
    }

    let qrcodes = [
        ("http.route", QRCODE_ROUTE),
        ("http.request.method", "POST"),
        ("http.response.status_code", "200"),
    ];
    let answered = wait_for_metrics(&receiver, "the gateway's QR code count", || {
        receiver
            .counter(GATEWAY, "xintu.gateway.requests", &qrcodes)
            .filter(|n| *n >= 3)
    })
    .await;
    assert_eq!(answered, 3, "exactly the three QR codes asked for");
    let (count, seconds) = receiver
        .histogram(GATEWAY, "xintu.gateway.request.duration", &qrcodes)
        .expect("the QR code latency histogram");
    assert_eq!(count, 3);
    assert!(
        seconds > 0.0 && seconds < 30.0,
        "three QR codes took {seconds} s in all"
    );
    let refused = wait_for_metrics(&receiver, "the gateway's error count", || {
        receiver.counter(
            GATEWAY,
            "xintu.gateway.errors",
            &[
                ("http.route", "/api/v1/auth/wechat/binding"),
                ("http.response.status_code", "401"),
            ],
        )
    })
    .await;
    assert_eq!(refused, 1);

    let operation = |operation: &str, outcome: &str| {
        receiver.counter(
            MEMBERSHIP,
            "xintu.membership.credit.operations",
            &[("operation", operation), ("outcome", outcome)],
        )
    };
    wait_for_metrics(&receiver, "the duplicate charge", || {
        operation("charge", "duplicate")
    })
    .await;
    assert_eq!(operation("charge", "ok"), Some(1));
    assert_eq!(operation("charge", "duplicate"), Some(1));
    assert_eq!(operation("grant", "ok"), Some(1), "the purchase's grant");
    let amount = |operation: &str| {
        receiver.counter(
            MEMBERSHIP,
            "xintu.membership.credit.amount",
            &[("operation", operation)],
        )
    };
    assert_eq!(amount("grant"), Some(10));
    assert_eq!(amount("charge"), Some(3));
    assert_eq!(
        receiver.counter(
            MEMBERSHIP,
            "xintu.membership.payments",
            &[("outcome", "applied")]
        ),
        Some(1)
    );

    system.stop();
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap();
}
