//! Photo service: offline location (this issue); classification and image edits to come.

pub mod config;
pub mod domain;
pub mod error;
pub mod geodata;
pub mod grpc;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use redis::aio::ConnectionManager;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use platform::db::Pools;
use proto::photo::v1::location_service_server::LocationServiceServer;

use crate::config::PhotoConfig;
use crate::domain::location::Locator;
use crate::grpc::LocationGrpc;

/// This service's migrations, run only by `photo-svc migrate`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The gRPC service names reported by health checks.
pub const SERVICE_NAMES: &[&str] = &["photo.v1.LocationService"];

/// Everything a running instance needs, built once at start.
pub struct Dependencies {
    pub pools: Pools,
    pub redis: ConnectionManager,
    pub locator: Arc<Locator>,
}

/// Builds the gRPC routes of this service.
pub fn routes(cfg: &PhotoConfig, deps: &Dependencies) -> Routes {
    Routes::new(LocationServiceServer::new(LocationGrpc::new(
        deps.locator.clone(),
        cfg.location_batch_max,
    )))
}

/// Serves the service on `listener` until `shutdown` is cancelled.
pub async fn run(
    cfg: &PhotoConfig,
    deps: Dependencies,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let routes = routes(cfg, &deps);
    tracing::info!(addr = %listener.local_addr()?, "photo service listening");
    platform::grpc::serve(listener, routes, SERVICE_NAMES, shutdown)
        .await
        .map_err(|err| anyhow::anyhow!(err))
}

/// Connects the pools (lazily) and Redis, and loads the location data. A service without its
/// data does not start: it would answer every location wrongly.
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
    Ok(Dependencies {
        pools,
        redis,
        locator,
    })
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
