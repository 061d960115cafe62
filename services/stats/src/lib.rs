//! Stats service: stores request logs and answers statistics (from the replica).

// Library code reports through tracing (structured, filtered, exported), never stdout;
// binaries, benches and tests may print.
#![warn(clippy::print_stdout)]

pub mod config;
pub mod erasure;
pub mod error;
pub mod grpc;
pub mod stats;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use platform::db::Pools;
use proto::stats::v1::stats_service_server::StatsServiceServer;

use crate::config::StatsConfig;
use crate::stats::Stats;

/// This service's migrations, run only by `stats-svc migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub const SERVICE_NAMES: &[&str] = &["stats.v1.StatsService"];

pub fn connect(cfg: &StatsConfig) -> anyhow::Result<Pools> {
    Ok(cfg.database.connect_lazy()?)
}

/// Serves until `shutdown`; purges old logs every retention interval meanwhile.
pub async fn run(
    cfg: &StatsConfig,
    pools: Pools,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let replica_monitor =
        pools.spawn_replica_monitor(cfg.database.replica_status_interval(), shutdown.clone());
    let stats = Stats::new(pools, cfg.model_price_fen_per_million_tokens);
    let retention = spawn_retention(stats.clone(), cfg, shutdown.clone());
    let routes = Routes::new(StatsServiceServer::new(grpc::StatsGrpc::new(stats)));
    tracing::info!(addr = %listener.local_addr()?, "stats service listening");
    let served = platform::grpc::serve(
        listener,
        routes,
        SERVICE_NAMES,
        cfg.service.reflection(),
        cfg.service.service_token.clone(),
        shutdown,
    )
    .await;
    // A purge round in progress finishes before the process may exit.
    let _ = retention.await;
    if let Some(monitor) = replica_monitor {
        let _ = monitor.await;
    }
    served.map_err(|err| anyhow::anyhow!(err))
}

fn spawn_retention(
    stats: Stats,
    cfg: &StatsConfig,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let interval = Duration::from_millis(cfg.retention_interval_ms.max(1000));
    let (days, batch) = (cfg.retention_days, cfg.retention_batch_rows);
    platform::shutdown::every(interval, shutdown, move || {
        let stats = stats.clone();
        async move {
            match stats.purge(days, batch).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "old request logs purged"),
                Err(err) => tracing::warn!(error = %err, "retention round failed"),
            }
        }
    })
}
