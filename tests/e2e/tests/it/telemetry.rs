//! Observability (issue 8): one request's trace reaches an OTLP receiver with the gateway's span
//! and the membership service's span, joined by the W3C trace context the gateway sends.
//!
//! The tracer provider is global to the process; nextest runs each test in its own process, so
//! this test installs it for itself (under plain `cargo test` other tests' spans may be exported
//! too, which the assertions tolerate).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use e2e::{Options, System};

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
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
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(server))
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
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
