//! Membership service: WeChat users and app-client bindings (this issue), credits and orders.

pub mod binding;
pub mod config;
pub mod domain;
pub mod error;
pub mod freshness;
pub mod grpc;
pub mod store;
pub mod wechat;

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use platform::db::Pools;
use platform::redis::Keys;
use proto::membership::v1::binding_service_server::BindingServiceServer;

use crate::binding::{BindingRules, Bindings};
use crate::config::MembershipConfig;
use crate::freshness::Freshness;
use crate::grpc::BindingGrpc;
use crate::wechat::{WechatApi, WechatSettings};

/// This service's migrations, run only by `membership-svc migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The gRPC service names reported by health checks.
pub const SERVICE_NAMES: &[&str] = &["membership.v1.BindingService"];

/// Everything a running instance needs, built once at start.
pub struct Dependencies {
    pub pools: Pools,
    pub redis: ConnectionManager,
}

/// Builds the gRPC routes of this service.
pub fn routes(cfg: &MembershipConfig, deps: &Dependencies) -> Result<Routes, wechat::WechatError> {
    let keys = Keys::new(format!("{}:membership", cfg.redis_key_prefix));
    // The token is shared by every service of the deployment, so its key has no service part.
    let shared = Keys::new(format!(
        "{}:wechat:{}",
        cfg.redis_key_prefix, cfg.wechat_appid
    ));
    let wechat = WechatApi::new(
        WechatSettings {
            api_base: cfg.wechat_api_base.clone(),
            appid: cfg.wechat_appid.clone(),
            secret: cfg.wechat_secret.clone(),
            timeout: Duration::from_millis(cfg.wechat_timeout_ms),
            token_key: shared.key(&["access_token"]),
            token_lock_key: shared.key(&["access_token", "lock"]),
        },
        deps.redis.clone(),
    )?;
    let freshness = Freshness::new(
        deps.redis.clone(),
        keys,
        Duration::from_secs(u64::from(cfg.qrcode_expire_seconds) + 60),
    );
    let bindings = Bindings::new(
        deps.pools.clone(),
        wechat,
        freshness,
        BindingRules {
            qrcode_expire_seconds: cfg.qrcode_expire_seconds,
            mp_base: cfg.wechat_mp_base.clone(),
            new_follower_credits: cfg.new_follower_credits,
        },
    );
    Ok(Routes::new(BindingServiceServer::new(BindingGrpc::new(
        bindings,
    ))))
}

/// Serves the service on `listener` until `shutdown` is cancelled.
pub async fn run(
    cfg: &MembershipConfig,
    deps: Dependencies,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let routes = routes(cfg, &deps)?;
    tracing::info!(addr = %listener.local_addr()?, "membership service listening");
    platform::grpc::serve(listener, routes, SERVICE_NAMES, shutdown)
        .await
        .map_err(|err| anyhow::anyhow!(err))
}

/// Connects the pools (lazily) and Redis.
pub async fn connect(cfg: &MembershipConfig) -> anyhow::Result<Dependencies> {
    let pools = Pools::connect_lazy(
        &cfg.database_url,
        cfg.database_replica_url.as_ref(),
        &platform::db::PoolSettings {
            max_connections: cfg.database_max_connections,
            ..Default::default()
        },
    )?;
    let redis = platform::redis::connect(&cfg.redis_url).await?;
    Ok(Dependencies { pools, redis })
}
