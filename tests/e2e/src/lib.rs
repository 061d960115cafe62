//! Starts the whole system in-process for tests and benchmarks: the sandbox (WeChat), membership
//! instances and gateway instances on loopback port 0, on a fresh database of the real MariaDB
//! primary + replica and a fresh Redis key prefix.

#![allow(clippy::expect_used, clippy::panic)] // test harness: failing loudly is the point

use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use gateway::config::GatewayConfig;
use membership_svc::config::MembershipConfig;
use platform::grpc::{ServiceChannel, ServiceToken};
use platform::testing::{Replica, TestDatabase};
use sandbox::{Sandbox, SandboxConfig};

/// The admin site's password in tests (user `admin`).
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// The argon2 hash of [`ADMIN_PASSWORD`], computed once per test process.
fn admin_password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        gateway::admin::hash_password(ADMIN_PASSWORD).expect("hash the admin password")
    })
    .clone()
}

/// A safe-mode EncodingAESKey for tests (43 characters).
pub const TEST_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

pub mod api;
pub mod photo;

pub mod bench;
pub mod captured_log;
pub mod proxy;

pub mod grpc_proxy;

pub mod browser;
pub mod compose;
pub mod edge;

pub mod redis_server;

pub mod memory;

/// How to start the system.
#[derive(Clone, Debug)]
pub struct Options {
    pub safe_mode: bool,
    /// Where the gateways are reached from outside (their OAuth redirect_uri): an edge such as
    /// lighttpd in front of them. Default: each gateway's own URL.
    pub public_base_url: Option<String>,
    /// The gateways take the client address from X-Real-IP, as behind nginx or lighttpd.
    pub trust_proxy_headers: bool,
    pub replica: Replica,
    pub memberships: usize,
    /// Photo instances; with more than one, each sits behind a [`grpc_proxy::CountingProxy`]
    /// and the gateways get the list of them (see [`System::photo_instances`]). With none, a
    /// test of the other flows does not pay for the photo database, the location data and the
    /// model, and its gateways answer photo calls as with the service down.
    pub photos: usize,
    pub gateways: usize,
    pub qrcode_expire_seconds: u32,
    pub qrcode_per_client_per_minute: u32,
    /// Orders a member may place per minute (the gateway's default unless a bench lifts it).
    pub orders_per_user_per_minute: u32,
    /// Place names a client may ask for per minute (each point of a batch counts).
    pub locations_per_client_per_minute: u32,
    /// Membership instances reach the primary through a proxy the test can cut.
    pub cuttable_primary: bool,
    /// With `cuttable_primary`, the photo instances reach it through the same proxy.
    pub photo_through_cuttable_primary: bool,
    /// The merchant's configured WeChat Pay sign type (`WECHATPAY_SIGN_TYPE`).
    pub wechatpay_sign_type: wechat_protocol::pay::SignType,
    pub reconcile_interval_ms: u64,
    pub reconcile_query_after_secs: u32,
    /// The reconciler's first pause per order (it doubles per check).
    pub reconcile_backoff_first_secs: u32,
    pub hold_janitor_interval_ms: u64,
    /// How often membership deletes records past their retention (`RETENTION_INTERVAL_MS`).
    pub retention_interval_ms: u64,
    /// The gateway records every request, and the photo service every model call, to the stats
    /// service.
    pub request_logging: bool,
    /// How long the gateway's recorder holds a partial batch (default 500 ms).
    pub request_log_flush_ms: u64,
    /// The stats service's replica (pause the lagging one to prove reads go there).
    pub stats_replica: Replica,
    /// Classification: the cloud model (the sandbox's DashScope) and its resilience settings.
    pub photo: photo::PhotoOptions,
    /// The Redis every service uses; default: the shared test server. A test that stops Redis
    /// starts its own ([`redis_server::RedisServer`]) and points here.
    pub redis_url: Option<SecretString>,
    /// Reach WeChat, WeChat Pay and DashScope through a [`proxy::FaultyProvider`] in front of the
    /// sandbox (`System::providers`), so a test can make them refuse or hang.
    pub faulty_providers: bool,
    /// The membership service's WeChat and WeChat Pay timeouts, in milliseconds.
    pub provider_timeout_ms: Option<u64>,
    /// How long a gateway remembers a bound token (`TOKEN_CACHE_TTL_SECS`); None: the default.
    pub token_cache_ttl_secs: Option<u64>,
    /// Membership gets the merchant certificate the sandbox issued, so refunds work. Off unless
    /// a test refunds: issuing it makes an RSA key, a large part of starting a system.
    pub merchant_certificate: bool,
    /// Orders go through WeChat Pay API v3 (`WECHATPAY_API_VERSION=v3`), with the merchant key
    /// the sandbox issued and its WeChat Pay public key.
    pub wechatpay_api_v3: bool,
    /// Membership has the v2 API key; without it (a merchant that started on v3) v2 notifies
    /// are refused.
    pub wechatpay_v2_api_key: bool,
    /// Expiry reminders: the template id membership sends with (None: off) and how often it
    /// looks for due reminders.
    pub expiry_reminder_template_id: Option<String>,
    pub expiry_reminder_interval_ms: u64,
    /// The daily bill check's round interval (0: off, the default in tests) and hour.
    pub bill_check_interval_ms: u64,
    pub bill_check_hour: u32,
}

impl Options {
    /// The Redis URL the services get.
    pub fn redis_url(&self) -> SecretString {
        self.redis_url
            .clone()
            .unwrap_or_else(platform::testing::redis_url)
    }
}

impl Options {
    /// What the membership flows need (binding, payments, credits, the admin site): every part
    /// but the photo service.
    pub fn membership_flows() -> Self {
        Self {
            photos: 0,
            ..Self::default()
        }
    }

    /// The membership flows, with the merchant certificate membership needs to refund.
    pub fn with_refunds() -> Self {
        Self {
            merchant_certificate: true,
            ..Self::membership_flows()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            safe_mode: false,
            public_base_url: None,
            trust_proxy_headers: false,
            replica: Replica::Shared,
            memberships: 1,
            photos: 1,
            gateways: 1,
            qrcode_expire_seconds: 600,
            qrcode_per_client_per_minute: 1000,
            orders_per_user_per_minute: 10,
            locations_per_client_per_minute: 100_000,
            cuttable_primary: false,
            photo_through_cuttable_primary: false,
            // Out of the way unless a test wants the background loops.
            wechatpay_sign_type: wechat_protocol::pay::SignType::HmacSha256,
            reconcile_interval_ms: 3_600_000,
            reconcile_query_after_secs: 60,
            reconcile_backoff_first_secs: 1,
            hold_janitor_interval_ms: 3_600_000,
            retention_interval_ms: 3_600_000,
            request_logging: true,
            request_log_flush_ms: 500,
            stats_replica: Replica::Shared,
            photo: photo::PhotoOptions::default(),
            redis_url: None,
            faulty_providers: false,
            provider_timeout_ms: None,
            token_cache_ttl_secs: None,
            merchant_certificate: false,
            wechatpay_api_v3: false,
            wechatpay_v2_api_key: true,
            bill_check_interval_ms: 0,
            bill_check_hour: 10,
            expiry_reminder_template_id: None,
            expiry_reminder_interval_ms: 0,
        }
    }
}

/// The running system. Dropping it stops every server.
pub struct System {
    pub sandbox: Sandbox,
    pub db: TestDatabase,
    /// The stats service (its own database); tests stop and restart it.
    pub stats: stats_svc::testing::StatsService,
    pub gateway_urls: Vec<String>,
    pub membership_urls: Vec<String>,
    /// The service token every process of this system sends and accepts (random per system).
    pub service_token: ServiceToken,
    /// Every Redis key of this system starts with it.
    pub redis_prefix: String,
    /// Set with `Options::cuttable_primary`: the membership instances' way to the primary (and
    /// the photo instances', with `Options::photo_through_cuttable_primary`).
    pub primary_proxy: Option<proxy::CuttableProxy>,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    membership_shutdown: CancellationToken,
    gateway_shutdowns: Vec<CancellationToken>,
    /// The `run` of each gateway and membership instance, to see them return after a stop.
    gateway_tasks: std::sync::Mutex<Vec<Option<JoinHandle<()>>>>,
    membership_tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// With `Options::photos` > 1: every photo instance, as the gateways reach it.
    pub photo_instances: Vec<grpc_proxy::CountingProxy>,
    /// The proxies photo reaches membership through, with
    /// [`photo::PhotoOptions::membership_answer_delay_ms`]; empty without.
    pub photo_to_membership: Vec<grpc_proxy::CountingProxy>,
    /// With `Options::faulty_providers`: the way the services reach the providers.
    pub providers: Option<proxy::FaultyProvider>,
    /// None with `Options::photos` 0.
    photo: Option<PhotoPart>,
    /// The merchant's certificate and keys the membership instances read at start.
    _merchant_files: edge::ScratchDir,
}

/// Where the gateways of a system without a photo service send photo calls: nobody listens
/// there, so such a call fails as it would with the service down.
const NO_PHOTO_SERVICE: &str = "http://127.0.0.1:9";

/// The photo service of a system: its database, and what it takes to stop the first instance
/// and start a new one at its address.
struct PhotoPart {
    db: TestDatabase,
    options: Options,
    provider_url: String,
    redis_prefix: String,
    service_token: ServiceToken,
    membership_urls: Vec<String>,
    url: String,
    stop: std::sync::Mutex<CancellationToken>,
    parent: CancellationToken,
}

/// Starts `options.photos` photo instances on one fresh database; returns the service, the
/// gateways' photo URL (the instances, behind counting proxies when there are several) and
/// those proxies.
async fn start_photos(
    options: &Options,
    peers: photo::Peers<'_>,
    shutdown: &CancellationToken,
) -> (PhotoPart, String, Vec<grpc_proxy::CountingProxy>) {
    let first_stop = shutdown.child_token();
    let first = photo::start(options, peers, first_stop.clone()).await;
    // (url, what stops that instance): the first one stops with the system.
    let mut photos = vec![(first.url.clone(), first_stop.clone())];
    for _ in 1..options.photos {
        // Scaled instances share the first one's database, as in a deployment.
        let stop = shutdown.child_token();
        let url = photo::start_instance(options, peers, &first.db, stop.clone(), None).await;
        photos.push((url, stop));
    }
    let mut proxies = Vec::new();
    if photos.len() > 1 {
        // Stopping a proxy also stops the instance behind it (the token is shared).
        for (url, stop) in &photos {
            proxies.push(grpc_proxy::CountingProxy::start(url, stop.clone()).await);
        }
    }
    let grpc_url = match proxies.is_empty() {
        true => first.url.clone(),
        false => proxies
            .iter()
            .map(|p| p.url.clone())
            .collect::<Vec<_>>()
            .join(","),
    };
    let part = PhotoPart {
        db: first.db,
        options: options.clone(),
        provider_url: peers.provider_url.to_owned(),
        redis_prefix: peers.redis_prefix.to_owned(),
        service_token: peers.service_token.clone(),
        membership_urls: peers.membership_urls.to_vec(),
        url: first.url,
        stop: std::sync::Mutex::new(first_stop),
        parent: shutdown.clone(),
    };
    (part, grpc_url, proxies)
}

impl Drop for System {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub(crate) fn with_host(url: &SecretString, addr: std::net::SocketAddr) -> SecretString {
    use secrecy::ExposeSecret;
    let mut parsed = reqwest::Url::parse(url.expose_secret()).expect("database url");
    parsed.set_port(Some(addr.port())).expect("set port");
    parsed
        .set_host(Some(&addr.ip().to_string()))
        .expect("set host");
    SecretString::from(parsed.to_string())
}

impl System {
    pub async fn start(options: Options) -> Self {
        captured_log::warnings_to_test_output();
        let sandbox_cfg = SandboxConfig {
            aes_key: options.safe_mode.then(|| TEST_AES_KEY.to_owned()),
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start_local(sandbox_cfg.clone())
            .await
            .expect("start the sandbox");
        let providers = match options.faulty_providers {
            true => Some(proxy::FaultyProvider::start(sandbox.addr()).await),
            false => None,
        };
        let provider_url = providers
            .as_ref()
            .map_or_else(|| sandbox.url(), proxy::FaultyProvider::url);
        let db =
            TestDatabase::migrated("membership", options.replica, &membership_svc::MIGRATOR).await;

        // Gateways listen first: the membership service needs their notify URL.
        let mut gateway_listeners = Vec::new();
        for _ in 0..options.gateways.max(1) {
            gateway_listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let gateway_urls: Vec<String> = gateway_listeners
            .iter()
            .map(|l| format!("http://{}", l.local_addr().expect("addr")))
            .collect();

        let primary_proxy = if options.cuttable_primary {
            use secrecy::ExposeSecret;
            let parsed = reqwest::Url::parse(db.primary_url.expose_secret()).expect("url");
            let target = format!(
                "{}:{}",
                parsed.host_str().expect("host"),
                parsed.port().expect("port")
            );
            let target = target.parse().expect("primary address");
            Some(proxy::CuttableProxy::start(target).await)
        } else {
            None
        };

        let shutdown = CancellationToken::new();
        let membership_shutdown = shutdown.child_token();
        let redis_prefix = platform::testing::redis_prefix();
        let service_token = platform::testing::service_token();
        let stats = stats_svc::testing::start(
            options.stats_replica,
            &service_token,
            shutdown.child_token(),
        )
        .await;
        // The merchant certificate for refunds, as files, like the merchant platform's download;
        // removed with the system (they hold private keys).
        let merchant_files = edge::ScratchDir::new("e2e-merchant");
        let tls_dir = merchant_files.path.clone();
        if options.merchant_certificate || options.wechatpay_api_v3 {
            sandbox
                .merchant_tls()
                .and_then(|tls| tls.write_to(&tls_dir))
                .expect("merchant TLS files");
            std::fs::write(
                tls_dir.join("pub_key.pem"),
                sandbox
                    .wechatpay_public_key()
                    .expect("the sandbox's WeChat Pay key")
                    .1,
            )
            .expect("WeChat Pay public key file");
        }
        let mut membership_urls = Vec::new();
        let mut membership_tasks = Vec::new();
        for _ in 0..options.memberships.max(1) {
            let mut cfg = MembershipConfig::defaults().expect("membership defaults");
            cfg.service.service_token = service_token.clone();
            cfg.database.database_url = match &primary_proxy {
                Some(proxy) => with_host(&db.primary_url, proxy.addr),
                None => db.primary_url.clone(),
            };
            cfg.database.database_replica_url = Some(db.replica_url.clone());
            cfg.database.database_max_connections = 10;
            cfg.redis.redis_url = options.redis_url();
            cfg.redis.redis_key_prefix = redis_prefix.clone();
            cfg.wechat_appid = sandbox_cfg.appid.clone();
            cfg.wechat_secret = SecretString::from(sandbox_cfg.secret.clone());
            cfg.wechat_api_base = provider_url.clone();
            cfg.wechat_mp_base = sandbox.url();
            cfg.qrcode_expire_seconds = options.qrcode_expire_seconds;
            cfg.wechatpay_api_base = provider_url.clone();
            if let Some(timeout) = options.provider_timeout_ms {
                cfg.wechat_timeout_ms = timeout;
                cfg.wechatpay_timeout_ms = timeout;
            }
            cfg.wechatpay_mch_id = sandbox_cfg.mch_id.clone();
            cfg.wechatpay_api_key = match options.wechatpay_v2_api_key {
                true => SecretString::from(sandbox_cfg.pay_key.clone()),
                false => SecretString::from(String::new()),
            };
            cfg.wechatpay_notify_url = format!("{}/api/v1/payment/notify", gateway_urls[0]);
            if options.merchant_certificate {
                cfg.wechatpay_secapi_base = sandbox.secapi_url();
                cfg.wechatpay_secapi_ca_path = tls_dir.join("ca.pem").display().to_string();
                cfg.wechatpay_cert_path = tls_dir.join("apiclient_cert.pem").display().to_string();
                cfg.wechatpay_key_path = tls_dir.join("apiclient_key.pem").display().to_string();
            }
            if options.wechatpay_api_v3 {
                cfg.wechatpay_api_version = "v3".to_owned();
                cfg.wechatpay_key_path = tls_dir.join("apiclient_key.pem").display().to_string();
                cfg.wechatpay_mch_serial_no = sandbox
                    .merchant_tls()
                    .expect("the sandbox's merchant certificate")
                    .serial_no;
                cfg.wechatpay_api_v3_key = SecretString::from(sandbox_cfg.api_v3_key.clone());
                cfg.wechatpay_public_key_id = sandbox_cfg.public_key_id.clone();
                cfg.wechatpay_public_key_path = tls_dir.join("pub_key.pem").display().to_string();
            }
            cfg.wechatpay_sign_type = options.wechatpay_sign_type.as_str().to_owned();
            cfg.reconcile_interval_ms = options.reconcile_interval_ms;
            cfg.reconcile_query_after_secs = options.reconcile_query_after_secs;
            cfg.reconcile_backoff_first_secs = options.reconcile_backoff_first_secs;
            cfg.hold_janitor_interval_ms = options.hold_janitor_interval_ms;
            cfg.retention_interval_ms = options.retention_interval_ms;
            cfg.bill_check_interval_ms = options.bill_check_interval_ms;
            cfg.bill_check_hour = options.bill_check_hour;
            cfg.expiry_reminder_template_id = options
                .expiry_reminder_template_id
                .clone()
                .unwrap_or_default();
            cfg.expiry_reminder_interval_ms = options.expiry_reminder_interval_ms;
            let deps = membership_svc::connect(&cfg)
                .await
                .expect("membership dependencies");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            membership_urls.push(format!("http://{}", listener.local_addr().expect("addr")));
            let stop = membership_shutdown.child_token();
            membership_tasks.push(tokio::spawn(async move {
                if let Err(err) = membership_svc::run(&cfg, deps, listener, stop).await {
                    eprintln!("membership stopped: {err:#}");
                }
            }));
        }
        let stats_url = stats.url();
        // Photo's calls to membership, their answers held on the way back where a test asks.
        let mut photo_to_membership = Vec::new();
        if let Some(delay) = options.photo.membership_answer_delay_ms {
            let delay = Duration::from_millis(delay);
            for url in &membership_urls {
                photo_to_membership
                    .push(grpc_proxy::CountingProxy::delaying(url, shutdown.clone(), delay).await);
            }
        }
        let photo_membership_urls = if photo_to_membership.is_empty() {
            membership_urls.clone()
        } else {
            photo_to_membership.iter().map(|p| p.url.clone()).collect()
        };
        let peers = photo::Peers {
            sandbox: &sandbox,
            provider_url: &provider_url,
            redis_prefix: &redis_prefix,
            service_token: &service_token,
            membership_urls: &photo_membership_urls,
            stats_url: &stats_url,
            primary_proxy: primary_proxy
                .as_ref()
                .filter(|_| options.photo_through_cuttable_primary)
                .map(|proxy| proxy.addr),
        };
        let (photo, photo_grpc_url, photo_instances) = match options.photos {
            0 => (None, NO_PHOTO_SERVICE.to_owned(), Vec::new()),
            _ => {
                let (part, grpc_url, proxies) = start_photos(&options, peers, &shutdown).await;
                (Some(part), grpc_url, proxies)
            }
        };
        let mut gateway_shutdowns = Vec::new();
        let mut gateway_tasks = Vec::new();
        for (index, listener) in gateway_listeners.into_iter().enumerate() {
            let mut cfg = GatewayConfig::defaults().expect("gateway defaults");
            cfg.service.service_token = service_token.clone();
            cfg.membership_grpc_url = membership_urls[index % membership_urls.len()].clone();
            cfg.photo_grpc_url = photo_grpc_url.clone();
            cfg.photos_per_client_per_minute = options.photo.photos_per_client_per_minute;
            cfg.photo_lookups_per_client_per_minute = options.photo.lookups_per_client_per_minute;
            if let Some(most) = options.photo.location_batch_max {
                cfg.photo_limits.location_batch_max = most;
            }
            if let Some(bytes) = options.photo.uploads_in_flight_bytes {
                cfg.photo_uploads_in_flight_bytes = bytes;
            }
            if let Some(wait) = options.photo.upload_wait_ms {
                cfg.photo_upload_wait_ms = wait;
            }
            if let Some(timeout) = options.photo.classify_timeout_ms {
                cfg.classify_timeout_ms = timeout;
                cfg.request_timeout_ms = cfg.request_timeout_ms.max(timeout + 1000);
            }
            cfg.stats_grpc_url = stats.url();
            cfg.request_logging = options.request_logging;
            cfg.request_log_flush_ms = options.request_log_flush_ms;
            cfg.redis.redis_url = options.redis_url();
            cfg.redis.redis_key_prefix = redis_prefix.clone();
            cfg.admin_password_hash = Some(SecretString::from(admin_password_hash()));
            cfg.wechat_appid = sandbox_cfg.appid.clone();
            cfg.wechat_token = SecretString::from(sandbox_cfg.push_token.clone());
            cfg.wechat_aes_key = sandbox_cfg.aes_key.clone().map(SecretString::from);
            cfg.wechat_open_base = sandbox.url();
            cfg.public_base_url = options
                .public_base_url
                .clone()
                .unwrap_or_else(|| gateway_urls[index].clone());
            cfg.trust_proxy_headers = options.trust_proxy_headers;
            cfg.qrcode_per_client_per_minute = options.qrcode_per_client_per_minute;
            cfg.orders_per_user_per_minute = options.orders_per_user_per_minute;
            cfg.locations_per_client_per_minute = options.locations_per_client_per_minute;
            if let Some(ttl) = options.token_cache_ttl_secs {
                cfg.token_cache_ttl_secs = ttl;
            }
            cfg.qrcode_per_ip_per_minute = 100_000;
            // Erasure follow-ups a stopped service missed are run again within seconds.
            cfg.erasure_retry_secs = 1;
            let state = gateway::AppState::new(cfg).expect("gateway state");
            let stop = shutdown.child_token();
            gateway_shutdowns.push(stop.clone());
            gateway_tasks.push(Some(tokio::spawn(async move {
                if let Err(err) = gateway::run(state, listener, stop).await {
                    eprintln!("gateway stopped: {err:#}");
                }
            })));
        }
        let system = Self {
            photo,
            sandbox,
            db,
            stats,
            gateway_urls,
            membership_urls,
            service_token,
            redis_prefix: redis_prefix.clone(),
            primary_proxy,
            membership_shutdown,
            gateway_shutdowns,
            gateway_tasks: std::sync::Mutex::new(gateway_tasks),
            membership_tasks: std::sync::Mutex::new(membership_tasks),
            photo_instances,
            photo_to_membership,
            providers,
            _merchant_files: merchant_files,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            shutdown,
        };
        system.wait_until_ready().await;
        system
    }

    /// The photo service; panics for a system started without one.
    fn photo(&self) -> &PhotoPart {
        self.photo
            .as_ref()
            .expect("this system was started without a photo service (Options::photos 0)")
    }

    /// The photo service's own database.
    pub fn photo_db(&self) -> &TestDatabase {
        &self.photo().db
    }

    /// The first photo instance's gRPC URL.
    pub fn photo_url(&self) -> &str {
        &self.photo().url
    }

    /// The first gateway's base URL.
    pub fn gateway(&self) -> &str {
        &self.gateway_urls[0]
    }

    /// WeChat's push URL on the first gateway.
    pub fn push_url(&self) -> String {
        format!("{}/api/v1/auth/wechat/verify", self.gateway())
    }

    async fn wait_until_ready(&self) {
        // Without a photo service a gateway is never ready (and its readiness check waits for
        // the photo call to time out): being up is enough, membership already listens.
        let probe = match self.photo {
            Some(_) => "readyz",
            None => "healthz",
        };
        for url in &self.gateway_urls {
            for attempt in 0.. {
                let ready = self
                    .http
                    .get(format!("{url}/{probe}"))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ready {
                    break;
                }
                assert!(attempt < 1200, "gateway {url} never became ready");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }

    /// Asks for a binding QR code for `client_id` through the gateway.
    pub async fn create_qrcode(&self, client_id: &str) -> api::types::QrCodeOut {
        self.create_qrcode_via(self.gateway(), client_id).await
    }

    pub async fn create_qrcode_via(&self, gateway: &str, client_id: &str) -> api::types::QrCodeOut {
        let body = api::types::QrCodeIn {
            client_id: client_id.to_owned(),
        };
        api::answer(api::Client::new(gateway).create_qrcode().body(body).send())
            .await
            .expect("a QR code")
    }

    /// Binds app client `client_id` to the WeChat user `openid` (a QR code, then the user's
    /// scan through the sandbox) and returns the client's token.
    pub async fn bind_client(&self, client_id: &str, openid: &str) -> String {
        let qr = self.create_qrcode(client_id).await;
        self.sandbox
            .scan(&self.push_url(), &qr.ticket, openid)
            .await
            .expect("scan");
        qr.client_token
    }

    /// The typed client acting as an app with `token`, at the first gateway.
    pub fn app(&self, token: &str) -> api::Client {
        api::Client::new(self.gateway())
            .with_client_token(token)
            .expect("a token a header can carry")
    }

    /// `GET /api/v1/account` with an app's token.
    pub async fn account(&self, token: &str) -> api::Answer<api::types::AccountOut> {
        api::answer(self.app(token).get_account().send()).await
    }

    /// Waits until a signed-out app's token is refused. The revocation reaches every gateway's
    /// token cache through Redis within moments (at worst the cache's lifetime, 5 s).
    pub async fn wait_until_token_refused(&self, token: &str) {
        for _ in 0..200 {
            if let Err(api::Error::ErrorResponse(answer)) = self.account(token).await
                && answer.status() == 401
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("a signed-out app's token still works");
    }

    /// Polls the binding status once (no long poll).
    pub async fn binding(
        &self,
        client_id: &str,
        token: &str,
    ) -> api::Answer<api::types::BindingOut> {
        api::answer(self.app(token).binding_status().client_id(client_id).send()).await
    }

    /// Stops the membership instances (gateways keep running).
    pub fn stop_memberships(&self) {
        self.membership_shutdown.cancel();
    }

    /// Stops the first photo instance (its server and its edit worker), as a crash or a
    /// deploy would; [`System::start_photo_again`] brings a new one up at the same address.
    pub fn stop_photo(&self) {
        self.photo().stop.lock().expect("photo stop token").cancel();
    }

    /// Starts a new first photo instance on the same database, storage and address.
    pub async fn start_photo_again(&self) {
        let restart = self.photo();
        let stop = restart.parent.child_token();
        *restart.stop.lock().expect("photo stop token") = stop.clone();
        let addr = restart.url.trim_start_matches("http://").to_owned();
        // The old listener closes once its server has drained; wait for the port (tokio's bind
        // reuses an address whose old connections are still in TIME_WAIT, as the restart will).
        for attempt in 0.. {
            if tokio::net::TcpListener::bind(&addr).await.is_ok() {
                break;
            }
            assert!(attempt < 400, "the photo port {addr} never came free");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let stats_url = self.stats.url();
        let peers = photo::Peers {
            sandbox: &self.sandbox,
            provider_url: &restart.provider_url,
            redis_prefix: &restart.redis_prefix,
            service_token: &restart.service_token,
            membership_urls: &restart.membership_urls,
            stats_url: &stats_url,
            primary_proxy: self
                .primary_proxy
                .as_ref()
                .filter(|_| restart.options.photo_through_cuttable_primary)
                .map(|proxy| proxy.addr),
        };
        photo::start_instance(&restart.options, peers, &restart.db, stop, Some(&addr)).await;
    }

    /// Stops one gateway instance (the others keep running).
    pub fn stop_gateway(&self, index: usize) {
        self.gateway_shutdowns[index].cancel();
    }

    /// Waits until gateway `index`'s `run` has returned (after a stop: drained, its recorder
    /// flushed); false when it has not within `limit`.
    pub async fn gateway_returned(&self, index: usize, limit: Duration) -> bool {
        let task = self.gateway_tasks.lock().expect("gateway tasks")[index].take();
        match task {
            Some(task) => tokio::time::timeout(limit, task).await.is_ok(),
            None => true,
        }
    }

    /// Waits until every membership instance's `run` has returned (after
    /// [`System::stop_memberships`]: calls finished, background loops stopped).
    pub async fn memberships_returned(&self, limit: Duration) -> bool {
        let tasks = std::mem::take(&mut *self.membership_tasks.lock().expect("membership tasks"));
        tokio::time::timeout(limit, futures::future::join_all(tasks))
            .await
            .is_ok()
    }

    /// Stops every server now.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

/// Rows and balances read straight from the primary, for assertions.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub users: i64,
    pub remaining_credits: Option<i64>,
    pub ledger_rows: i64,
    pub ledger_sum: Option<i64>,
    pub events: i64,
}

impl System {
    pub async fn snapshot(&self, openid: &str) -> Snapshot {
        let pool = self.db.primary().await;
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wechat_users")
            .fetch_one(&pool)
            .await
            .expect("count users");
        let remaining_credits: Option<i64> =
            sqlx::query_scalar("SELECT remaining_credits FROM wechat_users WHERE openid = ?")
                .bind(openid)
                .fetch_optional(&pool)
                .await
                .expect("credits");
        let ledger_rows: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM credit_ledger l JOIN wechat_users u ON u.id = l.user_id WHERE u.openid = ?",
        )
        .bind(openid)
        .fetch_one(&pool)
        .await
        .expect("ledger rows");
        let ledger_sum: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(l.delta) AS SIGNED) FROM credit_ledger l JOIN wechat_users u ON u.id = l.user_id WHERE u.openid = ?",
        )
        .bind(openid)
        .fetch_one(&pool)
        .await
        .expect("ledger sum");
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM wechat_events")
            .fetch_one(&pool)
            .await
            .expect("count events");
        pool.close().await;
        Snapshot {
            users,
            remaining_credits,
            ledger_rows,
            ledger_sum,
            events,
        }
    }

    /// Buys `credits` credits as the signed-in member and pays at the sandbox; returns the order
    /// number once the order reads paid.
    pub async fn paid_credits(&self, member: &MemberBrowser, credits: i32) -> String {
        self.paid_order(member, api::credits_order(credits)).await
    }

    /// Places `order` as the signed-in member and pays at the sandbox; returns the order number
    /// once the order reads paid.
    pub async fn paid_order(
        &self,
        member: &MemberBrowser,
        order: api::types::CreateOrderIn,
    ) -> String {
        let order_no = member.create_order(order).await.order.order_no;
        self.sandbox.pay(&order_no).await.expect("the sandbox pays");
        member.wait_for_order(&order_no, "paid").await;
        order_no
    }

    /// Checks the ledger invariant for every user: remaining == sum of ledger deltas.
    pub async fn assert_ledger_invariant(&self) {
        let pool = self.db.primary().await;
        let broken = membership_svc::store::ledger::users_off_their_ledger(&pool)
            .await
            .expect("check the ledger invariant");
        pool.close().await;
        assert_eq!(broken, 0, "users whose balance differs from their ledger");
    }
}

/// A member-page browser: a cookie jar signed in through the gateway's WeChat OAuth.
pub struct MemberBrowser {
    pub http: reqwest::Client,
    pub gateway: String,
}

impl System {
    /// Signs the admin in (`admin` / [`ADMIN_PASSWORD`]) as the admin site does: a browser with
    /// the session cookie, sending its page's origin as browsers do.
    pub async fn admin_sign_in(&self) -> MemberBrowser {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ORIGIN,
            self.gateway().parse().expect("an origin header"),
        );
        let browser = MemberBrowser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .default_headers(headers)
                .build()
                .expect("browser"),
            gateway: self.gateway().to_owned(),
        };
        let (status, body) = browser
            .post(
                "/api/v1/admin/login",
                serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }),
            )
            .await;
        assert_eq!(status, 200, "admin sign-in: {body}");
        browser
    }

    /// Signs `openid` in the way the H5 page does: authorize → WeChat (the sandbox) → callback.
    pub async fn sign_in(&self, openid: &str) -> MemberBrowser {
        self.sign_in_returning(openid, None).await.0
    }

    /// Signs in with `return_to` on the authorize URL; also returns where the callback sends
    /// the browser (its Location header, as written).
    pub async fn sign_in_returning(
        &self,
        openid: &str,
        return_to: Option<&str>,
    ) -> (MemberBrowser, String) {
        member_sign_in(self.gateway(), openid, return_to).await
    }
}

/// Signs `openid` in as the H5 page does, through whatever serves the member API at `base` (the
/// gateway, or an edge in front of it): authorize → WeChat (a sandbox, told who is "in WeChat"
/// by a parameter) → callback. Returns the signed-in browser and where the callback sends it.
pub async fn member_sign_in(
    base: &str,
    openid: &str,
    return_to: Option<&str>,
) -> (MemberBrowser, String) {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("browser");
    let gateway = base.to_owned();
    let mut authorize = reqwest::Url::parse(&format!("{gateway}/api/v1/member/oauth/authorize"))
        .expect("authorize url");
    if let Some(return_to) = return_to {
        authorize
            .query_pairs_mut()
            .append_pair("return_to", return_to);
    }
    let to_wechat = http.get(authorize).send().await.expect("authorize");
    assert_eq!(to_wechat.status(), 302);
    let mut wechat_page = reqwest::Url::parse(location(&to_wechat)).expect("wechat url");
    // The fragment stays in the browser; the sandbox learns who is "in WeChat" from a parameter.
    wechat_page.set_fragment(None);
    wechat_page
        .query_pairs_mut()
        .append_pair("sandbox_openid", openid);
    let back = http
        .get(wechat_page)
        .send()
        .await
        .expect("wechat authorize");
    assert_eq!(back.status(), 302);
    let callback = location(&back).to_owned();
    let signed_in = http.get(callback).send().await.expect("callback");
    assert_eq!(signed_in.status(), 302, "{:?}", signed_in.text().await);
    let landing = location(&signed_in).to_owned();
    (MemberBrowser { http, gateway }, landing)
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header")
}

impl MemberBrowser {
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.gateway))
            .send()
            .await
            .expect("get");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// A raw POST with a JSON body, for bodies and answers outside the documented shapes.
    pub async fn post(&self, path: &str, body: impl serde::Serialize) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.gateway))
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// The typed client carrying this browser's session cookie (a member's or the admin's).
    pub fn api(&self) -> api::Client {
        api::Client::new_with_client(&self.gateway, self.http.clone())
    }

    pub async fn profile(&self) -> api::types::ProfileOut {
        api::answer(self.api().member_profile().send())
            .await
            .expect("the member profile")
    }

    /// Places an order: the order and its pay parameters, or the refusal.
    pub async fn place_order(
        &self,
        order: api::types::CreateOrderIn,
    ) -> api::Answer<api::types::CreateOrderOut> {
        api::answer(self.api().create_order().body(order).send()).await
    }

    /// Places an order that must be accepted.
    pub async fn create_order(
        &self,
        order: api::types::CreateOrderIn,
    ) -> api::types::CreateOrderOut {
        self.place_order(order).await.expect("a new order")
    }

    /// The member's order `order_no`.
    pub async fn order(&self, order_no: &str) -> api::Answer<api::types::OrderOut> {
        api::answer(self.api().get_order().order_no(order_no).send()).await
    }

    /// Polls the order until it is `status` (or gives up after 10 s).
    pub async fn wait_for_order(&self, order_no: &str, status: &str) -> api::types::OrderOut {
        let mut last = None;
        for _ in 0..400 {
            let order = self.order(order_no).await.expect("the order");
            if order.status == status {
                return order;
            }
            last = Some(order);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("order {order_no} never became {status}: {last:?}");
    }
}

impl System {
    /// Ledger rows of the whole database, for "nothing changed" assertions.
    pub async fn counts(&self) -> (i64, i64, i64) {
        let pool = self.db.primary().await;
        let ledger: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credit_ledger")
            .fetch_one(&pool)
            .await
            .expect("ledger");
        let paid: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM payment_orders WHERE status = 'paid'")
                .fetch_one(&pool)
                .await
                .expect("paid");
        let credits: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(remaining_credits), 0) AS SIGNED) FROM wechat_users",
        )
        .fetch_one(&pool)
        .await
        .expect("credits");
        pool.close().await;
        (ledger, paid, credits)
    }

    /// A channel to a service instance at `url` that carries this system's service token, as
    /// the services' own clients do.
    pub fn grpc_channel(&self, url: &str) -> ServiceChannel {
        platform::grpc::channel(url, Duration::from_secs(30), &self.service_token)
            .expect("a gRPC channel")
    }

    /// A gRPC client straight to the first membership instance (the credits API of the services).
    pub fn credit_client(
        &self,
    ) -> proto::membership::v1::credit_service_client::CreditServiceClient<ServiceChannel> {
        proto::membership::v1::credit_service_client::CreditServiceClient::new(
            self.grpc_channel(&self.membership_urls[0]),
        )
    }

    /// The user id of an openid.
    pub async fn user_id(&self, openid: &str) -> i64 {
        let pool = self.db.primary().await;
        let user = membership_svc::store::users::find_by_openid(&pool, openid)
            .await
            .expect("read the user")
            .expect("the user exists");
        pool.close().await;
        user.id
    }
}
