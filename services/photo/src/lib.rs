//! Photo service: offline location, album classification (cache, local model, Qwen-VL) and
//! image edits (Bailian's wanx2.1-imageedit and qwen-image-edit, paid by credits). Every model
//! call is recorded for the stats service (`model_calls`).
//!
//! One folder per feature: `location/`, `classify/` and `edit/`, each with its gRPC adapter
//! (`grpc.rs`: proto in, a call, proto out; no rules) and its rules free of transport and
//! storage (`domain/`; location's rules are the `location` crate, over data files it loads at
//! start). Classification and edits keep their SQL in `store.rs`. `dashscope/` holds the clients
//! of DashScope that classification and edits call.

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod classify;
pub mod config;
pub mod credits;
pub mod dashscope;
pub mod decode_budget;
pub mod edit;
pub mod error;
pub mod location;
pub mod metrics;
pub mod model_calls;
pub mod owners;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use photo_model::{DecodeLimits, LocalClassifier};
use platform::db::Pools;
use platform::grpc::PropagateContext;
use platform::redis::Redis;
use platform::request_log::{Recorder, RecorderSettings};
use proto::photo::v1::classifier_service_server::ClassifierServiceServer;
use proto::photo::v1::image_edit_service_server::ImageEditServiceServer;
use proto::photo::v1::location_service_server::LocationServiceServer;
use proto::stats::v1::stats_service_client::StatsServiceClient;

use crate::classify::cache::CacheService;
use crate::classify::local::LocalModel;
use crate::classify::{Classifier, ClassifierGrpc, ClassifyLimits, CloudPath};
use crate::config::PhotoConfig;
use crate::credits::CreditGate;
use crate::dashscope::ModelClient;
use crate::dashscope::image_edit::{EditProvider, EditProviderSettings};
use crate::decode_budget::DecodeBudget;
use crate::edit::domain::UrlSigner;
use crate::edit::storage::LocalDirStore;
use crate::edit::{EditService, ImageEditGrpc};
use crate::location::{LocationGrpc, Locator};
use crate::model_calls::ModelCallRecorder;
use crate::owners::ClientOwners;

/// This service's migrations, run only by `photo-svc migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The gRPC service names reported by health checks.
pub const SERVICE_NAMES: &[&str] = &[
    "photo.v1.LocationService",
    "photo.v1.ClassifierService",
    "photo.v1.ImageEditService",
];

/// Everything a running instance needs, built once at start.
pub struct Dependencies {
    pub pools: Pools,
    pub redis: Redis,
    pub locator: Arc<Locator>,
    /// The local classification model, loaded once and shared.
    pub local_classifier: Arc<LocalClassifier>,
}

/// Deadline of one batch of records sent to the stats service.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping instance waits for its last model-call records to be sent.
const RECORDER_FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Builds the gRPC routes of this service around `edits` (whose worker [`run`] starts); model
/// calls are recorded through `recorder`.
pub fn routes(
    cfg: &PhotoConfig,
    deps: &Dependencies,
    recorder: &ModelCallRecorder,
    edits: Arc<EditService>,
    budget: &DecodeBudget,
) -> anyhow::Result<Routes> {
    let classifier = build_classifier(cfg, deps, recorder, budget)?;
    let limits = &cfg.photo_limits;
    Ok(Routes::new(LocationServiceServer::new(LocationGrpc::new(
        deps.locator.clone(),
        limits.location_batch_max,
    )))
    .add_service(
        // Uploads travel in the request.
        ClassifierServiceServer::new(ClassifierGrpc::new(classifier))
            .max_decoding_message_size(limits.classify_message_bytes()),
    )
    .add_service(
        ImageEditServiceServer::new(ImageEditGrpc::new(edits))
            .max_decoding_message_size(limits.edit_message_bytes())
            .max_encoding_message_size(cfg.edits.max_result_bytes + 1024 * 1024),
    ))
}

/// The memory budget every image decode of one instance shares (`[decode]`).
pub fn decode_budget(cfg: &PhotoConfig) -> DecodeBudget {
    DecodeBudget::new(
        cfg.decode.decode_budget_bytes,
        cfg.decode.decode_budget_wait,
    )
}

/// Wires image edits: our storage, the provider client (when a DashScope key is configured),
/// credits and the URL signer; their images are decoded within `budget`.
pub fn build_edits(
    cfg: &PhotoConfig,
    deps: &Dependencies,
    recorder: &ModelCallRecorder,
    budget: &DecodeBudget,
) -> anyhow::Result<Arc<EditService>> {
    let edits = &cfg.edits;
    let storage = Arc::new(LocalDirStore::new(edits.storage_dir()));
    let provider = match cfg.dashscope.api_key() {
        Some(api_key) => Some(Arc::new(EditProvider::new(EditProviderSettings {
            base_url: cfg.dashscope.base_url.clone(),
            api_key,
            call_timeout: edits.call_timeout,
            sync_timeout: edits.sync_timeout,
            max_result_bytes: edits.max_result_bytes,
        })?)),
        None => None,
    };
    let credits = CreditGate::new(
        &cfg.membership_grpc_url,
        Duration::from_millis(cfg.membership_timeout_ms),
        &cfg.service.service_token,
        cfg.classify.cloud_credit_hold_secs,
    )?;
    let owners = ClientOwners::new(
        &cfg.membership_grpc_url,
        Duration::from_millis(cfg.membership_timeout_ms),
        &cfg.service.service_token,
    )?;
    Ok(EditService::new(
        deps.pools.clone(),
        storage,
        provider,
        credits,
        owners,
        recorder.clone(),
        UrlSigner::new(edits.url_secret.clone()),
        edits.clone(),
        cfg.photo_limits.edit_max_image_bytes,
        budget.clone(),
    ))
}

/// Wires the classification use cases: cache, local model, and the cloud path when a DashScope
/// key is configured; both models record their calls through `recorder`, and images are
/// decoded within `budget`.
pub fn build_classifier(
    cfg: &PhotoConfig,
    deps: &Dependencies,
    recorder: &ModelCallRecorder,
    budget: &DecodeBudget,
) -> anyhow::Result<Arc<Classifier>> {
    let keys = cfg.redis.keys("photo");
    let classify = &cfg.classify;
    let cache = CacheService::new(
        deps.pools.clone(),
        deps.redis.clone(),
        keys,
        classify.classification_cache_ttl_secs,
    );
    let limits = DecodeLimits {
        max_bytes: cfg.photo_limits.classify_max_image_bytes,
        max_width: classify.classify_max_image_side,
        max_height: classify.classify_max_image_side,
        ..DecodeLimits::default()
    };
    let local = LocalModel::new(
        deps.local_classifier.clone(),
        classify.local_model_concurrency,
        limits,
        budget.clone(),
        recorder.clone(),
    );
    let cloud = match cfg.dashscope.api_key() {
        Some(api_key) => {
            let provider = ModelClient::new(cfg.dashscope.clone(), api_key, recorder.clone())?;
            let credits = CreditGate::new(
                &cfg.membership_grpc_url,
                Duration::from_millis(cfg.membership_timeout_ms),
                &cfg.service.service_token,
                classify.cloud_credit_hold_secs,
            )?;
            Some(CloudPath::new(
                provider,
                credits,
                cache.clone(),
                local.clone(),
            ))
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
            max_image_bytes: cfg.photo_limits.classify_max_image_bytes,
            batch_max: cfg.photo_limits.classify_batch_max,
            lookup_max: cfg.photo_limits.lookup_max,
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
    let channel = platform::grpc::channel(url, STATS_TIMEOUT, &cfg.service.service_token)?;
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
    let budget = decode_budget(cfg);
    let edits = build_edits(cfg, &deps, &recorder, &budget)?;
    let routes = routes(cfg, &deps, &recorder, edits.clone(), &budget)?;
    // The worker carries on every instance's edit tasks; it stops (draining its steps) with
    // the server.
    let worker = tokio::spawn(edit::worker::run(edits, shutdown.clone()));
    let cache_retention = spawn_cache_retention(cfg, &deps.pools, shutdown.clone());
    let replica_monitor = deps
        .pools
        .spawn_replica_monitor(cfg.database.replica_status_interval(), shutdown.clone());
    tracing::info!(addr = %listener.local_addr()?, "photo service listening");
    let served = platform::grpc::serve(
        listener,
        routes,
        SERVICE_NAMES,
        cfg.service.reflection(),
        cfg.service.service_token.clone(),
        shutdown,
    )
    .await;
    if let Err(err) = worker.await {
        tracing::error!(error = %err, "edit worker ended abnormally");
    }
    for handle in [cache_retention, replica_monitor].into_iter().flatten() {
        let _ = handle.await;
    }
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

/// Deletes stored classification results past `classification_cache_retention_days` every
/// `classification_cache_retention_interval_ms`; None when either is 0. Every instance may run
/// it: each round is plain deletes by age.
fn spawn_cache_retention(
    cfg: &PhotoConfig,
    pools: &Pools,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let days = cfg.classify.classification_cache_retention_days;
    if days == 0 || cfg.classify.classification_cache_retention_interval_ms == 0 {
        return None;
    }
    let interval = Duration::from_millis(
        cfg.classify
            .classification_cache_retention_interval_ms
            .max(10),
    );
    let pools = pools.clone();
    Some(platform::shutdown::every(interval, shutdown, move || {
        let pools = pools.clone();
        async move {
            let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
            match classify::cache::purge_stored_before(&pools, before).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(
                    deleted,
                    "classification results past their retention deleted"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "classification cache retention round failed")
                }
            }
        }
    }))
}

/// Connects the pools (lazily) and Redis, and loads the location data and the local model. A
/// service without them does not start: it would answer wrongly.
pub async fn connect(cfg: &PhotoConfig) -> anyhow::Result<Dependencies> {
    let pools = cfg.database.connect_lazy()?;
    let redis = cfg.redis.connect().await?;
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
    let rules_path = cfg.classify.category_rules_path.clone();
    let started = Instant::now();
    let classifier = tokio::task::spawn_blocking(move || {
        classify::local::load_classifier(&model_path, rules_path.as_deref())
    })
    .await??;
    tracing::info!(
        rules = classifier.rules().version(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "local classification model loaded"
    );
    Ok(Arc::new(classifier))
}

/// Loads the location data from `dir` on a blocking thread (it parses some 50 MB).
pub async fn load_locator(dir: &Path) -> anyhow::Result<Arc<Locator>> {
    let dir = dir.to_owned();
    let started = Instant::now();
    let locator = tokio::task::spawn_blocking(move || location::geodata::load(&dir)).await??;
    let (districts, countries, divisions, places) = locator.counts();
    tracing::info!(
        districts,
        countries,
        divisions,
        places,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "location data loaded"
    );
    Ok(Arc::new(locator))
}
