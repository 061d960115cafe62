//! Photo service: offline location and album classification (cache, local model, Qwen-VL);
//! image edits to come. Every model call is recorded for the stats service (`model_calls`).

pub mod cache;
pub mod classification;
pub mod config;
pub mod credits;
pub mod domain;
pub mod error;
pub mod geodata;
pub mod grpc;
pub mod local;
pub mod model_calls;
pub mod provider;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use photo_model::{DecodeLimits, LocalClassifier};
use platform::db::Pools;
use platform::grpc::PropagateContext;
use platform::redis::Keys;
use platform::request_log::{Recorder, RecorderSettings};
use proto::photo::v1::classifier_service_server::ClassifierServiceServer;
use proto::photo::v1::location_service_server::LocationServiceServer;
use proto::stats::v1::stats_service_client::StatsServiceClient;

use crate::cache::CacheService;
use crate::classification::{Classifier, ClassifyLimits, CloudPath};
use crate::config::PhotoConfig;
use crate::credits::CreditGate;
use crate::domain::location::Locator;
use crate::grpc::{ClassifierGrpc, LocationGrpc};
use crate::local::LocalModel;
use crate::model_calls::ModelCallRecorder;
use crate::provider::{ModelClient, ProviderSettings};

/// This service's migrations, run only by `photo-svc migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The gRPC service names reported by health checks.
pub const SERVICE_NAMES: &[&str] = &["photo.v1.LocationService", "photo.v1.ClassifierService"];

/// Everything a running instance needs, built once at start.
pub struct Dependencies {
    pub pools: Pools,
    pub redis: ConnectionManager,
    pub locator: Arc<Locator>,
    /// The local classification model, loaded once and shared.
    pub local_classifier: Arc<LocalClassifier>,
}

/// Deadline of one batch of records sent to the stats service.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping instance waits for its last model-call records to be sent.
const RECORDER_FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Builds the gRPC routes of this service; model calls are recorded through `recorder`.
pub fn routes(
    cfg: &PhotoConfig,
    deps: &Dependencies,
    recorder: &ModelCallRecorder,
) -> anyhow::Result<Routes> {
    let classifier = build_classifier(cfg, deps, recorder)?;
    // Uploads travel in the request: the largest batch, plus room for the envelope.
    let max_message = cfg
        .classify_max_image_bytes
        .max(cfg.classify_batch_max_bytes)
        .saturating_add(1024 * 1024);
    Ok(Routes::new(LocationServiceServer::new(LocationGrpc::new(
        deps.locator.clone(),
        cfg.location_batch_max,
    )))
    .add_service(
        ClassifierServiceServer::new(ClassifierGrpc::new(classifier))
            .max_decoding_message_size(max_message),
    ))
}

/// Wires the classification use cases: cache, local model, and the cloud path when a DashScope
/// key is configured; both models record their calls through `recorder`.
pub fn build_classifier(
    cfg: &PhotoConfig,
    deps: &Dependencies,
    recorder: &ModelCallRecorder,
) -> anyhow::Result<Arc<Classifier>> {
    let keys = Keys::new(format!("{}:photo", cfg.redis_key_prefix));
    let cache = CacheService::new(
        deps.pools.clone(),
        deps.redis.clone(),
        keys,
        cfg.classification_cache_ttl_secs,
    );
    let limits = DecodeLimits {
        max_bytes: cfg.classify_max_image_bytes,
        max_width: cfg.classify_max_image_side,
        max_height: cfg.classify_max_image_side,
        ..DecodeLimits::default()
    };
    let local = LocalModel::new(
        deps.local_classifier.clone(),
        cfg.local_model_concurrency,
        limits,
        recorder.clone(),
    );
    let cloud = match cfg
        .dashscope_api_key
        .as_ref()
        .filter(|key| !secrecy::ExposeSecret::expose_secret(*key).is_empty())
    {
        Some(api_key) => {
            let provider = ModelClient::new(
                ProviderSettings {
                    base_url: cfg.dashscope_base_url.clone(),
                    api_key: api_key.clone(),
                    model: cfg.dashscope_vision_model.clone(),
                    attempt_timeout: Duration::from_millis(cfg.dashscope_attempt_timeout_ms),
                    deadline: Duration::from_millis(cfg.dashscope_deadline_ms),
                    max_retries: cfg.dashscope_max_retries,
                    retry_base: Duration::from_millis(cfg.dashscope_retry_base_ms),
                    retry_max: Duration::from_millis(cfg.dashscope_retry_max_ms),
                    max_concurrency: cfg.dashscope_max_concurrency,
                    max_calls_per_second: cfg.dashscope_max_calls_per_second,
                    breaker_failures: cfg.dashscope_breaker_failures,
                    breaker_open: Duration::from_secs(cfg.dashscope_breaker_open_secs),
                    image_max_side: cfg.dashscope_image_max_side,
                },
                recorder.clone(),
            )?;
            let credits = CreditGate::new(
                &cfg.membership_grpc_url,
                Duration::from_millis(cfg.membership_timeout_ms),
                cfg.cloud_credit_hold_secs,
            )?;
            Some(CloudPath::new(provider, credits))
        }
        None => {
            tracing::warn!("DASHSCOPE_API_KEY is not set: cloud classification is off");
            None
        }
    };
    Ok(Classifier::new(
        cache,
        local,
        cloud,
        ClassifyLimits {
            max_image_bytes: cfg.classify_max_image_bytes,
            batch_max: cfg.classify_batch_max,
            lookup_max: cfg.lookup_max,
        },
    ))
}

/// Starts the recorder of model calls when `stats_grpc_url` is set (else one that records
/// nothing); it sends what it holds and ends once `stop` is cancelled.
pub fn start_recorder(
    cfg: &PhotoConfig,
    stop: CancellationToken,
) -> anyhow::Result<ModelCallRecorder> {
    let Some(url) = cfg.stats_grpc_url() else {
        tracing::info!("STATS_GRPC_URL is not set: model calls are not recorded");
        return Ok(ModelCallRecorder::disabled());
    };
    let channel = platform::grpc::channel(url, STATS_TIMEOUT)?;
    let client = StatsServiceClient::with_interceptor(channel, PropagateContext);
    Ok(ModelCallRecorder::new(Recorder::start(
        client,
        RecorderSettings::default(),
        stop,
    )))
}

/// Serves the service on `listener` until `shutdown` is cancelled, recording model calls; the
/// last records are sent once the server has drained.
pub async fn run(
    cfg: &PhotoConfig,
    deps: Dependencies,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let recorder_stop = CancellationToken::new();
    // Stops the recorder however this function ends.
    let stop_recorder = recorder_stop.clone().drop_guard();
    let recorder = start_recorder(cfg, recorder_stop)?;
    let routes = routes(cfg, &deps, &recorder)?;
    tracing::info!(addr = %listener.local_addr()?, "photo service listening");
    let served = platform::grpc::serve(listener, routes, SERVICE_NAMES, shutdown).await;
    drop(stop_recorder);
    if tokio::time::timeout(RECORDER_FLUSH_WAIT, recorder.stopped())
        .await
        .is_err()
    {
        tracing::warn!("model-call records still unsent at exit");
    }
    let sent = recorder.stats();
    tracing::info!(
        sent = sent.sent,
        dropped = sent.dropped,
        "model-call recorder stopped"
    );
    served.map_err(|err| anyhow::anyhow!(err))
}

/// Connects the pools (lazily) and Redis, and loads the location data and the local model. A
/// service without them does not start: it would answer wrongly.
pub async fn connect(cfg: &PhotoConfig) -> anyhow::Result<Dependencies> {
    let pools = Pools::connect_lazy(
        &cfg.database_url,
        cfg.database_replica_url.as_ref(),
        &platform::db::PoolSettings {
            max_connections: cfg.database_max_connections,
            ..Default::default()
        },
    )?;
    let redis = platform::redis::connect(&cfg.redis_url).await?;
    let locator = load_locator(&cfg.geodata_dir()).await?;
    let local_classifier = load_local_classifier(cfg).await?;
    Ok(Dependencies {
        pools,
        redis,
        locator,
        local_classifier,
    })
}

/// Loads the local model's weights and rules on a blocking thread.
pub async fn load_local_classifier(cfg: &PhotoConfig) -> anyhow::Result<Arc<LocalClassifier>> {
    let model_path = cfg.local_model_path();
    let rules_path = cfg.category_rules_path.clone();
    let started = Instant::now();
    let classifier = tokio::task::spawn_blocking(move || {
        local::load_classifier(&model_path, rules_path.as_deref())
    })
    .await??;
    tracing::info!(
        rules = classifier.rules().version(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "local classification model loaded"
    );
    Ok(Arc::new(classifier))
}

/// Loads the location data from `dir` on a blocking thread (it parses some 30 MB).
pub async fn load_locator(dir: &Path) -> anyhow::Result<Arc<Locator>> {
    let dir = dir.to_owned();
    let started = Instant::now();
    let locator = tokio::task::spawn_blocking(move || geodata::load(&dir)).await??;
    let (districts, countries, places) = locator.counts();
    tracing::info!(
        districts,
        countries,
        places,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "location data loaded"
    );
    Ok(Arc::new(locator))
}
