//! `request_logs`: batched inserts on the primary, statistics on the replica, retention.
//!
//! Percentiles use MariaDB's PERCENTILE_CONT window function (exact, interpolated); MySQL has no
//! equivalent, which ties this query to MariaDB.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySql, MySqlConnection, MySqlPool, QueryBuilder};

/// One row to store.
pub struct NewLog {
    pub at: DateTime<Utc>,
    pub endpoint: String,
    pub method: String,
    pub status: u16,
    pub latency_ms: u32,
    pub client_id: String,
    pub openid: String,
    pub source: String,
    pub model_tokens: u32,
    pub error_code: String,
    pub request_id: String,
}

/// Inserts a batch in one multi-row statement.
pub async fn insert_batch(pool: &MySqlPool, logs: &[NewLog]) -> Result<u64, sqlx::Error> {
    if logs.is_empty() {
        return Ok(0);
    }
    let mut query: QueryBuilder<'_, MySql> = QueryBuilder::new(
        "INSERT INTO request_logs (at, endpoint, method, status, latency_ms, client_id, openid, \
         source, model_tokens, error_code, request_id) ",
    );
    query.push_values(logs, |mut row, log| {
        row.push_bind(log.at)
            .push_bind(&log.endpoint)
            .push_bind(&log.method)
            .push_bind(log.status)
            .push_bind(log.latency_ms)
            .push_bind(&log.client_id)
            .push_bind(&log.openid)
            .push_bind(&log.source)
            .push_bind(log.model_tokens)
            .push_bind(&log.error_code)
            .push_bind(&log.request_id);
    });
    Ok(query.build().execute(pool).await?.rows_affected())
}

#[derive(Debug, Default, FromRow)]
pub struct Totals {
    pub requests: i64,
    pub active_clients: i64,
    pub server_errors: i64,
    pub client_errors: i64,
    pub classified_cache: i64,
    pub classified_local: i64,
    pub classified_model: i64,
    pub model_tokens: i64,
}

pub async fn totals(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Totals, sqlx::Error> {
    sqlx::query_as(
        "SELECT COUNT(*) AS requests, \
         COUNT(DISTINCT NULLIF(client_id, '')) AS active_clients, \
         CAST(COALESCE(SUM(status >= 500), 0) AS SIGNED) AS server_errors, \
         CAST(COALESCE(SUM(status BETWEEN 400 AND 499), 0) AS SIGNED) AS client_errors, \
         CAST(COALESCE(SUM(source = 'cache'), 0) AS SIGNED) AS classified_cache, \
         CAST(COALESCE(SUM(source = 'local'), 0) AS SIGNED) AS classified_local, \
         CAST(COALESCE(SUM(source = 'model'), 0) AS SIGNED) AS classified_model, \
         CAST(COALESCE(SUM(model_tokens), 0) AS SIGNED) AS model_tokens \
         FROM request_logs WHERE at >= ? AND at < ?",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct EndpointRow {
    pub endpoint: String,
    pub requests: i64,
    pub errors: i64,
    pub p50: f64,
    pub p95: f64,
}

/// Requests, server errors and exact p50/p95 latency per endpoint, busiest first.
pub async fn endpoints(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<EndpointRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT endpoint, requests, errors, CAST(p50 AS DOUBLE) AS p50, CAST(p95 AS DOUBLE) AS p95 \
         FROM ( \
           SELECT endpoint, \
             COUNT(*) OVER w AS requests, \
             CAST(SUM(status >= 500) OVER w AS SIGNED) AS errors, \
             PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY latency_ms) \
               OVER (PARTITION BY endpoint) AS p50, \
             PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY latency_ms) \
               OVER (PARTITION BY endpoint) AS p95, \
             ROW_NUMBER() OVER w AS nth \
           FROM request_logs WHERE at >= ? AND at < ? \
           WINDOW w AS (PARTITION BY endpoint) \
         ) per_endpoint WHERE nth = 1 ORDER BY requests DESC, endpoint LIMIT ?",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct SeriesRow {
    pub bucket_start: i64,
    pub requests: i64,
    pub errors: i64,
    pub active_clients: i64,
    pub model_calls: i64,
}

/// Counts per bucket of `bucket_secs` (3600 or 86400), aligned to UTC.
pub async fn series(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_secs: i64,
) -> Result<Vec<SeriesRow>, sqlx::Error> {
    // Sessions run in UTC (sqlx sets time_zone '+00:00'), so UNIX_TIMESTAMP reads stored UTC.
    sqlx::query_as(
        "SELECT CAST(FLOOR(UNIX_TIMESTAMP(at) / ?) * ? AS SIGNED) AS bucket_start, \
         COUNT(*) AS requests, \
         CAST(COALESCE(SUM(status >= 500), 0) AS SIGNED) AS errors, \
         COUNT(DISTINCT NULLIF(client_id, '')) AS active_clients, \
         CAST(COALESCE(SUM(source = 'model'), 0) AS SIGNED) AS model_calls \
         FROM request_logs WHERE at >= ? AND at < ? \
         GROUP BY bucket_start ORDER BY bucket_start",
    )
    .bind(bucket_secs)
    .bind(bucket_secs)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// Deletes up to `batch` rows older than `cutoff`, oldest first; returns how many went.
pub async fn purge_batch(
    conn: &mut MySqlConnection,
    cutoff: DateTime<Utc>,
    batch: u32,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM request_logs WHERE at < ? ORDER BY at LIMIT ?")
            .bind(cutoff)
            .bind(batch)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}
