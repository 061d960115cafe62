//! A photo service instance for the system under test: its own fresh database (migrated) and the
//! real location data, loaded once per test process and shared by every instance in it.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use photo_svc::config::PhotoConfig;
use photo_svc::domain::location::Locator;
use platform::testing::{Replica, TestDatabase};

/// A running photo service.
pub struct PhotoService {
    pub url: String,
    pub db: TestDatabase,
}

static LOCATOR: OnceCell<Arc<Locator>> = OnceCell::const_new();

/// Starts one instance on port 0, stopped by `stop`.
pub async fn start(replica: Replica, redis_prefix: &str, stop: CancellationToken) -> PhotoService {
    let db = TestDatabase::create("photo", replica).await;
    let primary = db.primary().await;
    photo_svc::MIGRATOR
        .run(&primary)
        .await
        .expect("migrate the photo test database");
    primary.close().await;
    db.wait_for_replica().await;

    let mut cfg = PhotoConfig::defaults().expect("photo defaults");
    cfg.database_url = db.primary_url.clone();
    cfg.database_replica_url = Some(db.replica_url.clone());
    cfg.database_max_connections = 5;
    cfg.redis_url = platform::testing::redis_url();
    cfg.redis_key_prefix = redis_prefix.to_owned();
    let locator = LOCATOR
        .get_or_init(|| async {
            photo_svc::load_locator(&cfg.geodata_dir())
                .await
                .expect("location data (run deploy/local/fetch-geodata.sh)")
        })
        .await
        .clone();
    let deps = photo_svc::Dependencies {
        pools: db.pools(),
        redis: platform::redis::connect(&cfg.redis_url)
            .await
            .expect("photo redis"),
        locator,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        if let Err(err) = photo_svc::run(&cfg, deps, listener, stop).await {
            eprintln!("photo stopped: {err:#}");
        }
    });
    PhotoService { url, db }
}
