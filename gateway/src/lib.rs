//! The edge gateway: REST and WeChat XML in, gRPC calls to the services out.

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod admin;
pub mod binding_changes;
pub mod client_cache;
pub mod config;
pub mod cookie_keys;
pub mod erasure;
pub mod error;
pub mod export;
pub mod extract;
pub mod metrics;
pub mod ratelimit;
pub mod recording;
pub mod routes;
pub mod session;
pub mod session_cookie;
pub mod wechat;

use proto::ErrorCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use platform::grpc::{PropagateContext, ServiceChannel};
use proto::membership::v1::admin_service_client::AdminServiceClient;
use proto::membership::v1::binding_service_client::BindingServiceClient;
use proto::membership::v1::credit_service_client::CreditServiceClient;
use proto::membership::v1::member_service_client::MemberServiceClient;
use proto::membership::v1::order_service_client::OrderServiceClient;
use proto::membership::v1::personal_data_service_client::PersonalDataServiceClient;
use proto::photo::v1::classifier_service_client::ClassifierServiceClient;
use proto::photo::v1::image_edit_service_client::ImageEditServiceClient;
use proto::photo::v1::location_service_client::LocationServiceClient;
use proto::stats::v1::stats_service_client::StatsServiceClient;

use crate::config::GatewayConfig;
use crate::ratelimit::Limits;
use crate::wechat::PushCodec;

type Intercepted = InterceptedService<ServiceChannel, PropagateContext>;

/// gRPC clients, built once; cloning one per request is cheap.
#[derive(Clone)]
pub struct Clients {
    pub binding: BindingServiceClient<Intercepted>,
    pub member: MemberServiceClient<Intercepted>,
    pub order: OrderServiceClient<Intercepted>,
    /// Balances for the apps' account route.
    pub credit: CreditServiceClient<Intercepted>,
    pub membership_channel: ServiceChannel,
    pub location: LocationServiceClient<Intercepted>,
    /// Classification, on a channel of its own with a longer deadline (it may ask the cloud).
    pub classifier: ClassifierServiceClient<Intercepted>,
    /// Image edits (uploads in, stored results out).
    pub edit: ImageEditServiceClient<Intercepted>,
    pub photo_channel: ServiceChannel,
    pub admin: AdminServiceClient<Intercepted>,
    /// Personal data exports and erasures.
    pub personal_data: PersonalDataServiceClient<Intercepted>,
    pub stats: StatsServiceClient<Intercepted>,
    pub stats_channel: ServiceChannel,
}

impl Clients {
    pub fn connect(cfg: &GatewayConfig) -> Result<Self, tonic::transport::Error> {
        let timeout = Duration::from_millis(cfg.grpc_timeout_ms);
        let token = &cfg.service.service_token;
        let membership = platform::grpc::channel(&cfg.membership_grpc_url, timeout, token)?;
        let photo = platform::grpc::channel(&cfg.photo_grpc_url, timeout, token)?;
        let stats = platform::grpc::channel(&cfg.stats_grpc_url, timeout, token)?;
        let classify = platform::grpc::channel(
            &cfg.photo_grpc_url,
            Duration::from_millis(cfg.classify_timeout_ms),
            token,
        )?;
        Ok(Self {
            binding: BindingServiceClient::with_interceptor(membership.clone(), PropagateContext),
            member: MemberServiceClient::with_interceptor(membership.clone(), PropagateContext),
            order: OrderServiceClient::with_interceptor(membership.clone(), PropagateContext),
            credit: CreditServiceClient::with_interceptor(membership.clone(), PropagateContext),
            admin: AdminServiceClient::with_interceptor(membership.clone(), PropagateContext),
            personal_data: PersonalDataServiceClient::with_interceptor(
                membership.clone(),
                PropagateContext,
            ),
            membership_channel: membership,
            location: LocationServiceClient::with_interceptor(photo.clone(), PropagateContext),
            classifier: ClassifierServiceClient::with_interceptor(classify, PropagateContext)
                .max_encoding_message_size(cfg.photo_limits.classify_message_bytes()),
            // Results come back in small chunks (StreamEditResult), never whole.
            edit: ImageEditServiceClient::with_interceptor(photo.clone(), PropagateContext)
                .max_encoding_message_size(cfg.photo_limits.edit_message_bytes()),
            photo_channel: photo,
            stats: StatsServiceClient::with_interceptor(stats.clone(), PropagateContext),
            stats_channel: stats,
        })
    }
}

/// Shared by every handler. Extractors and middleware clone it several times per request, so a
/// clone is one reference count, not a copy of every gRPC client.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub cfg: Arc<GatewayConfig>,
    pub clients: Clients,
    pub push: PushCodec,
    pub limits: Limits,
    /// Sign the member session, admin session and OAuth-state cookies, one key each.
    pub cookie_keys: cookie_keys::CookieKeys,
    /// Sends request records to the stats service.
    pub recorder: platform::request_log::Recorder,
    /// Request counts and latencies (OpenTelemetry).
    pub metrics: metrics::RequestMetrics,
    /// Shared counters and admin sessions; connected on first use, bounded per command.
    pub redis: platform::redis::Redis,
    /// Refuses stale and replayed WeChat pushes, across instances.
    pub replay: wechat::replay::ReplayGuard,
    /// Bound app tokens, remembered while binding changes arrive.
    pub client_cache: client_cache::ClientCache,
    /// Long polls waiting for a binding to change.
    pub binding_waiters: binding_changes::Waiters,
    /// Stops the recorder after the server has drained (it then flushes what it holds).
    recorder_stop: CancellationToken,
}

impl AppState {
    pub fn new(cfg: GatewayConfig) -> anyhow::Result<Self> {
        let clients = Clients::connect(&cfg)?;
        // An empty WECHAT_AES_KEY (as compose passes an unset one) means plain mode.
        let aes_key = cfg
            .wechat_aes_key
            .as_ref()
            .filter(|key| !secrecy::ExposeSecret::expose_secret(*key).is_empty());
        let push = PushCodec::new(cfg.wechat_token.clone(), aes_key, &cfg.wechat_appid)?;
        let secret = secrecy::ExposeSecret::expose_secret(&cfg.session_secret).as_bytes();
        anyhow::ensure!(
            secret.len() >= 32,
            "session_secret must be at least 32 bytes"
        );
        let cookie_keys = cookie_keys::CookieKeys::derive(secret);
        let recorder_stop = CancellationToken::new();
        let recorder = if cfg.request_logging {
            platform::request_log::Recorder::start(
                clients.stats.clone(),
                platform::request_log::RecorderSettings {
                    flush_interval: Duration::from_millis(cfg.request_log_flush_ms.max(10)),
                    ..Default::default()
                },
                recorder_stop.clone(),
            )
        } else {
            platform::request_log::Recorder::disabled()
        };
        let redis = platform::redis::Redis::new(&cfg.redis.redis_url)?;
        let limits = Limits::new(&cfg, &redis);
        let client_cache =
            client_cache::ClientCache::new(Duration::from_secs(cfg.token_cache_ttl_secs));
        let replay = wechat::replay::ReplayGuard::new(
            redis.clone(),
            &cfg.redis.redis_key_prefix,
            Duration::from_secs(cfg.push_max_age_secs),
        );
        Ok(Self(Arc::new(Shared {
            cfg: Arc::new(cfg),
            clients,
            push,
            limits,
            cookie_keys,
            recorder,
            metrics: metrics::RequestMetrics::new(),
            recorder_stop,
            redis,
            replay,
            client_cache,
            binding_waiters: binding_changes::Waiters::default(),
        })))
    }
}

/// The gateway's router with its middleware.
pub fn app(state: AppState) -> Router {
    let request_timeout = Duration::from_millis(state.cfg.request_timeout_ms);
    let body_limit = state.cfg.max_body_bytes;
    let api = Router::new()
        .route(
            "/api/v1/auth/wechat/qrcode",
            post(routes::auth::create_qrcode),
        )
        .route("/api/v1/auth/wechat/unbind", post(routes::auth::unbind))
        .route(
            "/api/v1/auth/wechat/verify",
            get(routes::wechat::verify_url).post(routes::wechat::receive_push),
        )
        .route(
            "/api/v1/member/oauth/authorize",
            get(routes::member::authorize),
        )
        .route(
            "/api/v1/member/oauth/callback",
            get(routes::member::callback),
        )
        .route("/api/v1/account", get(routes::account::account))
        .route("/api/v1/member/profile", get(routes::member::profile))
        .route(
            "/api/v1/member/reminders",
            post(routes::member::set_reminders),
        )
        .route("/api/v1/member/devices", get(routes::devices::list))
        .route("/api/v1/member/data", get(routes::personal_data::export))
        .route("/api/v1/member/erasure", post(routes::personal_data::erase))
        .route(
            "/api/v1/member/devices/{client_id}/sign-out",
            post(routes::devices::sign_out),
        )
        .route(
            "/api/v1/payment/create-order",
            post(routes::payment::create_order),
        )
        .route(
            "/api/v1/payment/orders/{order_no}",
            get(routes::payment::get_order),
        )
        .route("/api/v1/payment/notify", post(routes::payment::notify))
        .route(
            "/api/v1/payment/v3-notify",
            post(routes::payment::v3_notify),
        )
        .route(
            "/api/v1/payment/refund-notify",
            post(routes::payment::refund_notify),
        )
        .route("/api/v1/location", get(routes::location::locate))
        .route(
            "/api/v1/location/batch",
            post(routes::location::locate_batch),
        )
        .merge(routes::photos::router(&state.cfg))
        .merge(routes::admin::router(&state))
        .route("/api/v1/openapi.json", get(routes::openapi::document))
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            request_timeout,
        ))
        // A long poll waits up to binding_wait_max_secs; each of its calls has its own deadline.
        .route(
            "/api/v1/auth/wechat/binding",
            get(routes::auth::binding_status),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            recording::record,
        ))
        // Health probes are the orchestrator's (every few seconds), not users': neither recorded
        // for the statistics nor counted in the request metrics. Each answers within its own
        // deadlines.
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .with_state(state);
    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(platform::request_id::HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let span = tracing::info_span!("http", otel.kind = "server", method = %request.method(), path = %request.uri().path(), request_id);
                // nginx's span, where its OpenTelemetry module runs, is the parent.
                platform::telemetry::continue_trace(&span, request.headers());
                span
            }))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(axum::extract::DefaultBodyLimit::max(body_limit))
            .layer(middleware::from_fn(scope_request_id)),
    )
}

/// Makes the request id visible to error bodies and gRPC calls made for this request.
async fn scope_request_id(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("")
        .to_owned();
    platform::request_id::scope(id, next.run(request)).await
}

async fn not_found() -> error::ApiError {
    error::ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// How long a stopping gateway waits for the request recorder's last flush.
const RECORDER_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// Serves the gateway on `listener` until `shutdown`; in-flight requests finish first, then the
/// request recorder flushes, and only then does this return.
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cleanup = state.limits.spawn_cleanup(shutdown.clone());
    let subscriber = binding_changes::spawn_subscriber(
        state.cfg.redis.redis_url.clone(),
        format!(
            "{}:{}",
            state.cfg.redis.redis_key_prefix,
            proto::membership::v1::BINDING_CHANGES_CHANNEL
        ),
        state.client_cache.clone(),
        state.binding_waiters.clone(),
        shutdown.clone(),
    );
    let erasures = erasure::spawn_retries(
        state.clone(),
        Duration::from_secs(state.cfg.erasure_retry_secs),
        shutdown.clone(),
    );
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    let recorder_stop = state.recorder_stop.clone();
    let recorder = state.recorder.clone();
    // Nagle's algorithm off: an answer written in parts (headers, then a streamed body) must not
    // wait for the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
    });
    let served = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await;
    tracing::info!("gateway drained");
    // The last requests are recorded: the recorder flushes once the server has drained, and the
    // process waits for it (the flush would die with the runtime otherwise).
    recorder_stop.cancel();
    if !recorder.finished(RECORDER_FLUSH_LIMIT).await {
        tracing::warn!("request recorder did not finish flushing in time");
    }
    let _ = cleanup.await;
    let _ = subscriber.await;
    if let Some(erasures) = erasures {
        let _ = erasures.await;
    }
    served?;
    Ok(())
}
