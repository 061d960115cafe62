//! Use cases: record batches, answer the overview and time series, purge old logs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use sqlx::Acquire as _;
use sqlx::MySqlPool;

use platform::db::Pools;

use crate::error::StatsError;
use crate::store::{self, EndpointRow, NewLog, SeriesRow, Totals};

/// Longest range one query may cover, so a dashboard cannot scan the whole history by mistake.
const MAX_RANGE_DAYS: i64 = 400;
/// A batch larger than this is refused (the gateway sends a few hundred at a time).
pub const MAX_BATCH: usize = 5000;
/// After the replica failed to answer, reads go straight to the primary for this long, so each
/// dashboard call does not wait out a connect timeout first.
const REPLICA_RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Stats {
    pools: Pools,
    model_price_fen_per_million_tokens: i64,
    /// Unix milliseconds until which the replica is skipped (0: use it).
    replica_down_until_ms: Arc<AtomicU64>,
}

pub struct Overview {
    pub totals: Totals,
    pub endpoints: Vec<EndpointRow>,
    pub model_cost_fen: i64,
}

pub fn check_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), StatsError> {
    if from >= to {
        return Err(StatsError::invalid("range", "from must be before to"));
    }
    if to - from > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(StatsError::invalid(
            "range",
            format!("at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok(())
}

/// Estimated model cost in fen, rounded to the nearest fen.
pub fn model_cost_fen(tokens: i64, price_fen_per_million: i64) -> i64 {
    (tokens.saturating_mul(price_fen_per_million) + 500_000) / 1_000_000
}

impl Stats {
    pub fn new(pools: Pools, model_price_fen_per_million_tokens: i64) -> Self {
        Self {
            pools,
            model_price_fen_per_million_tokens,
            replica_down_until_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs a read on the replica, or on the primary while the replica is unreachable (a replica
    /// outage must not take the dashboards down; SYSTEM.md §8, reliability §3.3). Errors that are
    /// not about reaching the server (a bad query) are returned as they are.
    async fn read<'a, T, F, Fut>(&'a self, query: F) -> Result<T, sqlx::Error>
    where
        F: Fn(&'a MySqlPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        if now_ms() < self.replica_down_until_ms.load(Ordering::Relaxed) {
            return query(&self.pools.primary).await;
        }
        match query(&self.pools.replica).await {
            Err(err) if platform::db::is_unavailable(&err) => {
                tracing::warn!(error = %err, "stats replica unreachable; reading the primary");
                self.replica_down_until_ms.store(
                    now_ms().saturating_add(REPLICA_RETRY_AFTER.as_millis() as u64),
                    Ordering::Relaxed,
                );
                query(&self.pools.primary).await
            }
            other => other,
        }
    }

    pub async fn record(&self, logs: &[NewLog]) -> Result<u64, StatsError> {
        if logs.len() > MAX_BATCH {
            return Err(StatsError::invalid(
                "records",
                format!("at most {MAX_BATCH} per batch"),
            ));
        }
        Ok(store::insert_batch(&self.pools.primary, logs).await?)
    }

    /// Statistics read the replica: a few seconds of staleness are fine for dashboards.
    pub async fn overview(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Overview, StatsError> {
        check_range(from, to)?;
        let totals = self.read(|pool| store::totals(pool, from, to)).await?;
        let endpoints = self
            .read(|pool| store::endpoints(pool, from, to, 50))
            .await?;
        let model_cost_fen =
            model_cost_fen(totals.model_tokens, self.model_price_fen_per_million_tokens);
        Ok(Overview {
            totals,
            endpoints,
            model_cost_fen,
        })
    }

    pub async fn series(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_secs: i64,
    ) -> Result<Vec<SeriesRow>, StatsError> {
        check_range(from, to)?;
        Ok(self
            .read(|pool| store::series(pool, from, to, bucket_secs))
            .await?)
    }

    /// Deletes logs older than `retention_days` in small batches, pausing between them so the
    /// replica keeps up. One instance at a time: a MySQL named lock guards the run.
    pub async fn purge(&self, retention_days: u32, batch: u32) -> Result<u64, StatsError> {
        let cutoff = Utc::now() - chrono::Duration::days(i64::from(retention_days));
        let mut conn = self.pools.primary.acquire().await?;
        let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK('xintu_stats_retention', 0)")
            .fetch_one(&mut *conn)
            .await?;
        if locked != Some(1) {
            return Ok(0);
        }
        let mut purged = 0;
        let result = async {
            loop {
                let mut tx = conn.begin().await?;
                let deleted = store::purge_batch(&mut tx, cutoff, batch.max(1)).await?;
                tx.commit().await?;
                purged += deleted;
                if deleted < u64::from(batch.max(1)) {
                    break Ok::<_, StatsError>(purged);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        .await;
        let _ = sqlx::query("SELECT RELEASE_LOCK('xintu_stats_retention')")
            .execute(&mut *conn)
            .await;
        result
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_rounded_fen() {
        assert_eq!(model_cost_fen(1_000_000, 150), 150);
        assert_eq!(model_cost_fen(3_333, 150), 0);
        assert_eq!(model_cost_fen(10_000, 150), 2);
        assert_eq!(model_cost_fen(0, 150), 0);
    }

    #[test]
    fn ranges_are_checked() {
        let now = Utc::now();
        assert!(check_range(now, now).is_err());
        assert!(check_range(now, now - chrono::Duration::hours(1)).is_err());
        assert!(check_range(now - chrono::Duration::days(401), now).is_err());
        assert!(check_range(now - chrono::Duration::days(1), now).is_ok());
    }
}
