//! `request_logs` and its hourly rollups: batched inserts on the primary, statistics from the
//! rollups on the replica (whole hours), retention.

use std::collections::{BTreeMap, BTreeSet};

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

/// Inserts a batch of logs and folds it into the hourly rollups, in one transaction.
pub async fn insert_batch(conn: &mut MySqlConnection, logs: &[NewLog]) -> Result<u64, sqlx::Error> {
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
    let stored = query.build().execute(&mut *conn).await?.rows_affected();
    let rollup = Rollup::of(logs);
    upsert_rollup(conn, &rollup).await?;
    Ok(stored)
}

fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp() - at.timestamp().rem_euclid(3600);
    DateTime::from_timestamp(seconds, 0).unwrap_or(at)
}

#[derive(Default)]
struct Counts {
    requests: i64,
    server_errors: i64,
    client_errors: i64,
    cache: i64,
    local: i64,
    model: i64,
    tokens: i64,
}

/// A batch folded by hour. BTree order makes every writer lock rows in the same order, so
/// concurrent batches wait for each other instead of deadlocking.
#[derive(Default)]
struct Rollup {
    endpoints: BTreeMap<(DateTime<Utc>, String), Counts>,
    latencies: BTreeMap<(DateTime<Utc>, String, u32), i64>,
    clients: BTreeSet<(DateTime<Utc>, String)>,
}

impl Rollup {
    fn of(logs: &[NewLog]) -> Self {
        let mut rollup = Self::default();
        for log in logs {
            let hour = hour_of(log.at);
            let counts = rollup
                .endpoints
                .entry((hour, log.endpoint.clone()))
                .or_default();
            counts.requests += 1;
            counts.server_errors += i64::from(log.status >= 500);
            counts.client_errors += i64::from((400..500).contains(&log.status));
            counts.cache += i64::from(log.source == "cache");
            counts.local += i64::from(log.source == "local");
            counts.model += i64::from(log.source == "model");
            counts.tokens += i64::from(log.model_tokens);
            *rollup
                .latencies
                .entry((hour, log.endpoint.clone(), log.latency_ms))
                .or_default() += 1;
            if !log.client_id.is_empty() {
                rollup.clients.insert((hour, log.client_id.clone()));
            }
        }
        rollup
    }
}

async fn upsert_rollup(conn: &mut MySqlConnection, rollup: &Rollup) -> Result<(), sqlx::Error> {
    let mut query: QueryBuilder<'_, MySql> = QueryBuilder::new(
        "INSERT INTO hourly_endpoint_stats (hour, endpoint, requests, server_errors, client_errors, \
         classified_cache, classified_local, classified_model, model_tokens) ",
    );
    query.push_values(&rollup.endpoints, |mut row, ((hour, endpoint), c)| {
        row.push_bind(hour)
            .push_bind(endpoint)
            .push_bind(c.requests)
            .push_bind(c.server_errors)
            .push_bind(c.client_errors)
            .push_bind(c.cache)
            .push_bind(c.local)
            .push_bind(c.model)
            .push_bind(c.tokens);
    });
    query.push(
        " ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests), \
         server_errors = server_errors + VALUES(server_errors), \
         client_errors = client_errors + VALUES(client_errors), \
         classified_cache = classified_cache + VALUES(classified_cache), \
         classified_local = classified_local + VALUES(classified_local), \
         classified_model = classified_model + VALUES(classified_model), \
         model_tokens = model_tokens + VALUES(model_tokens)",
    );
    query.build().execute(&mut *conn).await?;

    let mut query: QueryBuilder<'_, MySql> =
        QueryBuilder::new("INSERT INTO hourly_latency (hour, endpoint, latency_ms, requests) ");
    query.push_values(
        &rollup.latencies,
        |mut row, ((hour, endpoint, latency), n)| {
            row.push_bind(hour)
                .push_bind(endpoint)
                .push_bind(latency)
                .push_bind(n);
        },
    );
    query.push(" ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests)");
    query.build().execute(&mut *conn).await?;

    if !rollup.clients.is_empty() {
        let mut query: QueryBuilder<'_, MySql> =
            QueryBuilder::new("INSERT IGNORE INTO hourly_clients (hour, client_id) ");
        query.push_values(&rollup.clients, |mut row, (hour, client)| {
            row.push_bind(hour).push_bind(client);
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

#[derive(Debug, Default, FromRow)]
pub struct Totals {
    pub requests: i64,
    pub server_errors: i64,
    pub client_errors: i64,
    pub classified_cache: i64,
    pub classified_local: i64,
    pub classified_model: i64,
    pub model_tokens: i64,
}

/// Totals over whole hours [from, to).
pub async fn totals(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Totals, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(requests), 0) AS SIGNED) AS requests, \
         CAST(COALESCE(SUM(server_errors), 0) AS SIGNED) AS server_errors, \
         CAST(COALESCE(SUM(client_errors), 0) AS SIGNED) AS client_errors, \
         CAST(COALESCE(SUM(classified_cache), 0) AS SIGNED) AS classified_cache, \
         CAST(COALESCE(SUM(classified_local), 0) AS SIGNED) AS classified_local, \
         CAST(COALESCE(SUM(classified_model), 0) AS SIGNED) AS classified_model, \
         CAST(COALESCE(SUM(model_tokens), 0) AS SIGNED) AS model_tokens \
         FROM hourly_endpoint_stats WHERE hour >= ? AND hour < ?",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

pub async fn active_clients(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(DISTINCT client_id) FROM hourly_clients WHERE hour >= ? AND hour < ?",
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
}

/// Requests and server errors per endpoint, busiest first.
pub async fn endpoints(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<EndpointRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT endpoint, CAST(SUM(requests) AS SIGNED) AS requests, \
         CAST(SUM(server_errors) AS SIGNED) AS errors \
         FROM hourly_endpoint_stats WHERE hour >= ? AND hour < ? \
         GROUP BY endpoint ORDER BY requests DESC, endpoint LIMIT ?",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The latency histogram (value → count, ascending) of one endpoint.
pub async fn latency_histogram(
    pool: &MySqlPool,
    endpoint: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(u32, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT latency_ms, CAST(SUM(requests) AS SIGNED) FROM hourly_latency \
         WHERE hour >= ? AND hour < ? AND endpoint = ? GROUP BY latency_ms ORDER BY latency_ms",
    )
    .bind(from)
    .bind(to)
    .bind(endpoint)
    .fetch_all(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct SeriesRow {
    pub bucket_start: i64,
    pub requests: i64,
    pub errors: i64,
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
        "SELECT CAST(FLOOR(UNIX_TIMESTAMP(hour) / ?) * ? AS SIGNED) AS bucket_start, \
         CAST(SUM(requests) AS SIGNED) AS requests, \
         CAST(SUM(server_errors) AS SIGNED) AS errors, \
         CAST(SUM(classified_model) AS SIGNED) AS model_calls \
         FROM hourly_endpoint_stats WHERE hour >= ? AND hour < ? \
         GROUP BY bucket_start ORDER BY bucket_start",
    )
    .bind(bucket_secs)
    .bind(bucket_secs)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// Distinct active clients per bucket.
pub async fn series_clients(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_secs: i64,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(FLOOR(UNIX_TIMESTAMP(hour) / ?) * ? AS SIGNED) AS bucket_start, \
         COUNT(DISTINCT client_id) FROM hourly_clients WHERE hour >= ? AND hour < ? \
         GROUP BY bucket_start",
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
