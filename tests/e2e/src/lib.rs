//! Starts the whole system in-process for tests and benchmarks: the sandbox (WeChat), membership
//! instances and gateway instances on loopback port 0, on a fresh database of the real MariaDB
//! primary + replica and a fresh Redis key prefix.

#![allow(clippy::expect_used, clippy::panic)] // test harness: failing loudly is the point

use std::time::Duration;

use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use gateway::config::GatewayConfig;
use membership_svc::config::MembershipConfig;
use platform::testing::{Replica, TestDatabase};
use sandbox::{Sandbox, SandboxConfig};

/// A safe-mode EncodingAESKey for tests (43 characters).
pub const TEST_AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

pub mod photo;

/// How to start the system.
#[derive(Clone, Debug)]
pub struct Options {
    pub safe_mode: bool,
    pub replica: Replica,
    pub memberships: usize,
    pub gateways: usize,
    pub qrcode_expire_seconds: u32,
    pub qrcode_per_client_per_minute: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            safe_mode: false,
            replica: Replica::Shared,
            memberships: 1,
            gateways: 1,
            qrcode_expire_seconds: 600,
            qrcode_per_client_per_minute: 1000,
        }
    }
}

/// The running system. Dropping it stops every server.
pub struct System {
    pub sandbox: Sandbox,
    pub db: TestDatabase,
    /// The photo service's own database.
    pub photo_db: TestDatabase,
    pub gateway_urls: Vec<String>,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for System {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl System {
    pub async fn start(options: Options) -> Self {
        let sandbox_cfg = SandboxConfig {
            aes_key: options.safe_mode.then(|| TEST_AES_KEY.to_owned()),
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start_local(sandbox_cfg.clone())
            .await
            .expect("start the sandbox");
        let db = TestDatabase::create("membership", options.replica).await;
        let primary = db.primary().await;
        membership_svc::MIGRATOR
            .run(&primary)
            .await
            .expect("migrate the test database");
        primary.close().await;
        db.wait_for_replica().await;

        let shutdown = CancellationToken::new();
        let redis_prefix = platform::testing::redis_prefix();
        let photo = photo::start(options.replica, &redis_prefix, shutdown.child_token()).await;
        let mut membership_urls = Vec::new();
        for _ in 0..options.memberships.max(1) {
            let mut cfg = MembershipConfig::defaults().expect("membership defaults");
            cfg.database_url = db.primary_url.clone();
            cfg.database_replica_url = Some(db.replica_url.clone());
            cfg.database_max_connections = 10;
            cfg.redis_url = platform::testing::redis_url();
            cfg.redis_key_prefix = redis_prefix.clone();
            cfg.wechat_appid = sandbox_cfg.appid.clone();
            cfg.wechat_secret = SecretString::from(sandbox_cfg.secret.clone());
            cfg.wechat_api_base = sandbox.url();
            cfg.wechat_mp_base = sandbox.url();
            cfg.qrcode_expire_seconds = options.qrcode_expire_seconds;
            let deps = membership_svc::connect(&cfg)
                .await
                .expect("membership dependencies");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            membership_urls.push(format!("http://{}", listener.local_addr().expect("addr")));
            let stop = shutdown.child_token();
            tokio::spawn(async move {
                if let Err(err) = membership_svc::run(&cfg, deps, listener, stop).await {
                    eprintln!("membership stopped: {err:#}");
                }
            });
        }
        let mut gateway_urls = Vec::new();
        for index in 0..options.gateways.max(1) {
            let mut cfg = GatewayConfig::defaults().expect("gateway defaults");
            cfg.membership_grpc_url = membership_urls[index % membership_urls.len()].clone();
            cfg.photo_grpc_url = photo.url.clone();
            cfg.wechat_appid = sandbox_cfg.appid.clone();
            cfg.wechat_token = SecretString::from(sandbox_cfg.push_token.clone());
            cfg.wechat_aes_key = sandbox_cfg.aes_key.clone().map(SecretString::from);
            cfg.qrcode_per_client_per_minute = options.qrcode_per_client_per_minute;
            cfg.qrcode_per_ip_per_minute = 100_000;
            let state = gateway::AppState::new(cfg).expect("gateway state");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            gateway_urls.push(format!("http://{}", listener.local_addr().expect("addr")));
            let stop = shutdown.child_token();
            tokio::spawn(async move {
                if let Err(err) = gateway::run(state, listener, stop).await {
                    eprintln!("gateway stopped: {err:#}");
                }
            });
        }
        let system = Self {
            sandbox,
            db,
            photo_db: photo.db,
            gateway_urls,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            shutdown,
        };
        system.wait_until_ready().await;
        system
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
        for url in &self.gateway_urls {
            for attempt in 0.. {
                let ready = self
                    .http
                    .get(format!("{url}/readyz"))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ready {
                    break;
                }
                assert!(attempt < 200, "gateway {url} never became ready");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }

    /// Asks for a binding QR code for `client_id` through the gateway.
    pub async fn create_qrcode(&self, client_id: &str) -> serde_json::Value {
        self.create_qrcode_via(self.gateway(), client_id).await
    }

    pub async fn create_qrcode_via(&self, gateway: &str, client_id: &str) -> serde_json::Value {
        let response = self
            .http
            .post(format!("{gateway}/api/v1/auth/wechat/qrcode"))
            .json(&serde_json::json!({ "client_id": client_id }))
            .send()
            .await
            .expect("qrcode request");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("qrcode json");
        assert_eq!(status, 200, "qrcode failed: {body}");
        body
    }

    /// Polls the binding status once.
    pub async fn binding(&self, client_id: &str, token: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}/api/v1/auth/wechat/binding", self.gateway()))
            .query(&[("client_id", client_id)])
            .bearer_auth(token)
            .send()
            .await
            .expect("binding request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("binding json"))
    }

    /// Stops every server now.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

/// Rows and balances read straight from the primary, for assertions.
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

    /// Checks the ledger invariant for every user: remaining == sum of ledger deltas.
    pub async fn assert_ledger_invariant(&self) {
        let pool = self.db.primary().await;
        let broken: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM wechat_users u WHERE u.remaining_credits <> \
             (SELECT COALESCE(SUM(l.delta), 0) FROM credit_ledger l WHERE l.user_id = u.id)",
        )
        .fetch_one(&pool)
        .await
        .expect("check the ledger invariant");
        pool.close().await;
        assert_eq!(broken, 0, "users whose balance differs from their ledger");
    }
}
