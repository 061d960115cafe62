//! Use cases: record batches, answer the overview and time series, forget callers, purge old
//! logs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Acquire as _;

use platform::db::Pools;

use crate::erasure::{self, Caller};
use crate::error::StatsError;
use crate::store::{self, NewLog, Totals};

/// Most request log rows in a caller's copy of their personal data (a busy app logs a few
/// thousand requests a day; the logs are kept 90 days).
pub const EXPORT_MAX_ROWS: u32 = 10_000;

/// Longest range one query may cover, so a dashboard cannot scan the whole history by mistake.
const MAX_RANGE_DAYS: i64 = 400;
/// A batch larger than this is refused (the gateway sends a few hundred at a time).
pub const MAX_BATCH: usize = 5000;
/// Batch ids are the senders' UUIDs (32 hex digits, `record_batches.batch_id`).
pub const MAX_BATCH_ID: usize = 32;

#[derive(Clone)]
pub struct Stats {
    pools: Pools,
    model_price_fen_per_million_tokens: i64,
}

/// Requests, errors and latencies count HTTP requests; tokens and cost come from model calls.
pub struct Overview {
    pub totals: Totals,
    pub active_clients: i64,
    pub endpoints: Vec<EndpointLatency>,
    pub model_calls: Vec<ModelCalls>,
    pub model_cost_fen: i64,
}

/// The calls of one model.
pub struct ModelCalls {
    /// Without the `model:` prefix.
    pub model: String,
    /// The cloud model (else the local one).
    pub cloud: bool,
    pub calls: i64,
    pub errors: i64,
    pub tokens: i64,
    pub p50: f64,
    pub p95: f64,
}

pub struct EndpointLatency {
    pub endpoint: String,
    pub requests: i64,
    pub errors: i64,
    pub p50: f64,
    pub p95: f64,
}

pub struct SeriesPoint {
    pub bucket_start: i64,
    pub requests: i64,
    pub errors: i64,
    pub active_clients: i64,
    pub model_calls: i64,
}

/// Statistics cover whole hours: `from` is rounded down and `to` up to the hour.
pub fn whole_hours(from: DateTime<Utc>, to: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let floor = |at: DateTime<Utc>| at.timestamp() - at.timestamp().rem_euclid(3600);
    let start = floor(from);
    let end = if to.timestamp() % 3600 == 0 {
        to.timestamp()
    } else {
        floor(to) + 3600
    };
    (
        DateTime::from_timestamp(start, 0).unwrap_or(from),
        DateTime::from_timestamp(end, 0).unwrap_or(to),
    )
}

/// The `p` percentile of a histogram (value → count, ascending) with linear interpolation
/// between neighbouring values: what PERCENTILE_CONT gives over the raw values.
pub fn percentile_cont(histogram: &[(u32, i64)], p: f64) -> f64 {
    let total: i64 = histogram.iter().map(|(_, n)| *n).sum();
    if total <= 0 {
        return 0.0;
    }
    let position = p.clamp(0.0, 1.0) * (total - 1) as f64;
    let lower = position.floor() as i64;
    let fraction = position - lower as f64;
    let value_at = |index: i64| {
        let mut seen = 0;
        for (value, count) in histogram {
            seen += count;
            if index < seen {
                return f64::from(*value);
            }
        }
        histogram.last().map_or(0.0, |(value, _)| f64::from(*value))
    };
    let low = value_at(lower);
    if fraction == 0.0 {
        return low;
    }
    low + fraction * (value_at(lower + 1) - low)
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
        }
    }

    /// Stores a batch of records and folds it into the rollups, in one transaction. A non-empty
    /// `batch_id` seen before stores nothing (returns 0): the sender's retry of a batch whose
    /// answer it did not get. Records of callers forgotten within the last day are stored with
    /// their ids blanked, before the rollups see them.
    pub async fn record(&self, batch_id: &str, logs: &[NewLog]) -> Result<u64, StatsError> {
        if batch_id.len() > MAX_BATCH_ID {
            return Err(StatsError::invalid(
                "batch_id",
                format!("at most {MAX_BATCH_ID} characters"),
            ));
        }
        if logs.len() > MAX_BATCH {
            return Err(StatsError::invalid(
                "records",
                format!("at most {MAX_BATCH} per batch"),
            ));
        }
        let digests = erasure::digests_of(logs);
        // Concurrent batches update the same rollup rows; a deadlock runs the batch again.
        let stored = platform::db::retry_transaction(
            || async {
                let mut tx = self.pools.primary.begin().await?;
                if !batch_id.is_empty() && !store::claim_batch(&mut tx, batch_id).await? {
                    return Ok(0);
                }
                let since = erasure::tombstone_cutoff(Utc::now());
                let erased = store::erased_among(&mut tx, &digests, since).await?;
                let stored = if erased.is_empty() {
                    store::insert_batch(&mut tx, logs).await?
                } else {
                    store::insert_batch(&mut tx, &erasure::blanked(logs, &erased)).await?
                };
                tx.commit().await?;
                Ok(stored)
            },
            |err: &sqlx::Error| Some(err),
        )
        .await?;
        Ok(stored)
    }

    /// The JSON copy of a caller's request log rows, newest first, at most
    /// [`EXPORT_MAX_ROWS`]; from the primary, so it holds every row stored when it was asked.
    pub async fn export_caller(&self, caller: &Caller) -> Result<Vec<u8>, StatsError> {
        let (rows, total) = store::caller_logs(
            &self.pools.primary,
            caller.openid(),
            caller.client_ids(),
            EXPORT_MAX_ROWS,
        )
        .await?;
        let document = serde_json::json!({
            "request_log_rows": total,
            "request_log_truncated": total > rows.len() as u64,
            "request_log": rows,
        });
        Ok(serde_json::to_vec(&document)?)
    }

    /// Erases a caller's ids from the logs, in one transaction: blanks their rows (returns how
    /// many), renames their clients in the per-hour client counts, and notes tombstones so their
    /// records still on the way are blanked on arrival. A second call finds nothing more to blank.
    pub async fn forget_caller(&self, caller: &Caller) -> Result<u64, StatsError> {
        let digests = caller.digests();
        let pseudonyms = caller.pseudonyms();
        // Tombstones first: a batch that already looked them up (a locking read) keeps this
        // insert waiting until it commits, so the UPDATE then finds its rows; a batch that looks
        // later waits for this commit and sees them (see `store::erased_among`). Deadlocks with
        // such batches run the erasure again.
        let blanked = platform::db::retry_transaction(
            || async {
                let mut conn = self.pools.primary.acquire().await?;
                store::next_transaction_read_committed(&mut conn).await?;
                let mut tx = conn.begin().await?;
                store::note_erased(&mut tx, &digests).await?;
                let blanked =
                    store::blank_logs(&mut tx, caller.openid(), caller.client_ids()).await?;
                store::rename_clients(&mut tx, &pseudonyms).await?;
                tx.commit().await?;
                Ok(blanked)
            },
            |err: &sqlx::Error| Some(err),
        )
        .await?;
        // The ids themselves stay out of the logs.
        tracing::info!(
            request_logs = blanked,
            client_ids = caller.client_ids().len(),
            "caller forgotten"
        );
        Ok(blanked)
    }

    /// Statistics read the replica: a few seconds of staleness are fine for dashboards.
    pub async fn overview(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Overview, StatsError> {
        check_range(from, to)?;
        let (from, to) = whole_hours(from, to);
        let totals = self
            .pools
            .read(|pool| store::totals(pool, from, to))
            .await?;
        let active_clients = self
            .pools
            .read(|pool| store::active_clients(pool, from, to))
            .await?;
        let rows = self
            .pools
            .read(|pool| store::endpoints(pool, from, to, 50))
            .await?;
        let mut endpoints = Vec::with_capacity(rows.len());
        for row in rows {
            let histogram = self
                .pools
                .read(|pool| store::latency_histogram(pool, &row.endpoint, from, to))
                .await?;
            endpoints.push(EndpointLatency {
                p50: percentile_cont(&histogram, 0.50),
                p95: percentile_cont(&histogram, 0.95),
                endpoint: row.endpoint,
                requests: row.requests,
                errors: row.errors,
            });
        }
        let rows = self
            .pools
            .read(|pool| store::model_calls(pool, from, to, 20))
            .await?;
        let mut model_calls = Vec::with_capacity(rows.len());
        for row in rows {
            let histogram = self
                .pools
                .read(|pool| store::latency_histogram(pool, &row.endpoint, from, to))
                .await?;
            let model = row
                .endpoint
                .strip_prefix(store::MODEL_CALL_ENDPOINT_PREFIX)
                .unwrap_or(&row.endpoint)
                .to_owned();
            model_calls.push(ModelCalls {
                model,
                cloud: row.cloud_calls > 0,
                calls: row.calls,
                errors: row.errors,
                tokens: row.tokens,
                p50: percentile_cont(&histogram, 0.50),
                p95: percentile_cont(&histogram, 0.95),
            });
        }
        let model_cost_fen =
            model_cost_fen(totals.model_tokens, self.model_price_fen_per_million_tokens);
        Ok(Overview {
            totals,
            active_clients,
            endpoints,
            model_calls,
            model_cost_fen,
        })
    }

    pub async fn series(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_secs: i64,
    ) -> Result<Vec<SeriesPoint>, StatsError> {
        check_range(from, to)?;
        let (from, to) = whole_hours(from, to);
        let rows = self
            .pools
            .read(|pool| store::series(pool, from, to, bucket_secs))
            .await?;
        let clients: std::collections::HashMap<i64, i64> = self
            .pools
            .read(|pool| store::series_clients(pool, from, to, bucket_secs))
            .await?
            .into_iter()
            .collect();
        Ok(rows
            .into_iter()
            .map(|row| SeriesPoint {
                active_clients: clients.get(&row.bucket_start).copied().unwrap_or(0),
                bucket_start: row.bucket_start,
                requests: row.requests,
                errors: row.errors,
                model_calls: row.model_calls,
            })
            .collect())
    }

    /// Deletes logs older than `retention_days` in small batches, pausing between them so the
    /// replica keeps up, then the ids of old batches and the tombstones no longer looked at. One
    /// instance at a time: a MySQL named lock guards the run.
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
                    store::forget_batches(&mut conn, Utc::now() - chrono::Duration::days(1))
                        .await?;
                    store::forget_tombstones(&mut conn, erasure::tombstone_cutoff(Utc::now()))
                        .await?;
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
    fn percentiles_match_percentile_cont() {
        // PERCENTILE_CONT over 10, 20, 30, 40: p50 = 25, p95 = 38.5.
        let histogram = [(10, 1), (20, 1), (30, 1), (40, 1)];
        assert_eq!(percentile_cont(&histogram, 0.5), 25.0);
        assert!((percentile_cont(&histogram, 0.95) - 38.5).abs() < 1e-9);
        // Repeated values: 5, 5, 5, 9 → p50 = 5, p95 = 5 + 0.85 × 4.
        let repeated = [(5, 3), (9, 1)];
        assert_eq!(percentile_cont(&repeated, 0.5), 5.0);
        assert!((percentile_cont(&repeated, 0.95) - 8.4).abs() < 1e-9);
        assert_eq!(percentile_cont(&[(7, 1)], 0.95), 7.0);
        assert_eq!(percentile_cont(&[], 0.5), 0.0);
    }

    #[test]
    fn ranges_round_to_whole_hours() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (from, to) = whole_hours(at("2026-11-25T08:59:00Z"), at("2026-11-25T10:00:00Z"));
        assert_eq!(
            (from, to),
            (at("2026-11-25T08:00:00Z"), at("2026-11-25T10:00:00Z"))
        );
        let (_, to) = whole_hours(at("2026-11-25T08:00:00Z"), at("2026-11-25T10:00:01Z"));
        assert_eq!(to, at("2026-11-25T11:00:00Z"));
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
