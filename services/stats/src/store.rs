//! `request_logs` and its hourly rollups: batched inserts on the primary, statistics from the
//! rollups on the replica (whole hours), retention.
//!
//! Two kinds of rows share the tables: gateway (HTTP) requests and the services' model calls
//! (endpoint `model:<model>`). A request that made a model call is counted once as a request and
//! once as a call, so request, error and latency figures read `kind = 'http'` rollups only, and
//! model calls and tokens read `kind = 'model'` ones only.
//!
//! Erasure (`ForgetCaller`) blanks a caller's ids in `request_logs`, renames their clients in
//! `hourly_clients`, and notes digests in `erased_callers` so late records are blanked too.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySql, MySqlConnection, MySqlPool, QueryBuilder};

/// What a row stands for: the rollups' `kind` column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Http,
    ModelCall,
}

impl Kind {
    fn column(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::ModelCall => "model",
        }
    }
}

/// A model call's endpoint in the tables is `model:<model>`, apart from every route template
/// (those start with '/'), and its method is MODEL.
pub const MODEL_CALL_ENDPOINT_PREFIX: &str = "model:";
pub const MODEL_CALL_METHOD: &str = "MODEL";

/// One row to store.
#[derive(Clone)]
pub struct NewLog {
    pub at: DateTime<Utc>,
    pub kind: Kind,
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
#[tracing::instrument(name = "stats.insert_batch", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
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
    kind: Kind,
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
            counts.kind = log.kind;
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
        "INSERT INTO hourly_endpoint_stats (hour, endpoint, kind, requests, server_errors, \
         client_errors, classified_cache, classified_local, classified_model, model_tokens) ",
    );
    query.push_values(&rollup.endpoints, |mut row, ((hour, endpoint), c)| {
        row.push_bind(hour)
            .push_bind(endpoint)
            .push_bind(c.kind.column())
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

/// Totals of a range: HTTP requests (with their classification mix), and the tokens of the
/// model calls.
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
#[tracing::instrument(name = "stats.totals", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn totals(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Totals, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(IF(kind = 'http', requests, 0)), 0) AS SIGNED) AS requests, \
         CAST(COALESCE(SUM(IF(kind = 'http', server_errors, 0)), 0) AS SIGNED) AS server_errors, \
         CAST(COALESCE(SUM(IF(kind = 'http', client_errors, 0)), 0) AS SIGNED) AS client_errors, \
         CAST(COALESCE(SUM(IF(kind = 'http', classified_cache, 0)), 0) AS SIGNED) AS classified_cache, \
         CAST(COALESCE(SUM(IF(kind = 'http', classified_local, 0)), 0) AS SIGNED) AS classified_local, \
         CAST(COALESCE(SUM(IF(kind = 'http', classified_model, 0)), 0) AS SIGNED) AS classified_model, \
         CAST(COALESCE(SUM(IF(kind = 'model', model_tokens, 0)), 0) AS SIGNED) AS model_tokens \
         FROM hourly_endpoint_stats WHERE hour >= ? AND hour < ?",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

#[tracing::instrument(name = "stats.active_clients", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
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

/// Requests and server errors per HTTP endpoint, busiest first.
#[tracing::instrument(name = "stats.endpoints", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn endpoints(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<EndpointRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT endpoint, CAST(SUM(requests) AS SIGNED) AS requests, \
         CAST(SUM(server_errors) AS SIGNED) AS errors \
         FROM hourly_endpoint_stats WHERE hour >= ? AND hour < ? AND kind = 'http' \
         GROUP BY endpoint ORDER BY requests DESC, endpoint LIMIT ?",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct ModelCallRow {
    /// `model:<model>`.
    pub endpoint: String,
    pub calls: i64,
    /// Calls without an answer (status >= 400).
    pub errors: i64,
    pub tokens: i64,
    /// Calls of the cloud model (the rest ran the local one).
    pub cloud_calls: i64,
}

/// Calls, failed calls and tokens per model, most calls first.
#[tracing::instrument(name = "stats.model_calls", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn model_calls(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ModelCallRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT endpoint, CAST(SUM(requests) AS SIGNED) AS calls, \
         CAST(SUM(server_errors + client_errors) AS SIGNED) AS errors, \
         CAST(SUM(model_tokens) AS SIGNED) AS tokens, \
         CAST(SUM(classified_model) AS SIGNED) AS cloud_calls \
         FROM hourly_endpoint_stats WHERE hour >= ? AND hour < ? AND kind = 'model' \
         GROUP BY endpoint ORDER BY calls DESC, endpoint LIMIT ?",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The latency histogram (value → count, ascending) of one endpoint.
#[tracing::instrument(name = "stats.latency_histogram", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
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

/// Counts per bucket of `bucket_secs` (3600 or 86400), aligned to UTC: HTTP requests and server
/// errors, and calls of the cloud model.
#[tracing::instrument(name = "stats.series", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn series(
    pool: &MySqlPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket_secs: i64,
) -> Result<Vec<SeriesRow>, sqlx::Error> {
    // Sessions run in UTC (sqlx sets time_zone '+00:00'), so UNIX_TIMESTAMP reads stored UTC.
    sqlx::query_as(
        "SELECT CAST(FLOOR(UNIX_TIMESTAMP(hour) / ?) * ? AS SIGNED) AS bucket_start, \
         CAST(SUM(IF(kind = 'http', requests, 0)) AS SIGNED) AS requests, \
         CAST(SUM(IF(kind = 'http', server_errors, 0)) AS SIGNED) AS errors, \
         CAST(SUM(IF(kind = 'model', classified_model, 0)) AS SIGNED) AS model_calls \
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
#[tracing::instrument(name = "stats.series_clients", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
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

/// Notes that batch `batch_id` is being stored: false when it was stored before (the caller
/// then stores nothing). In the batch's transaction, so a batch that fails is not noted.
#[tracing::instrument(name = "stats.claim_batch", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim_batch(conn: &mut MySqlConnection, batch_id: &str) -> Result<bool, sqlx::Error> {
    let noted = sqlx::query("INSERT IGNORE INTO record_batches (batch_id) VALUES (?)")
        .bind(batch_id)
        .execute(&mut *conn)
        .await?;
    Ok(noted.rows_affected() == 1)
}

/// Forgets batch ids noted before `cutoff`; returns how many went.
#[tracing::instrument(name = "stats.forget_batches", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn forget_batches(
    conn: &mut MySqlConnection,
    cutoff: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM record_batches WHERE received_at < ?")
            .bind(cutoff)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}

/// The next transaction on `conn` reads committed rows and locks only the rows it changes. An
/// erasure's UPDATEs scan whole tables (no index on the ids: erasures are rare, and every
/// inserted row would pay for one); under REPEATABLE READ they would lock every scanned row and
/// gap, holding up every batch being recorded until the scan ends.
pub async fn next_transaction_read_committed(
    conn: &mut MySqlConnection,
) -> Result<(), sqlx::Error> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Notes tombstones, or renews them (a second erasure restarts the day).
#[tracing::instrument(name = "stats.note_erased", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn note_erased(
    conn: &mut MySqlConnection,
    digests: &[[u8; 32]],
) -> Result<(), sqlx::Error> {
    if digests.is_empty() {
        return Ok(());
    }
    let mut query: QueryBuilder<'_, MySql> =
        QueryBuilder::new("INSERT INTO erased_callers (digest) ");
    query.push_values(digests, |mut row, digest| {
        row.push_bind(digest.as_slice());
    });
    query.push(" ON DUPLICATE KEY UPDATE erased_at = CURRENT_TIMESTAMP(3)");
    query.build().execute(&mut *conn).await?;
    Ok(())
}

/// Which of `digests` (sorted) were erased at or after `since`. A locking read, in the batch's
/// (REPEATABLE READ) transaction: an erasure of one of these callers waits for the batch to
/// commit before noting its tombstone (and then blanks the batch's rows), or the batch waits for
/// the erasure and sees the tombstone. Without it a batch that looked before the erasure could
/// store the ids after the erasure had blanked the rows.
#[tracing::instrument(name = "stats.erased_among", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn erased_among(
    conn: &mut MySqlConnection,
    digests: &[[u8; 32]],
    since: DateTime<Utc>,
) -> Result<HashSet<[u8; 32]>, sqlx::Error> {
    if digests.is_empty() {
        return Ok(HashSet::new());
    }
    let mut query: QueryBuilder<'_, MySql> =
        QueryBuilder::new("SELECT digest FROM erased_callers WHERE digest IN (");
    let mut list = query.separated(", ");
    for digest in digests {
        list.push_bind(digest.as_slice());
    }
    query.push(") AND erased_at >= ");
    query.push_bind(since);
    query.push(" LOCK IN SHARE MODE");
    let rows: Vec<Vec<u8>> = query.build_query_scalar().fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|digest| <[u8; 32]>::try_from(digest).ok())
        .collect())
}

/// Blanks the openid and client id of the rows of `openid` (unless empty) or of one of
/// `client_ids`; returns how many rows matched. Blanked rows no longer match, so a second call
/// finds none.
#[tracing::instrument(name = "stats.blank_logs", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn blank_logs(
    conn: &mut MySqlConnection,
    openid: &str,
    client_ids: &BTreeSet<String>,
) -> Result<u64, sqlx::Error> {
    if openid.is_empty() && client_ids.is_empty() {
        return Ok(0);
    }
    let mut query: QueryBuilder<'_, MySql> =
        QueryBuilder::new("UPDATE request_logs SET openid = '', client_id = '' WHERE ");
    push_caller_filter(&mut query, openid, client_ids);
    // sqlx asks for found rows, so this counts matched rows (all of which change).
    Ok(query.build().execute(&mut *conn).await?.rows_affected())
}

/// `(openid = … OR client_id IN (…))` for a caller with a non-empty openid or client ids. An
/// empty id is never matched: it would take every anonymous row. BINARY: exactly these ids, as
/// the tombstones match them; the columns' collation ignores case and would take other callers'
/// ids along.
fn push_caller_filter<'a>(
    query: &mut QueryBuilder<'a, MySql>,
    openid: &'a str,
    client_ids: &'a BTreeSet<String>,
) {
    query.push("(");
    if !openid.is_empty() {
        query.push("BINARY openid = ").push_bind(openid);
    }
    if !client_ids.is_empty() {
        if !openid.is_empty() {
            query.push(" OR ");
        }
        query.push("BINARY client_id IN (");
        let mut list = query.separated(", ");
        for client_id in client_ids {
            list.push_bind(client_id);
        }
        list.push_unseparated(")");
    }
    query.push(")");
}

/// One request log row of a caller, as their copy of their personal data shows it.
#[derive(Debug, FromRow, serde::Serialize)]
pub struct CallerLog {
    pub at: DateTime<Utc>,
    pub endpoint: String,
    pub method: String,
    pub status: u16,
    pub latency_ms: u32,
    pub client_id: String,
    pub error_code: String,
    pub request_id: String,
    /// How many rows of the caller there are in all (the same on every row).
    #[serde(skip)]
    pub matching: i64,
}

/// The newest `limit` rows of a caller (see [`push_caller_filter`]) and how many there are in
/// all, from one statement, so the count is of the same rows even while records arrive. It scans
/// the table: the logs have no index by caller, which every insert would pay for.
#[tracing::instrument(name = "stats.caller_logs", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn caller_logs(
    pool: &MySqlPool,
    openid: &str,
    client_ids: &BTreeSet<String>,
    limit: u32,
) -> Result<(Vec<CallerLog>, u64), sqlx::Error> {
    if openid.is_empty() && client_ids.is_empty() {
        return Ok((Vec::new(), 0));
    }
    // The window count is taken before LIMIT applies.
    let mut query: QueryBuilder<'_, MySql> = QueryBuilder::new(
        "SELECT at, endpoint, method, status, latency_ms, client_id, error_code, request_id, \
         COUNT(*) OVER () AS matching FROM request_logs WHERE ",
    );
    push_caller_filter(&mut query, openid, client_ids);
    query
        .push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(limit);
    let rows: Vec<CallerLog> = query.build_query_as().fetch_all(pool).await?;
    let total = rows.first().map_or(0, |row| row.matching);
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// Renames clients in `hourly_clients` (client id → pseudonym), in every hour, in one scan. The
/// collation's matching is kept here: the key already folds ids that differ in case into one row,
/// and renaming a row keeps every hour's count.
#[tracing::instrument(name = "stats.rename_clients", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn rename_clients(
    conn: &mut MySqlConnection,
    pseudonyms: &BTreeMap<String, String>,
) -> Result<u64, sqlx::Error> {
    if pseudonyms.is_empty() {
        return Ok(0);
    }
    let mut query: QueryBuilder<'_, MySql> =
        QueryBuilder::new("UPDATE hourly_clients SET client_id = CASE client_id");
    for (client_id, pseudonym) in pseudonyms {
        query
            .push(" WHEN ")
            .push_bind(client_id)
            .push(" THEN ")
            .push_bind(pseudonym);
    }
    query.push(" END WHERE client_id IN (");
    let mut list = query.separated(", ");
    for client_id in pseudonyms.keys() {
        list.push_bind(client_id);
    }
    list.push_unseparated(")");
    Ok(query.build().execute(&mut *conn).await?.rows_affected())
}

/// Deletes tombstones noted before `cutoff` (they are no longer looked at); returns how many went.
#[tracing::instrument(name = "stats.forget_tombstones", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn forget_tombstones(
    conn: &mut MySqlConnection,
    cutoff: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM erased_callers WHERE erased_at < ?")
            .bind(cutoff)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}

/// Deletes up to `batch` rows older than `cutoff`, oldest first; returns how many went.
#[tracing::instrument(name = "stats.purge_batch", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(kind: Kind, endpoint: &str, source: &str, tokens: u32) -> NewLog {
        NewLog {
            at: DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default(),
            kind,
            endpoint: endpoint.into(),
            method: "POST".into(),
            status: 200,
            latency_ms: 10,
            client_id: "c1".into(),
            openid: String::new(),
            source: source.into(),
            model_tokens: tokens,
            error_code: String::new(),
            request_id: "r1".into(),
        }
    }

    #[test]
    fn model_calls_roll_up_apart_from_the_requests_that_made_them() {
        use Kind::{Http, ModelCall};
        let rollup = Rollup::of(&[
            log(Http, "/api/v1/photos/classify/batch", "model", 2400),
            log(ModelCall, "model:qwen-vl-max", "model", 1200),
            log(ModelCall, "model:qwen-vl-max", "model", 1200),
            log(ModelCall, "model:local-efficientnet-lite0", "local", 0),
        ]);
        let rows: Vec<(&str, &str, i64, i64)> = rollup
            .endpoints
            .iter()
            .map(|((_, endpoint), c)| (endpoint.as_str(), c.kind.column(), c.requests, c.tokens))
            .collect();
        assert_eq!(
            rows,
            [
                ("/api/v1/photos/classify/batch", "http", 1, 2400),
                ("model:local-efficientnet-lite0", "model", 1, 0),
                ("model:qwen-vl-max", "model", 2, 2400),
            ]
        );
        assert_eq!(rollup.clients.len(), 1, "one client in one hour");
    }
}
