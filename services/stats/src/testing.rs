//! A stats service instance for tests, on its own fresh database (migrated) on the test primary
//! and replica, serving gRPC on port 0; it can be stopped and started again on the same address
//! (its callers' recording must survive its outage). The service-level tests and the end-to-end
//! system both start it this way.

#![allow(clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::StatsConfig;
use platform::grpc::{ServiceChannel, ServiceToken};
use platform::testing::{Replica, TestDatabase};
use proto::stats::v1::stats_service_client::StatsServiceClient;

pub struct StatsService {
    pub addr: SocketAddr,
    pub db: TestDatabase,
    service_token: ServiceToken,
    stop: std::sync::Mutex<CancellationToken>,
    parent: CancellationToken,
}

impl StatsService {
    /// The service alone, on the shared replica, with a token of its own; it stops when dropped.
    pub async fn start_alone() -> Self {
        Self::start_alone_on(Replica::Shared).await
    }

    /// The same, reading from the given replica.
    pub async fn start_alone_on(replica: Replica) -> Self {
        start(
            replica,
            &platform::testing::service_token(),
            CancellationToken::new(),
        )
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of its gRPC API, carrying the service token.
    pub fn client(&self) -> StatsServiceClient<ServiceChannel> {
        let channel = platform::grpc::channel(
            &self.url(),
            std::time::Duration::from_secs(30),
            &self.service_token,
        )
        .expect("a channel to stats");
        StatsServiceClient::new(channel)
    }

    /// Stops the instance (its port closes).
    pub fn stop(&self) {
        self.stop.lock().expect("stats stop token").cancel();
    }

    /// Starts it again on the same address.
    pub async fn restart(&self) {
        let stop = self.parent.child_token();
        *self.stop.lock().expect("stats stop token") = stop.clone();
        let mut listener = None;
        for _ in 0..100 {
            match TcpListener::bind(self.addr).await {
                Ok(bound) => {
                    listener = Some(bound);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        serve(
            &self.db,
            &self.service_token,
            listener.expect("rebind the stats address"),
            stop,
        );
    }
}

fn serve(db: &TestDatabase, token: &ServiceToken, listener: TcpListener, stop: CancellationToken) {
    let mut cfg = StatsConfig::defaults().expect("stats defaults");
    cfg.service.service_token = token.clone();
    cfg.database.database_url = db.primary_url.clone();
    cfg.database.database_replica_url = Some(db.replica_url.clone());
    let pools = db.pools();
    tokio::spawn(async move {
        if let Err(err) = crate::run(&cfg, pools, listener, stop).await {
            eprintln!("stats stopped: {err:#}");
        }
    });
}

pub async fn start(
    replica: Replica,
    service_token: &ServiceToken,
    parent: CancellationToken,
) -> StatsService {
    let db = TestDatabase::migrated("stats", replica, &crate::MIGRATOR).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = parent.child_token();
    serve(&db, service_token, listener, stop.clone());
    StatsService {
        addr,
        db,
        service_token: service_token.clone(),
        stop: std::sync::Mutex::new(stop),
        parent,
    }
}

impl Drop for StatsService {
    fn drop(&mut self) {
        self.stop();
    }
}
