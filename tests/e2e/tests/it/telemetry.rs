//! Observability: one request's trace, entering through nginx with a W3C trace context, reaches an
//! OTLP receiver with the gateway's span, the membership service's span and its database calls,
//! joined by the trace context each hop sends; the services' metrics reach the same receiver with
//! the counts of what was done.
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
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, ResourceMetrics};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use e2e::edge::Nginx;
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

    /// Starts a receiver and points this process's telemetry at it (metrics every
    /// `metrics_interval`, else the default minute).
    async fn install(
        metrics_interval: Option<Duration>,
    ) -> (Self, platform::telemetry::TelemetryGuard) {
        let (receiver, endpoint) = Self::start().await;
        let telemetry = platform::telemetry::init_with(
            "xintu-e2e",
            platform::telemetry::LogFormat::Json,
            Some(&endpoint),
            metrics_interval,
        )
        .unwrap();
        (receiver, telemetry)
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
        match self.metric(scope, name)?.data? {
            Data::Sum(sum) => number(&sum.data_points, attributes),
            _ => None,
        }
    }

    /// The value of gauge `name` for the data point carrying every one of `attributes`.
    fn gauge(&self, scope: &str, name: &str, attributes: &[(&str, &str)]) -> Option<i64> {
        match self.metric(scope, name)?.data? {
            Data::Gauge(gauge) => number(&gauge.data_points, attributes),
            _ => None,
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

/// The value of the point carrying every one of `attributes`, as an integer.
fn number(points: &[NumberDataPoint], attributes: &[(&str, &str)]) -> Option<i64> {
    let point = points
        .iter()
        .find(|p| has_attributes(&p.attributes, attributes))?;
    match point.value? {
        number_data_point::Value::AsInt(value) => Some(value),
        number_data_point::Value::AsDouble(value) => Some(value as i64),
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
    let (receiver, telemetry) = Receiver::install(None).await;

    let system = System::start(Options::default()).await;
    // Through the edge, as nginx with its OpenTelemetry module sends it: a traceparent naming
    // nginx's span (Debian's nginx has no such module; it passes the header on unchanged).
    let nginx = Nginx::start(&system.gateway_urls).await;
    let (trace_id, nginx_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", nginx.url))
        .header("traceparent", format!("00-{trace_id}-{nginx_span}-01"))
        .json(&serde_json::json!({ "client_id": "otel-client" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The batch exporter sends every few seconds; wait for the trace, bounded.
    let (http, grpc) = wait_for_spans(&receiver, "a gateway span joined by membership", |spans| {
        joined_trace(spans, "/api/v1/auth/wechat/qrcode")
    })
    .await;
    // The gateway's span continues nginx's trace, below nginx's span.
    assert_eq!(hex::encode(&http.trace_id), trace_id);
    assert_eq!(hex::encode(&http.parent_span_id), nginx_span);
    assert_eq!(http.kind, SpanKind::Server as i32);
    // The membership span continues the gateway's trace rather than starting its own.
    assert_eq!(grpc.trace_id, http.trace_id);
    assert!(!grpc.parent_span_id.is_empty(), "membership span is a root");
    assert_ne!(grpc.span_id, http.span_id);

    // The QR code's row is written on the primary: that call is a client span below the
    // membership span, in the same trace.
    let db_calls = wait_for_spans(&receiver, "the QR code's database calls", |spans| {
        let calls: Vec<Span> = spans
            .iter()
            .filter(|s| {
                s.trace_id == http.trace_id && attribute(s, "db.system.name") == Some("mysql")
            })
            .cloned()
            .collect();
        calls
            .iter()
            .any(|s| s.name == "bindings.upsert_pending")
            .then_some(calls)
    })
    .await;
    let spans = receiver.spans.lock().unwrap().clone();
    for call in &db_calls {
        assert_eq!(call.kind, SpanKind::Client as i32, "{}", call.name);
        assert!(
            descends_from(&spans, call, &grpc),
            "{} is not below the membership span",
            call.name
        );
        assert!(call.end_time_unix_nano >= call.start_time_unix_nano);
    }

    system.stop();
    flush(telemetry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_calls_made_for_a_request_carry_its_id_to_membership() {
    use crate::edit::support::{form, photo};
    let (receiver, telemetry) = Receiver::install(None).await;
    let app = crate::classify::support::bound_app(Options::default(), "o_traced_credits").await;
    // An unsure photo: the classification holds a credit at membership, then spends it (from a
    // task detached from the request).
    let body = app
        .classify_photo_with_id("astronaut.png", None, "req-traced-classify")
        .await;
    assert_eq!(body["credits_charged"], 1, "{body}");
    // An edit: the credit is held while the request is served, and spent later by the worker.
    let (done, edit_request) = app
        .edit_to_end(
            form(photo(), "free_text", &[("prompt", "海滩")]),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(done["credits_charged"], 1, "{done}");

    // Membership's span of each of those calls names the request it was made for.
    let expected = [
        ("req-traced-classify", "Reserve"),
        ("req-traced-classify", "Commit"),
        (edit_request.as_str(), "Reserve"),
        (edit_request.as_str(), "Commit"),
    ];
    for (request_id, method) in expected {
        let rpc = format!("/membership.v1.CreditService/{method}");
        wait_for_spans(&receiver, &format!("{rpc} for {request_id}"), |spans| {
            spans.iter().find(|s| {
                s.name == "grpc"
                    && attribute(s, "rpc") == Some(rpc.as_str())
                    && attribute(s, "request_id") == Some(request_id)
            })?;
            Some(())
        })
        .await;
    }

    app.system.stop();
    flush(telemetry).await;
}

/// Shuts the exporters down, sending what they hold: that blocks, so off the async workers.
async fn flush(telemetry: platform::telemetry::TelemetryGuard) {
    tokio::task::spawn_blocking(move || drop(telemetry))
        .await
        .unwrap();
}

/// True when `span`'s chain of parents (within the received spans) reaches `ancestor`.
fn descends_from(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut parent = span.parent_span_id.clone();
    // Bounded: a broken export cannot loop forever.
    for _ in 0..spans.len() {
        if parent == ancestor.span_id {
            return true;
        }
        match spans
            .iter()
            .find(|s| s.trace_id == span.trace_id && s.span_id == parent)
        {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

/// Waits (bounded) until `check` finds what it wants in the receiver's spans.
async fn wait_for_spans<T>(
    receiver: &Receiver,
    what: &str,
    check: impl Fn(&[Span]) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check(&receiver.spans.lock().unwrap()) {
            return found;
        }
        let names: Vec<String> = receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert!(
            Instant::now() < deadline,
            "{what} never arrived; spans received: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    let (receiver, telemetry) = Receiver::install(Some(Duration::from_millis(300))).await;
    let system = System::start(Options::default()).await;

    // Three QR codes and one refused binding poll through the gateway.
    for i in 0..3 {
        system.create_qrcode(&format!("metrics-client-{i}")).await;
    }
    let refused = system.binding("metrics-client-0", "ct_wrong").await;
    assert_eq!(e2e::api::refusal(refused).status, 401);

    // Credits: a purchase grants 10, one charge spends 3, its retry is a duplicate.
    let openid = "o_metrics";
    let browser = system.sign_in(openid).await;
    let created = browser.create_order(e2e::api::credits_order(10)).await;
    let order_no = created.order.order_no.clone();
    system.sandbox.pay(&order_no).await.unwrap();
    browser.wait_for_order(&order_no, "paid").await;
    let user_id = system.user_id(openid).await;
    let mut credits = system.credit_client();
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
    flush(telemetry).await;
}

/// The port of the lagging replica the tests may pause.
fn lagging_replica_port() -> String {
    // mysql://user:password@host:port, without a database.
    let url = std::env::var("XINTU_TEST_MYSQL_LAGGING_REPLICA").unwrap();
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned()
}

// Named `replica_lags_*` so nextest runs it alone in the lagging-replica group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_lags_and_stops_show_in_the_replica_gauges() {
    let (receiver, telemetry) = Receiver::install(Some(Duration::from_millis(300))).await;
    let db = platform::testing::TestDatabase::create(
        "replica_gauges",
        platform::testing::Replica::Lagging,
    )
    .await;
    let pools = db.pools();
    // The primary is no replica: nothing to report rather than a made-up zero.
    assert_eq!(
        platform::replica_status::read(&pools.primary)
            .await
            .unwrap(),
        None
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let monitor = pools
        .spawn_replica_monitor(Duration::from_millis(200), stop.clone())
        .expect("a separate replica is monitored");

    let port = lagging_replica_port();
    let this_replica = [("server.port", port.as_str())];
    let gauge = |name: &str| receiver.gauge("xintu.db", name, &this_replica);
    wait_for_metrics(&receiver, "replicating = 1", || {
        gauge("xintu.db.replica.replicating").filter(|v| *v == 1)
    })
    .await;

    // Delayed by ten minutes, the replica falls behind by the age of the primary's last write.
    let delay = db.delay_replica(600).await;
    let primary = db.primary().await;
    sqlx::query("CREATE TABLE lag_probe (id INT PRIMARY KEY)")
        .execute(&primary)
        .await
        .unwrap();
    let lag = wait_for_metrics(&receiver, "a lag of 2 s or more", || {
        gauge("xintu.db.replica.lag").filter(|v| *v >= 2)
    })
    .await;
    assert!(
        lag < 600,
        "lag {lag} s counts from the write, not the delay"
    );
    assert_eq!(gauge("xintu.db.replica.replicating"), Some(1));
    drop(delay);

    // A stopped SQL thread reads as not replicating.
    db.pause_replica().await;
    wait_for_metrics(&receiver, "replicating = 0", || {
        gauge("xintu.db.replica.replicating").filter(|v| *v == 0)
    })
    .await;
    db.resume_replica().await;
    wait_for_metrics(&receiver, "replicating again, caught up", || {
        (gauge("xintu.db.replica.replicating") == Some(1))
            .then(|| gauge("xintu.db.replica.lag"))
            .flatten()
            .filter(|v| *v == 0)
    })
    .await;

    stop.cancel();
    monitor.await.unwrap();
    db.drop_database().await;
    flush(telemetry).await;
}
