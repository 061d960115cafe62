//! A photo service instance for the system under test: its own fresh database (migrated), the
//! real location data and the real local model, loaded once per test process and shared by every
//! instance in it. Its cloud model is the sandbox's DashScope; its credits are the membership
//! instances'; it records its model calls to the stats service when the gateways record requests.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use photo_model::LocalClassifier;
use photo_svc::config::PhotoConfig;
use photo_svc::location::Locator;
use platform::testing::TestDatabase;
use sandbox::Sandbox;

use crate::Options;

/// A running photo service.
pub struct PhotoService {
    pub url: String,
    pub db: TestDatabase,
}

/// Classification settings of the system under test. The defaults keep tests quick: short
/// retry pauses and attempt timeouts, a breaker that opens after three failed attempts.
#[derive(Clone, Debug)]
pub struct PhotoOptions {
    /// Configure the DashScope key (the sandbox's); without it the cloud is off.
    pub cloud: bool,
    pub max_retries: usize,
    pub retry_base_ms: u64,
    pub attempt_timeout_ms: u64,
    pub breaker_failures: u32,
    pub breaker_open_secs: u64,
    /// The gateway's per-client allowances of photos and of lookups.
    pub photos_per_client_per_minute: u32,
    pub lookups_per_client_per_minute: u32,
    /// Image edits: a task's deadline, the poll interval, the lease of a worker step, and the
    /// free-text model.
    pub edit_deadline_secs: u64,
    pub edit_poll_ms: u64,
    pub edit_lease_secs: u64,
    /// Timeout of a task submission and of each poll: a submission that outlasts it is taken as
    /// not made and sent again (and the provider runs both).
    pub edit_call_timeout_ms: u64,
    pub edit_free_text_model: String,
    /// How long stored results are kept after their task succeeded (looked at every 100 ms).
    pub edit_result_retention_secs: u64,
    /// How long stored classification results are kept (looked at every 100 ms).
    pub classification_cache_retention_days: u32,
    /// The photo service's decode budget and its wait (its defaults when None).
    pub decode_budget_bytes: Option<u64>,
    pub decode_budget_wait_ms: Option<u64>,
    /// The gateway's budget of photo upload bytes in flight and its wait (defaults when None).
    pub uploads_in_flight_bytes: Option<usize>,
    pub upload_wait_ms: Option<u64>,
    /// The gateway's deadline of a classification (its default when None), for tests whose
    /// photos take long to decode on a loaded machine.
    pub classify_timeout_ms: Option<u64>,
    /// Most points in one location batch, set for the gateway and photo alike (one setting,
    /// as compose passes it); their default when None.
    pub location_batch_max: Option<usize>,
    /// Photo's calls to membership have their answers held this long on the way back (what
    /// membership did is done, and photo does not know it yet); None: none held.
    pub membership_answer_delay_ms: Option<u64>,
}

impl Default for PhotoOptions {
    fn default() -> Self {
        Self {
            cloud: true,
            max_retries: 2,
            retry_base_ms: 20,
            attempt_timeout_ms: 3000,
            breaker_failures: 3,
            breaker_open_secs: 60,
            photos_per_client_per_minute: 100_000,
            lookups_per_client_per_minute: 100_000,
            edit_deadline_secs: 60,
            edit_poll_ms: 50,
            edit_lease_secs: 2,
            edit_call_timeout_ms: 3000,
            edit_free_text_model: "qwen-image-edit".into(),
            edit_result_retention_secs: 30 * 24 * 3600,
            classification_cache_retention_days: 365,
            decode_budget_bytes: None,
            decode_budget_wait_ms: None,
            uploads_in_flight_bytes: None,
            location_batch_max: None,
            upload_wait_ms: None,
            classify_timeout_ms: None,
            membership_answer_delay_ms: None,
        }
    }
}

static LOCATOR: OnceCell<Arc<Locator>> = OnceCell::const_new();
static CLASSIFIER: OnceCell<Arc<LocalClassifier>> = OnceCell::const_new();

/// What a photo instance talks to in the system under test.
#[derive(Clone, Copy)]
pub struct Peers<'a> {
    pub sandbox: &'a Sandbox,
    /// Where DashScope is reached: the sandbox, or a faulty provider in front of it.
    pub provider_url: &'a str,
    pub redis_prefix: &'a str,
    pub service_token: &'a platform::grpc::ServiceToken,
    pub membership_urls: &'a [String],
    pub stats_url: &'a str,
    /// A proxy in front of the primary's server, to reach it through (a cuttable one).
    pub primary_proxy: Option<std::net::SocketAddr>,
}

/// Creates and migrates the photo database and starts one instance on port 0, stopped by `stop`.
pub async fn start(options: &Options, peers: Peers<'_>, stop: CancellationToken) -> PhotoService {
    let db = TestDatabase::migrated("photo", options.replica, &photo_svc::MIGRATOR).await;
    let url = start_instance(options, peers, &db, stop, None).await;
    PhotoService { url, db }
}

/// The edit storage of the photo service on `db`.
pub fn edit_storage_dir(db: &TestDatabase) -> std::path::PathBuf {
    std::env::temp_dir().join("xintu-edits").join(&db.name)
}

/// Starts one more instance on `db` (a scaled service shares its database); returns its URL.
pub async fn start_instance(
    options: &Options,
    peers: Peers<'_>,
    db: &TestDatabase,
    stop: CancellationToken,
    addr: Option<&str>,
) -> String {
    let Peers {
        sandbox,
        provider_url,
        redis_prefix,
        service_token,
        membership_urls,
        stats_url,
        primary_proxy,
    } = peers;
    let mut cfg = PhotoConfig::defaults().expect("photo defaults");
    cfg.service.service_token = service_token.clone();
    cfg.database.database_url = match primary_proxy {
        Some(proxy) => crate::with_host(&db.primary_url, proxy),
        None => db.primary_url.clone(),
    };
    cfg.database.database_replica_url = Some(db.replica_url.clone());
    cfg.database.database_max_connections = 5;
    cfg.redis.redis_url = options.redis_url();
    cfg.redis.redis_key_prefix = redis_prefix.to_owned();
    cfg.membership_grpc_url = membership_urls.join(",");
    cfg.stats_grpc_url = options.request_logging.then(|| stats_url.to_owned());
    let photo = &options.photo;
    let dashscope = &mut cfg.dashscope;
    dashscope.api_key = photo
        .cloud
        .then(|| SecretString::from(sandbox.config().dashscope_api_key.clone()));
    dashscope.base_url = provider_url.to_owned();
    dashscope.max_retries = photo.max_retries;
    dashscope.retry_base = Duration::from_millis(photo.retry_base_ms);
    dashscope.retry_max = Duration::from_millis(photo.retry_base_ms * 8);
    dashscope.attempt_timeout = Duration::from_millis(photo.attempt_timeout_ms);
    dashscope.deadline = Duration::from_millis(photo.attempt_timeout_ms * 3);
    dashscope.breaker_failures = photo.breaker_failures;
    dashscope.breaker_open = Duration::from_secs(photo.breaker_open_secs);
    dashscope.max_calls_per_second = 1000;
    let edits = &mut cfg.edits;
    // Every instance of one system shares its edit storage, as instances share a volume.
    edits.set_storage_dir(edit_storage_dir(db));
    edits.deadline = Duration::from_secs(photo.edit_deadline_secs);
    edits.poll_initial = Duration::from_millis(photo.edit_poll_ms);
    edits.poll_max = Duration::from_millis(photo.edit_poll_ms * 4);
    edits.lease = Duration::from_secs(photo.edit_lease_secs);
    edits.result_retention = (photo.edit_result_retention_secs > 0)
        .then(|| Duration::from_secs(photo.edit_result_retention_secs));
    edits.retention_interval = Duration::from_millis(100);
    edits.abandon_after = Duration::from_secs(5);
    edits.tick = Duration::from_millis(50);
    edits.retry_base = Duration::from_millis(50);
    edits.retry_max = Duration::from_millis(400);
    edits.call_timeout = Duration::from_millis(photo.edit_call_timeout_ms);
    edits.sync_timeout = Duration::from_millis(5000);
    edits.free_text_model = photo.edit_free_text_model.clone();
    cfg.classify.classification_cache_retention_days = photo.classification_cache_retention_days;
    cfg.classify.classification_cache_retention_interval_ms = 100;
    if let Some(bytes) = photo.decode_budget_bytes {
        cfg.decode.decode_budget_bytes = bytes;
    }
    if let Some(wait) = photo.decode_budget_wait_ms {
        cfg.decode.decode_budget_wait = Duration::from_millis(wait);
    }
    if let Some(most) = photo.location_batch_max {
        cfg.photo_limits.location_batch_max = most;
    }
    cfg.validate().expect("photo test config");
    let locator = LOCATOR
        .get_or_init(|| async {
            photo_svc::load_locator(&cfg.geodata_dir())
                .await
                .expect("location data (run deploy/local/fetch-geodata.sh)")
        })
        .await
        .clone();
    let local_classifier = CLASSIFIER
        .get_or_init(|| async {
            photo_svc::load_local_classifier(&cfg)
                .await
                .expect("the local model (run deploy/local/fetch-model.sh)")
        })
        .await
        .clone();
    let deps = photo_svc::Dependencies {
        pools: db.pools_with_primary(&cfg.database.database_url),
        redis: platform::redis::connect(&cfg.redis.redis_url)
            .await
            .expect("photo redis url"),
        locator,
        local_classifier,
    };
    let listener = TcpListener::bind(addr.unwrap_or("127.0.0.1:0"))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        if let Err(err) = photo_svc::run(&cfg, deps, listener, stop).await {
            eprintln!("photo stopped: {err:#}");
        }
    });
    url
}
