//! The replica's own account of its replication (`SHOW REPLICA STATUS`), sampled in the
//! background and exported as gauges (names in the README's metrics table):
//! `xintu.db.replica.lag` (s, `Seconds_Behind_Master`) and `xintu.db.replica.replicating`
//! (1 while the replica's IO and SQL threads both run, else 0), each with the replica's
//! `server.address` and `server.port`.
//!
//! Sampled rather than read in the gauge callbacks: a callback is synchronous and runs on the
//! exporter's schedule, a query is neither. Reading the status takes the `SLAVE MONITOR`
//! privilege (granted to the service users in `deploy/mysql/init`); where it is missing or the
//! replica cannot be reached the gauges report nothing rather than a stale value, and the
//! replica fallbacks counter (`xintu.db.replica.fallbacks`) tells the rest.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::ObservableGauge;
use sqlx::mysql::{MySqlPool, MySqlRow};
use sqlx::{Executor, Row};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What one `SHOW REPLICA STATUS` said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationState {
    pub io_running: bool,
    pub sql_running: bool,
    /// `Seconds_Behind_Master`; None while the SQL thread is stopped or the server cannot tell.
    pub seconds_behind: Option<u64>,
}

impl ReplicationState {
    /// Both threads run: the replica receives and applies the primary's changes.
    pub fn replicating(&self) -> bool {
        self.io_running && self.sql_running
    }
}

/// Reads the replication state of the server behind `pool`; `Ok(None)` when that server is not
/// a replica (no replication configured, e.g. a pool that reads the primary).
pub async fn read(pool: &MySqlPool) -> Result<Option<ReplicationState>, sqlx::Error> {
    // Plain text protocol: SHOW statements are not all preparable. (Through the executor:
    // `RawSql::fetch_optional` of sqlx 0.8.6 fails on an empty answer, as `fetch_one` does.)
    let row = pool
        .fetch_optional(sqlx::raw_sql("SHOW SLAVE STATUS"))
        .await?;
    row.map(|row| parse(&row)).transpose()
}

fn parse(row: &MySqlRow) -> Result<ReplicationState, sqlx::Error> {
    let running = |column: &str| -> Result<bool, sqlx::Error> {
        let value: Option<String> = row.try_get(column)?;
        Ok(value.as_deref() == Some("Yes"))
    };
    // The column is BIGINT UNSIGNED in MariaDB and BIGINT in MySQL.
    let seconds_behind = match row.try_get::<Option<u64>, _>("Seconds_Behind_Master") {
        Ok(value) => value,
        Err(_) => row
            .try_get::<Option<i64>, _>("Seconds_Behind_Master")?
            .and_then(|v| u64::try_from(v).ok()),
    };
    Ok(ReplicationState {
        io_running: running("Slave_IO_Running")?,
        sql_running: running("Slave_SQL_Running")?,
        seconds_behind,
    })
}

/// Samples the replica behind `pool` every `interval` until `shutdown`, feeding the gauges.
pub fn spawn_monitor(
    pool: MySqlPool,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let options = pool.connect_options();
    let attributes = vec![
        KeyValue::new("server.address", options.get_host().to_owned()),
        KeyValue::new("server.port", i64::from(options.get_port())),
    ];
    let latest: Arc<Mutex<Option<ReplicationState>>> = Arc::default();
    let gauges = Gauges::register(latest.clone(), attributes);
    tokio::spawn(async move {
        // The gauges live as long as the sampling.
        let _gauges = gauges;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous = "replicating";
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let sample = read(&pool).await;
            if let Ok(mut slot) = latest.lock() {
                *slot = sample.as_ref().ok().copied().flatten();
            }
            let now = condition(&sample);
            if now != previous {
                match &sample {
                    Ok(Some(state)) if state.replicating() => {
                        tracing::info!(?state, "the replica is replicating again");
                    }
                    Ok(state) => tracing::warn!(?state, condition = now, "replica not replicating"),
                    Err(err) => tracing::warn!(error = %err, "cannot read the replica's status"),
                }
                previous = now;
            }
        }
    })
}

/// The replica's condition in one word, to log changes once rather than every sample.
fn condition(sample: &Result<Option<ReplicationState>, sqlx::Error>) -> &'static str {
    match sample {
        Ok(Some(state)) if state.replicating() => "replicating",
        Ok(Some(_)) => "stopped",
        Ok(None) => "not_a_replica",
        Err(_) => "unreadable",
    }
}

/// The two observable gauges, reading the latest sample.
struct Gauges {
    _lag: ObservableGauge<u64>,
    _replicating: ObservableGauge<u64>,
}

impl Gauges {
    fn register(latest: Arc<Mutex<Option<ReplicationState>>>, attributes: Vec<KeyValue>) -> Self {
        let meter = crate::telemetry::meter("xintu.db");
        let current = move || latest.lock().ok().and_then(|slot| *slot);
        let lag_current = current.clone();
        let lag_attributes = attributes.clone();
        let lag = meter
            .u64_observable_gauge("xintu.db.replica.lag")
            .with_unit("s")
            .with_description(
                "How far the replica is behind the primary (Seconds_Behind_Master); \
                 absent while it is not replicating",
            )
            .with_callback(move |observer| {
                if let Some(seconds) = lag_current().and_then(|s| s.seconds_behind) {
                    observer.observe(seconds, &lag_attributes);
                }
            })
            .build();
        let replicating = meter
            .u64_observable_gauge("xintu.db.replica.replicating")
            .with_unit("1")
            .with_description(
                "1 while the replica's IO and SQL threads both run, 0 when either stopped; \
                 absent when its status cannot be read",
            )
            .with_callback(move |observer| {
                if let Some(state) = current() {
                    observer.observe(u64::from(state.replicating()), &attributes);
                }
            })
            .build();
        Self {
            _lag: lag,
            _replicating: replicating,
        }
    }
}
