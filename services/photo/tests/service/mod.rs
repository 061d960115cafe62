//! The photo service alone, for service-level tests: its own database (migrated) on the test
//! primary and replica, the test Redis under a fresh prefix, the real location data and local
//! model, and one instance serving gRPC on port 0. No cloud model (no DashScope key), no
//! membership (its address answers nothing) and no stats: what a test of photo's own API needs.

#![allow(clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

use std::time::Duration;

use sha2::Digest as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use photo_svc::config::PhotoConfig;
use platform::grpc::{ServiceChannel, ServiceToken};
use platform::testing::{Replica, TestDatabase};
use proto::photo::v1 as pb;
use proto::photo::v1::classifier_service_client::ClassifierServiceClient;

pub struct Photo {
    pub db: TestDatabase,
    pub url: String,
    pub redis_prefix: String,
    token: ServiceToken,
    stop: CancellationToken,
}

impl Photo {
    pub async fn start() -> Self {
        let db = TestDatabase::migrated("photo", Replica::Shared, &photo_svc::MIGRATOR).await;
        let token = platform::testing::service_token();
        let redis_prefix = platform::testing::redis_prefix();
        let mut cfg = PhotoConfig::defaults().expect("photo defaults");
        cfg.service.service_token = token.clone();
        cfg.database.database_url = db.primary_url.clone();
        cfg.database.database_replica_url = Some(db.replica_url.clone());
        cfg.redis.redis_url = platform::testing::redis_url();
        cfg.redis.redis_key_prefix = redis_prefix.clone();
        // Nothing here reaches membership, stats or DashScope: the cloud is off.
        cfg.membership_grpc_url = "http://127.0.0.1:9".into();
        cfg.stats_grpc_url = None;
        cfg.dashscope.api_key = None;
        cfg.edits
            .set_storage_dir(std::env::temp_dir().join("xintu-edits").join(&db.name));
        // Stored results past their retention go within a test's patience.
        cfg.classify.classification_cache_retention_interval_ms = 100;
        cfg.validate().expect("photo test config");
        let deps = photo_svc::Dependencies {
            pools: db.pools(),
            redis: platform::redis::connect(&cfg.redis.redis_url)
                .await
                .expect("the test redis"),
            locator: photo_svc::load_locator(&cfg.geodata_dir())
                .await
                .expect("location data (run deploy/local/fetch-geodata.sh)"),
            local_classifier: photo_svc::load_local_classifier(&cfg)
                .await
                .expect("the local model (run deploy/local/fetch-model.sh)"),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        let serving = stop.clone();
        tokio::spawn(async move {
            if let Err(err) = photo_svc::run(&cfg, deps, listener, serving).await {
                panic!("photo stopped: {err:#}");
            }
        });
        Self {
            db,
            url,
            redis_prefix,
            token,
            stop,
        }
    }

    fn channel(&self) -> ServiceChannel {
        platform::grpc::channel(&self.url, Duration::from_secs(30), &self.token)
            .expect("a channel to photo")
    }

    pub fn classifier(&self) -> ClassifierServiceClient<ServiceChannel> {
        ClassifierServiceClient::new(self.channel())
    }

    /// Classifies a sample photo for `user_id` in `mode`.
    pub async fn classify(
        &self,
        name: &str,
        mode: pb::ClassifyMode,
    ) -> Result<pb::Classification, tonic::Status> {
        self.classifier()
            .classify(pb::ClassifyRequest {
                image: sample(name),
                mode: mode.into(),
                caller: Some(caller()),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Looks digests up in the result cache.
    pub async fn lookup(&self, digests: &[String]) -> Result<Vec<pb::LookupItem>, tonic::Status> {
        self.classifier()
            .lookup(pb::LookupRequest {
                sha256: digests.to_vec(),
            })
            .await
            .map(|answer| answer.into_inner().items)
    }

    /// Rows of the durable result cache.
    pub async fn cached_rows(&self) -> i64 {
        let pool = self.db.primary().await;
        let rows = sqlx::query_scalar("SELECT COUNT(*) FROM classification_cache")
            .fetch_one(&pool)
            .await
            .expect("count the cached results");
        pool.close().await;
        rows
    }
}

impl Drop for Photo {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A bound app's user, as the gateway names it.
pub fn caller() -> pb::Caller {
    pb::Caller {
        user_id: 1,
        client_id: "pc-service-test".into(),
        openid: "o_service_test".into(),
    }
}

/// The sample photos `deploy/local/fetch-model.sh` prepares (scikit-image's data).
pub fn sample(name: &str) -> Vec<u8> {
    photo_model::data_dir::sample_photo(name).expect("a sample photo")
}

/// Lower-case hex SHA-256, computed here, independently of the service.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}
