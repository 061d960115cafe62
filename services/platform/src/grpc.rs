//! gRPC plumbing: a server with health, reflection, the service-token check and a request span
//! per call, and client channels that carry the service token, the request id and W3C trace
//! context into every service.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::Injector;
use proto::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::service::{Interceptor, Routes};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Status};
use tower_http::trace::{MakeSpan, TraceLayer};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::request_id;

mod discover;
mod request_scope;
mod service_auth;
mod watched;

pub use service_auth::{InvalidServiceToken, ServiceChannel, ServiceToken};
pub use watched::WatchedChannel;

/// The status metadata key that carries our stable, snake_case error code (for the gateway).
pub const ERROR_CODE_KEY: &str = "x-error-code";

/// Builds a status with a stable error code in its metadata.
pub fn status(code: tonic::Code, error_code: ErrorCode, message: impl Into<String>) -> Status {
    let mut status = Status::new(code, message);
    status.metadata_mut().insert(
        ERROR_CODE_KEY,
        MetadataValue::from_static(error_code.as_str()),
    );
    status
}

/// Returns the stable error code a service put on `status`, if any. A code this build does not
/// know (a newer service during a rolling deploy) counts as none, and is logged.
pub fn error_code(status: &Status) -> Option<ErrorCode> {
    let sent = status.metadata().get(ERROR_CODE_KEY)?;
    let code = sent.to_str().ok().and_then(|name| name.parse().ok());
    if code.is_none() {
        tracing::warn!(error_code = ?sent, "a service sent an error code this build does not know");
    }
    code
}

/// Whether a call failed in the transport rather than in the service: the connection broke
/// under the request (the instance was killed or ran out of memory, a proxy cut it). tonic
/// reports that as UNKNOWN "transport error"; like UNAVAILABLE, another instance (or a retry of
/// an idempotent call) may well succeed.
pub fn transport_failed(status: &Status) -> bool {
    if status.code() == tonic::Code::Unavailable {
        return true;
    }
    if status.code() != tonic::Code::Unknown || error_code(status).is_some() {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::transport::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Whether a server answers gRPC reflection: a map of every method, handy with grpcurl on a
/// developer's machine and withheld in production, where it only helps whoever got inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reflection {
    On,
    Off,
}

impl Reflection {
    /// Off when `XINTU_ENV` is `production`, on elsewhere.
    pub fn for_env(xintu_env: &str) -> Self {
        if xintu_env == "production" {
            Self::Off
        } else {
            Self::On
        }
    }
}

/// Serves `routes` on `listener` with gRPC health (each name in `services` reported serving) and,
/// when asked, reflection, until `shutdown` is cancelled; in-flight calls finish first. Every
/// call must carry one of `token`'s accepted tokens, except a health check without any token
/// (see [`ServiceToken`]); reflection is behind the token too (grpcurl takes it with `-H`).
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    services: &[&str],
    reflection: Reflection,
    token: ServiceToken,
    shutdown: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in services {
        health_reporter
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = match reflection {
        Reflection::On => Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .build_v1()?,
        ),
        Reflection::Off => None,
    };
    Server::builder()
        .timeout(Duration::from_secs(30))
        .layer(TraceLayer::new_for_grpc().make_span_with(GrpcRequestSpan))
        .layer(request_scope::ScopeRequestIdLayer)
        .layer(service_auth::RequireServiceTokenLayer::new(token))
        .add_routes(routes)
        .add_service(health_service)
        .add_optional_service(reflection)
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The accepted connections of `listener`, with Nagle's algorithm off. A server given its own
/// listener does not apply its `tcp_nodelay` setting, and with Nagle on, an answer written as
/// several frames (headers, data, trailers) waits for the caller's delayed ACK: 40 ms a call.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Makes the server span of one call: its path, the gateway's request id, and the caller's trace
/// as parent.
#[derive(Clone, Copy, Debug)]
struct GrpcRequestSpan;

impl<B> MakeSpan<B> for GrpcRequestSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> tracing::Span {
        let request_id = request
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let span = tracing::info_span!(
            "grpc",
            otel.kind = "server",
            rpc = %request.uri().path(),
            request_id = %request_id,
        );
        crate::telemetry::continue_trace(&span, request.headers());
        span
    }
}

/// Client interceptor: copies the current request id and trace context into the call metadata.
#[derive(Clone, Copy, Debug, Default)]
pub struct PropagateContext;

impl Interceptor for PropagateContext {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(id) = request_id::current()
            && let Ok(value) = MetadataValue::try_from(id.as_str())
        {
            request.metadata_mut().insert(request_id::HEADER, value);
        }
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        });
        Ok(request)
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// A channel to one service that carries `token` on every call. `urls` is a comma-separated
/// list of instance entries, each a static address or a name that resolves to every instance (a
/// compose service scaled with `--scale`, a Kubernetes headless Service). Calls are spread over
/// all instances; the entries are resolved and probed again every few seconds, so instances that
/// start or stop are noticed without a restart (one pinned HTTP/2 connection would send
/// everything to one instance). Connections are made lazily, so a client can be built before its
/// peers run. Needs a Tokio runtime.
pub fn channel(
    urls: &str,
    timeout: Duration,
    token: &ServiceToken,
) -> Result<ServiceChannel, tonic::transport::Error> {
    balanced_channel(urls, timeout).map(|channel| token.attach(channel))
}

fn balanced_channel(
    urls: &str,
    timeout: Duration,
) -> Result<WatchedChannel, tonic::transport::Error> {
    let endpoints = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            Endpoint::from_shared(url.to_owned()).map(|endpoint| {
                endpoint
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(timeout)
                    .tcp_nodelay(true)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let entries: Option<Vec<_>> = endpoints
        .iter()
        .map(|endpoint| discover::Entry::new(endpoint, timeout))
        .collect();
    match (endpoints.as_slice(), entries) {
        // One fixed address has nothing to discover or route around.
        ([single], _) if is_ip_literal(single) => Ok(single.connect_lazy().into()),
        (_, Some(entries)) if !entries.is_empty() => {
            let (channel, changes) = Channel::balance_channel(64);
            let call_failed = Arc::new(Notify::new());
            tokio::spawn(discover::run(entries, changes, call_failed.clone()));
            Ok(WatchedChannel::new(channel, call_failed))
        }
        // No host to resolve (or no entry at all): tonic reports the problem on the first call.
        _ => Ok(Channel::balance_list(endpoints.into_iter()).into()),
    }
}

fn is_ip_literal(endpoint: &Endpoint) -> bool {
    endpoint
        .uri()
        .host()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .is_some_and(|host| host.parse::<std::net::IpAddr>().is_ok())
}

/// Exits with an error unless the gRPC server at `addr` reports itself serving.
pub async fn healthcheck(addr: &str) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(addr.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    if answer.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
        Ok(())
    } else {
        anyhow::bail!("not serving: status {}", answer.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a service said is not a transport failure, even as UNKNOWN; a broken connection
    /// (the gateway's error tests cut one) is.
    #[test]
    fn only_the_transport_fails_in_the_transport() {
        assert!(transport_failed(&Status::unavailable("connection refused")));
        assert!(!transport_failed(&Status::unknown("transport error")));
        assert!(!transport_failed(&Status::internal("sql")));
        let coded = status(
            tonic::Code::Unknown,
            ErrorCode::Internal,
            "said by a service",
        );
        assert!(!transport_failed(&coded));
    }

    #[tokio::test]
    async fn the_request_id_travels_in_call_metadata() {
        let request = request_id::scope("req-42".to_owned(), async {
            PropagateContext.call(Request::new(())).expect("intercept")
        })
        .await;
        assert_eq!(
            request
                .metadata()
                .get(request_id::HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("req-42")
        );
        let outside = PropagateContext.call(Request::new(())).expect("intercept");
        assert!(outside.metadata().get(request_id::HEADER).is_none());
    }

    #[tokio::test]
    async fn served_connections_have_nagle_off() {
        use tokio_stream::StreamExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let stream = accepted
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(stream.nodelay().expect("nodelay"));
    }

    const TOKEN: &str = "current-service-token-0123456789abcdef";

    /// A server on a loopback port with `reflection`, accepting `accepted`; its URL and stop.
    async fn start(reflection: Reflection, accepted: &str) -> (String, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let token = ServiceToken::parse(accepted).expect("token");
        tokio::spawn(serve(
            listener,
            Routes::default(),
            &["test"],
            reflection,
            token,
            shutdown.clone(),
        ));
        (url, shutdown)
    }

    fn plain(url: &str) -> Channel {
        Endpoint::from_shared(url.to_owned())
            .expect("endpoint")
            .connect_lazy()
    }

    fn with_token(url: &str, token: &str) -> ServiceChannel {
        ServiceToken::parse(token)
            .expect("token")
            .attach(plain(url))
    }

    /// Lists the services a server reflects over `channel`, or the status it refuses with.
    async fn reflected<T>(channel: T) -> Result<Vec<String>, Status>
    where
        T: tonic::client::GrpcService<tonic::body::Body>,
        T::Error: Into<tonic::codegen::StdError>,
        T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

        let mut client = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner();
        let mut names = Vec::new();
        while let Some(message) = stream.message().await? {
            if let Some(MessageResponse::ListServicesResponse(list)) = message.message_response {
                names.extend(list.service.into_iter().map(|s| s.name));
            }
        }
        Ok(names)
    }

    /// The health status a server reports over `channel`, or the status it refuses with.
    async fn health<T>(channel: T) -> Result<i32, Status>
    where
        T: tonic::client::GrpcService<tonic::body::Body>,
        T::Error: Into<tonic::codegen::StdError>,
        T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
    {
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        Ok(client.check(request).await?.into_inner().status)
    }

    #[tokio::test]
    async fn reflection_is_withheld_in_production() {
        assert_eq!(Reflection::for_env("production"), Reflection::Off);
        assert_eq!(Reflection::for_env("local"), Reflection::On);
        let (url, on) = start(Reflection::On, TOKEN).await;
        let listed = reflected(with_token(&url, TOKEN))
            .await
            .expect("reflection answers");
        assert!(
            listed.iter().any(|name| name.starts_with("membership.v1.")),
            "{listed:?}"
        );
        on.cancel();
        let (url, off) = start(Reflection::Off, TOKEN).await;
        let refused = reflected(with_token(&url, TOKEN))
            .await
            .expect_err("no reflection");
        assert_eq!(refused.code(), tonic::Code::Unimplemented);
        off.cancel();
    }

    #[tokio::test]
    async fn calls_need_an_accepted_service_token() {
        let previous = "previous-service-token-0123456789abcd";
        let (url, stop) = start(Reflection::On, &format!("{TOKEN},{previous}")).await;
        let wrong = "wrong-service-token-0123456789abcdefgh";
        let refusals = [
            reflected(plain(&url)).await.expect_err("no token"),
            reflected(with_token(&url, wrong))
                .await
                .expect_err("a wrong token"),
            health(with_token(&url, wrong))
                .await
                .expect_err("a wrong token, even for health"),
        ];
        for refused in refusals {
            assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
            assert_eq!(error_code(&refused), Some(ErrorCode::ServiceTokenRefused));
        }
        // The current token and, while a new one is rolled out, the previous one are accepted.
        for token in [TOKEN, previous] {
            let listed = reflected(with_token(&url, token)).await.expect(token);
            assert!(!listed.is_empty());
            assert_eq!(health(with_token(&url, token)).await.expect(token), 1);
        }
        // Probes present no token: health answers them, as `healthcheck` shows.
        assert_eq!(health(plain(&url)).await.expect("open health"), 1);
        healthcheck(&url).await.expect("the binaries' healthcheck");
        stop.cancel();
    }

    /// An instance that stopped stays in the balancer until discovery's next round, and its
    /// connection, refused at once, makes it the first pick. A call refused before any of it
    /// was sent goes to another instance: no call sent after the stop fails.
    #[tokio::test]
    async fn calls_sent_after_an_instance_stopped_reach_a_live_one() {
        let (live, _live_stop) = start(Reflection::On, TOKEN).await;
        let (stopping, stop) = start(Reflection::On, TOKEN).await;
        let token = ServiceToken::parse(TOKEN).expect("token");
        let channel = super::channel(
            &format!("{live},{stopping}"),
            Duration::from_secs(5),
            &token,
        )
        .expect("channel");
        // Both instances in the balancer and connected.
        for _ in 0..20 {
            assert_eq!(health(channel.clone()).await.expect("both up"), 1);
        }
        stop.cancel();
        let addr = stopping.trim_start_matches("http://").to_owned();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut failed = Vec::new();
        for call in 0..40 {
            if let Err(status) = health(channel.clone()).await {
                failed.push((call, status.code(), status.message().to_owned()));
            }
        }
        assert!(failed.is_empty(), "calls failed after the stop: {failed:?}");
    }

    /// A call whose request went out to an instance that then broke the connection is not sent
    /// again: the instance may have carried it out (a payment, a credit).
    #[tokio::test]
    async fn a_call_cut_after_its_request_went_out_is_not_sent_again() {
        use tokio::io::AsyncReadExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        // Reads what a client sends until it pauses, then hangs up without an answer.
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0_u8; 4096];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
                {
                    if n == 0 {
                        break;
                    }
                }
            }
        });
        let channel = super::channel(
            &url,
            Duration::from_secs(5),
            &ServiceToken::parse(TOKEN).expect("token"),
        )
        .expect("channel");
        let failed = health(channel).await.expect_err("no answer");
        assert_ne!(failed.code(), tonic::Code::Ok);
        // Longer than every pause before a new try.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn error_codes_ride_on_status_metadata() {
        let status = status(
            tonic::Code::NotFound,
            ErrorCode::EditNotFound,
            "no such edit",
        );
        assert_eq!(error_code(&status), Some(ErrorCode::EditNotFound));
        assert_eq!(error_code(&Status::internal("x")), None);
        let mut unknown = Status::not_found("from a newer service");
        unknown
            .metadata_mut()
            .insert(ERROR_CODE_KEY, MetadataValue::from_static("order_lost"));
        assert_eq!(error_code(&unknown), None);
    }
}
