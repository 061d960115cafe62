//! The three systems under load, on one MariaDB primary + replica and one Redis: this system
//! (release binaries as separate processes), the seed's stack, and the one-hop baseline. Each
//! gets its own databases; the sandbox plays WeChat for all of them.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use platform::testing::{Replica, TestDatabase};
use sandbox::Sandbox;
use secrecy::ExposeSecret;

use crate::procs::{Process, free_port, release_dir, run_to_end, wait_listening, wait_ready};

/// A system's base URL; its processes run while it lives.
pub struct Running {
    pub url: String,
    processes: Vec<Process>,
}

impl Running {
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.processes
            .iter()
            .find(|process| process.name == name)?
            .pid()
    }
}

fn pair(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_owned(), value.into())
}

fn database_env(db: &TestDatabase) -> Vec<(String, String)> {
    vec![
        pair("DATABASE_URL", db.primary_url.expose_secret()),
        pair("DATABASE_REPLICA_URL", db.replica_url.expose_secret()),
    ]
}

/// What every process of this system is told about its neighbours.
fn common_env(sandbox: &Sandbox) -> Vec<(String, String)> {
    let cfg = sandbox.config();
    vec![
        pair("REDIS_URL", platform::testing::redis_url().expose_secret()),
        pair("REDIS_KEY_PREFIX", platform::testing::redis_prefix()),
        pair("WECHAT_APPID", &cfg.appid),
        pair("LOG_FORMAT", "json"),
        pair("RUST_LOG", "warn"),
    ]
}

/// Migrates and starts stats, membership, photo and the gateway; returns when the gateway is
/// ready.
pub async fn start_ours(
    sandbox: &Sandbox,
    dbs: [&TestDatabase; 3],
    logs: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<Running> {
    let [membership_db, photo_db, stats_db] = dbs;
    let bin = release_dir();
    let cfg = sandbox.config();
    let common = common_env(sandbox);
    let [stats_port, membership_port, photo_port, gateway_port] =
        [free_port()?, free_port()?, free_port()?, free_port()?];
    let gateway = format!("http://127.0.0.1:{gateway_port}");

    let mut stats_env = database_env(stats_db);
    stats_env.extend(common.clone());
    stats_env.push(pair("STATS_LISTEN_ADDR", format!("127.0.0.1:{stats_port}")));
    run_to_end(&bin.join("stats-svc"), &["migrate"], &stats_env).await?;
    let stats = Process::start(
        "stats",
        &bin.join("stats-svc"),
        &["serve"],
        &stats_env,
        logs,
    )?;

    let mut membership_env = database_env(membership_db);
    membership_env.extend(common.clone());
    membership_env.extend([
        pair(
            "MEMBERSHIP_LISTEN_ADDR",
            format!("127.0.0.1:{membership_port}"),
        ),
        pair("WECHAT_SECRET", &cfg.secret),
        pair("WECHAT_API_BASE", sandbox.url()),
        pair("WECHAT_MP_BASE", sandbox.url()),
        pair("WECHATPAY_MCH_ID", &cfg.mch_id),
        pair("WECHATPAY_API_KEY", &cfg.pay_key),
        pair("WECHATPAY_API_BASE", sandbox.url()),
        pair(
            "WECHATPAY_NOTIFY_URL",
            format!("{gateway}/api/v1/payment/notify"),
        ),
    ]);
    run_to_end(&bin.join("membership-svc"), &["migrate"], &membership_env).await?;
    let membership = Process::start(
        "membership",
        &bin.join("membership-svc"),
        &["serve"],
        &membership_env,
        logs,
    )?;

    let mut photo_env = database_env(photo_db);
    photo_env.extend(common.clone());
    photo_env.extend([
        pair("PHOTO_LISTEN_ADDR", format!("127.0.0.1:{photo_port}")),
        pair(
            "MEMBERSHIP_GRPC_URL",
            format!("http://127.0.0.1:{membership_port}"),
        ),
        pair("STATS_GRPC_URL", format!("http://127.0.0.1:{stats_port}")),
    ]);
    run_to_end(&bin.join("photo-svc"), &["migrate"], &photo_env).await?;
    let photo = Process::start(
        "photo",
        &bin.join("photo-svc"),
        &["serve"],
        &photo_env,
        logs,
    )?;

    let mut gateway_env = common;
    gateway_env.extend([
        pair("GATEWAY_LISTEN_ADDR", format!("127.0.0.1:{gateway_port}")),
        pair(
            "MEMBERSHIP_GRPC_URL",
            format!("http://127.0.0.1:{membership_port}"),
        ),
        pair("PHOTO_GRPC_URL", format!("http://127.0.0.1:{photo_port}")),
        pair("STATS_GRPC_URL", format!("http://127.0.0.1:{stats_port}")),
        pair("WECHAT_TOKEN", &cfg.push_token),
        pair("WECHAT_OPEN_BASE", sandbox.url()),
        pair("PUBLIC_BASE_URL", &gateway),
        // The load is many calls from few clients; the allowances are not what is measured.
        pair("QRCODE_PER_CLIENT_PER_MINUTE", "1000000"),
        pair("QRCODE_PER_IP_PER_MINUTE", "1000000"),
        pair("PHOTO_LOOKUPS_PER_CLIENT_PER_MINUTE", "100000000"),
        pair("LOCATIONS_PER_CLIENT_PER_MINUTE", "100000000"),
    ]);
    let mut gateway_process = Process::start(
        "gateway",
        &bin.join("gateway"),
        &["serve"],
        &gateway_env,
        logs,
    )?;
    wait_ready(
        http,
        &format!("{gateway}/readyz"),
        Duration::from_secs(120),
        &mut gateway_process,
    )
    .await
    .context("this system")?;
    Ok(Running {
        url: gateway,
        processes: vec![stats, membership, photo, gateway_process],
    })
}

/// Starts the seed's stack (its `run.sh`, 2 workers) on its own database.
pub async fn start_peer(
    sandbox: &Sandbox,
    peer_dir: &Path,
    db: &TestDatabase,
    logs: &Path,
    http: &reqwest::Client,
) -> anyhow::Result<Running> {
    let cfg = sandbox.config();
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let mut env = vec![
        pair("REDIS_URL", platform::testing::redis_url().expose_secret()),
        pair("WECHAT_APPID", &cfg.appid),
        pair("WECHAT_SECRET", &cfg.secret),
        pair("WECHAT_TOKEN", &cfg.push_token),
        pair("WECHAT_API_BASE", sandbox.url()),
        pair("WECHATPAY_MCH_ID", &cfg.mch_id),
        pair("WECHATPAY_API_KEY", &cfg.pay_key),
        pair("WECHATPAY_API_BASE", sandbox.url()),
        pair(
            "WECHATPAY_NOTIFY_URL",
            format!("{url}/api/v1/payment/notify"),
        ),
        pair("QR_RATE_PER_MINUTE", "1000000"),
        pair("RECONCILE_INTERVAL", "0"),
    ];
    env.extend(database_env(db));
    let port_text = port.to_string();
    let mut process = Process::start(
        "peer",
        &peer_dir.join("run.sh"),
        &["-w", "2", "-p", &port_text],
        &env,
        logs,
    )?;
    wait_ready(
        http,
        &format!("{url}/healthz"),
        Duration::from_secs(300),
        &mut process,
    )
    .await
    .context("the seed's stack")?;
    Ok(Running {
        url,
        processes: vec![process],
    })
}

/// Starts the one-hop baseline on this system's membership replica.
pub async fn start_one_hop(db: &TestDatabase, logs: &Path) -> anyhow::Result<Running> {
    let port = free_port()?;
    let env = vec![pair("DATABASE_URL", db.replica_url.expose_secret())];
    let addr = format!("127.0.0.1:{port}");
    let process = Process::start(
        "one-hop",
        &release_dir().join("one-hop"),
        &[&addr],
        &env,
        logs,
    )?;
    wait_listening(port, Duration::from_secs(30)).await?;
    Ok(Running {
        url: format!("http://{addr}"),
        processes: vec![process],
    })
}

/// Creates the databases of one system (each with the shared replica).
pub async fn databases(label: &str) -> TestDatabase {
    TestDatabase::create(label, Replica::Shared).await
}

/// A QR code for `client_id` through `base`'s API: (client token, ticket).
pub async fn create_qrcode(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
) -> anyhow::Result<(String, String)> {
    let qr: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/wechat/qrcode"))
        .json(&serde_json::json!({ "client_id": client_id }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = qr["client_token"].as_str().context("a token")?.to_owned();
    let ticket = qr["ticket"].as_str().context("a ticket")?.to_owned();
    Ok((token, ticket))
}

/// Binds `count` clients to WeChat users through `base`'s QR code and push; returns
/// (client id, token) pairs.
pub async fn bind_clients(
    sandbox: &Sandbox,
    http: &reqwest::Client,
    base: &str,
    label: &str,
    count: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut bound = Vec::with_capacity(count);
    for i in 0..count {
        let client_id = format!("{label}-pc-{i}");
        let (token, ticket) = create_qrcode(http, base, &client_id).await?;
        sandbox
            .scan(
                &format!("{base}/api/v1/auth/wechat/verify"),
                &ticket,
                &format!("o_{label}_{i}"),
            )
            .await
            .map_err(|err| anyhow::anyhow!("scan: {err:?}"))?;
        bound.push((client_id, token));
    }
    Ok(bound)
}
