//! MySQL/MariaDB pools: a primary for writes and fresh reads, a read-only replica for the rest.
//!
//! Writes go to `pools.primary`. Reads that may be a moment stale go through [`Pools::read`] (or
//! [`Pools::read_from`]), which use the replica and fall back to the primary while it is
//! unreachable. Reads that must see a write just made either go to the primary or wait for the
//! write's GTID on the replica ([`Pools::replica_has`]); [`freshness::Freshness`] remembers
//! those GTIDs across requests and instances, so a client's read after its own write is routed
//! by them.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, Executor, MySqlConnection};

use crate::skip_window::SkipWindow;

pub mod freshness;

/// After a read found the replica unreachable, reads meant for it go straight to the primary
/// for this long, so each one does not wait out a connect timeout first.
pub const REPLICA_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The two pools of one service.
#[derive(Clone, Debug)]
pub struct Pools {
    pub primary: MySqlPool,
    pub replica: MySqlPool,
    /// False when no replica URL was given and `replica` reads the primary.
    has_replica: bool,
    replica_down: Arc<SkipWindow>,
    metrics: ReplicaMetrics,
}

/// Which server a read went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    Replica,
    Primary,
}

/// How reads that wanted the replica fared (instrument names in the README's metrics table).
#[derive(Clone, Debug)]
struct ReplicaMetrics {
    /// `xintu.db.replica.gtid_wait` {outcome = reached | lagging | error}
    gtid_waits: Counter<u64>,
    /// `xintu.db.replica.gtid_wait.duration` (s) {outcome}
    gtid_wait_duration: Histogram<f64>,
    /// `xintu.db.replica.fallbacks` {reason}
    fallbacks: Counter<u64>,
}

impl ReplicaMetrics {
    fn new() -> Self {
        let meter = crate::telemetry::meter("xintu.db");
        Self {
            gtid_waits: meter
                .u64_counter("xintu.db.replica.gtid_wait")
                .with_unit("{wait}")
                .with_description(
                    "Waits for the replica to apply a write (MASTER_GTID_WAIT), by outcome: \
                     reached, lagging (not applied in time: the primary is read), error",
                )
                .build(),
            gtid_wait_duration: crate::telemetry::seconds_histogram(
                &meter,
                "xintu.db.replica.gtid_wait.duration",
                "Time spent waiting for the replica to apply a write",
            ),
            fallbacks: meter
                .u64_counter("xintu.db.replica.fallbacks")
                .with_unit("{read}")
                .with_description(
                    "Reads meant for the replica that went to the primary, by reason \
                     (unreachable, skipped while it is marked down)",
                )
                .build(),
        }
    }
}

/// Pool sizing and timeouts.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before failing fast.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

impl Pools {
    /// Builds lazily connecting pools, so a service starts (and reports not ready) while its
    /// database is still coming up. Without a replica URL the replica pool reads the primary.
    pub fn connect_lazy(
        primary_url: &SecretString,
        replica_url: Option<&SecretString>,
        settings: &PoolSettings,
    ) -> Result<Self, sqlx::Error> {
        let primary_options = MySqlConnectOptions::from_str(primary_url.expose_secret())?;
        let replica_options = match replica_url {
            Some(url) => MySqlConnectOptions::from_str(url.expose_secret())?,
            None => primary_options.clone(),
        };
        let primary = pool_options(settings).connect_lazy_with(primary_options);
        let replica = read_only_pool_options(settings).connect_lazy_with(replica_options);
        Ok(Self {
            primary,
            replica,
            has_replica: replica_url.is_some(),
            replica_down: Arc::new(SkipWindow::new()),
            metrics: ReplicaMetrics::new(),
        })
    }

    /// Runs `query` on the replica, or on the primary while the replica is unreachable: a
    /// replica outage must not take reads down with it. An error that is not about reaching
    /// the server (a bad query) is returned as it is.
    pub async fn read<'a, T, F, Fut>(&'a self, query: F) -> Result<T, sqlx::Error>
    where
        F: Fn(&'a MySqlPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        self.read_from(ReadFrom::Replica, query).await.0
    }

    /// Runs `query` where `wanted` says, except that a replica read goes to the primary while
    /// the replica is unreachable; returns the answer and where it came from (a caller that
    /// doubts a replica's negative answer asks the primary again).
    pub async fn read_from<'a, T, F, Fut>(
        &'a self,
        wanted: ReadFrom,
        query: F,
    ) -> (Result<T, sqlx::Error>, ReadFrom)
    where
        F: Fn(&'a MySqlPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        if wanted == ReadFrom::Primary {
            return (query(&self.primary).await, ReadFrom::Primary);
        }
        if self.replica_down.is_open() {
            self.note_replica_fallback("marked_down");
            return (query(&self.primary).await, ReadFrom::Primary);
        }
        match query(&self.replica).await {
            Err(err) if self.has_replica && is_unavailable(&err) => {
                tracing::warn!(error = %err, "replica unreachable; reading the primary");
                self.note_replica_fallback("unreachable");
                self.replica_down.skip_for(REPLICA_RETRY_AFTER);
                (query(&self.primary).await, ReadFrom::Primary)
            }
            answer => (answer, ReadFrom::Replica),
        }
    }

    /// Samples the replica's replication state every `interval` until `shutdown`, for the
    /// replica gauges ([`crate::replica_status`]). None when there is no separate replica or
    /// `interval` is zero.
    pub fn spawn_replica_monitor(
        &self,
        interval: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        (self.has_replica && !interval.is_zero())
            .then(|| crate::replica_status::spawn_monitor(self.replica.clone(), interval, shutdown))
    }

    /// Returns true when the replica has applied `gtid` within `wait`. Any error, a timeout or a
    /// NULL answer counts as "not there": the caller then reads the primary.
    /// Each wait is counted by outcome (`xintu.db.replica.gtid_wait`): how often the replica is
    /// behind by more than `wait` is the replica lag an operator sees.
    #[tracing::instrument(name = "replica.gtid_wait", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
    pub async fn replica_has(&self, gtid: &str, wait: Duration) -> bool {
        if self.replica_down.is_open() {
            self.note_replica_fallback("marked_down");
            return false;
        }
        let started = Instant::now();
        let answer: Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar("SELECT MASTER_GTID_WAIT(?, ?)")
                .bind(gtid)
                .bind(wait.as_secs_f64())
                .fetch_one(&self.replica)
                .await;
        let outcome = match answer {
            Ok(Some(0)) => "reached",
            // -1: timed out; NULL: the replica is not replicating.
            Ok(Some(_)) => "lagging",
            Err(err) if self.has_replica && is_unavailable(&err) => {
                self.replica_down.skip_for(REPLICA_RETRY_AFTER);
                "error"
            }
            Ok(None) | Err(_) => "error",
        };
        let attributes = [KeyValue::new("outcome", outcome)];
        self.metrics.gtid_waits.add(1, &attributes);
        self.metrics
            .gtid_wait_duration
            .record(started.elapsed().as_secs_f64(), &attributes);
        outcome == "reached"
    }

    /// Counts a read that was meant for the replica but went to the primary
    /// (`xintu.db.replica.fallbacks`); `reason` is a short snake_case word.
    pub fn note_replica_fallback(&self, reason: &'static str) {
        self.metrics
            .fallbacks
            .add(1, &[KeyValue::new("reason", reason)]);
    }
}

/// For enums kept in an ENUM column and spelled there by strum's `EnumString` and
/// `IntoStaticStr` derives: `as_str` gives the stored value, and `TryFrom<String>` reads one
/// (for sqlx's `#[sqlx(try_from = "String")]` on a row field), so a value the code does not know
/// is a decode error, never read as some default. The calling crate depends on strum.
#[macro_export]
macro_rules! stored_enum {
    ($($name:ident),+ $(,)?) => {$(
        impl $name {
            /// The value as the column stores it.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl TryFrom<String> for $name {
            type Error = strum::ParseError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }
    )+};
}

/// A connection idle for longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Options of every pool. A connection back from a query a moment ago is handed out as it is:
/// pinging each one before use (sqlx's default) is a second round trip per query, the largest
/// single cost of a short read. One that sat idle is pinged first, so a server restart or a
/// dropped idle connection costs a reconnect, not a failed request.
///
/// Every connection given back is rolled back. sqlx counts a transaction only once the server
/// has answered its BEGIN, so a request cancelled in between (a client's deadline, typically
/// while the database is slow) gives back a connection whose server session is inside a
/// transaction sqlx does not know of: what the next users run on it as statements of their own
/// would never be committed, and the rows they write would stay locked (seen in the soak, where
/// no reconciler could claim an order for minutes after the primary froze). The ROLLBACK runs
/// as the connection goes back to the pool, off the request's path; outside a transaction it
/// does nothing.
fn pool_options(settings: &PoolSettings) -> MySqlPoolOptions {
    MySqlPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_release(|conn, _meta| {
            Box::pin(async move {
                conn.execute("ROLLBACK").await?;
                Ok(true)
            })
        })
}

/// Options for a replica pool: every session is read-only, so a write routed there by mistake
/// fails loudly (SQLSTATE 25006) in tests as in production.
pub fn read_only_pool_options(settings: &PoolSettings) -> MySqlPoolOptions {
    pool_options(settings).after_connect(|conn, _meta| {
        Box::pin(async move {
            conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
            Ok(())
        })
    })
}

/// Returns the GTID of the last transaction committed on this connection (MariaDB
/// `@@last_gtid`), or None where the server does not report one.
pub async fn last_gtid(conn: &mut MySqlConnection) -> Option<String> {
    let gtid: Result<Option<String>, sqlx::Error> = sqlx::query_scalar("SELECT @@last_gtid")
        .fetch_one(&mut *conn)
        .await;
    gtid.ok().flatten().filter(|g| !g.is_empty())
}

/// Returns the primary's binlog position (MariaDB `@@gtid_binlog_pos`): every transaction
/// committed so far, for a reader that must see all of an action made of several transactions.
/// None where the server does not report one.
pub async fn binlog_position(pool: &MySqlPool) -> Option<String> {
    let position: Result<Option<String>, sqlx::Error> =
        sqlx::query_scalar("SELECT @@gtid_binlog_pos")
            .fetch_one(pool)
            .await;
    position.ok().flatten().filter(|p| !p.is_empty())
}

/// Returns true for the error a read-only replica session raises on a write.
pub fn is_read_only_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("25006") || db.message().contains("read-only")
        }
        _ => false,
    }
}

/// Returns true for a duplicate-key error (MySQL reports no constraint names).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Returns true when the error means the database could not be reached (as opposed to a query
/// that the database refused), so callers can answer 503 rather than 500.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
    )
}

/// How many times [`retry_transaction`] runs a transaction again at most (three attempts).
const TRANSACTION_RETRIES: usize = 2;
/// The pause before a transaction runs again, jittered up to twice as long: two transactions
/// that deadlocked each other do not meet again at once.
const TRANSACTION_PAUSE: Duration = Duration::from_millis(25);

/// Runs a whole transaction again after a deadlock or lock wait timeout ([`is_retryable`]), up to
/// three attempts with jittered 25–50 ms pauses, as MySQL asks of its clients. Each attempt must
/// begin its own transaction; `database_error` finds the database error inside the caller's
/// error type.
pub async fn retry_transaction<T, E, F, Fut>(
    attempt: F,
    database_error: impl Fn(&E) -> Option<&sqlx::Error>,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    use backon::{ConstantBuilder, Retryable};

    let pauses = ConstantBuilder::default()
        .with_delay(TRANSACTION_PAUSE)
        .with_max_times(TRANSACTION_RETRIES)
        .with_jitter();
    attempt
        .retry(pauses)
        .when(|err| database_error(err).is_some_and(is_retryable))
        .notify(|err, _| tracing::info!(error = %err, "transaction conflict; running it again"))
        .await
}

/// The first pause of [`retry_while_unavailable`]; each next one doubles, up to a second.
const UNAVAILABLE_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Runs `attempt` (one statement, or a transaction of its own) again while the database cannot
/// be reached ([`is_unavailable`]) and a pause would still end before `until`; returns the first
/// other outcome, or the last error. For work that holds something for a while, such as a lease
/// on a row: giving up at the first failure would leave what it learned to be found again when
/// the lease runs out.
pub async fn retry_while_unavailable<T, F, Fut>(
    until: Instant,
    attempt: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    use backon::{ExponentialBuilder, Retryable};

    let pauses = ExponentialBuilder::default()
        .with_min_delay(UNAVAILABLE_FIRST_PAUSE)
        .with_max_delay(Duration::from_secs(1))
        .without_max_times();
    attempt
        .retry(pauses)
        .when(is_unavailable)
        // A pause that would end past `until` is not taken: the last error is the answer.
        .adjust(|_, pause| pause.filter(|pause| Instant::now() + *pause < until))
        .notify(|err, _| tracing::info!(error = %err, "database unreachable; trying again"))
        .await
}

/// Returns true for errors after which the whole transaction should be run again: deadlock
/// (1213) and lock wait timeout (1205). InnoDB rolls back only the statement on 1205, so the
/// caller must roll back before retrying (dropping the transaction does).
pub fn is_retryable(err: &sqlx::Error) -> bool {
    let number = err
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(sqlx::mysql::MySqlDatabaseError::number);
    matches!(number, Some(1213 | 1205))
}

/// Repeats `delete_batch` (a `DELETE ... LIMIT batch`) until a batch comes back short or
/// `max_batches` ran, so a retention round deletes a backlog without one statement holding many
/// locks or writing one huge binlog event; returns the rows deleted. What is left waits for the
/// next round.
pub async fn delete_in_batches<F, Fut>(
    batch: u32,
    max_batches: u32,
    mut delete_batch: F,
) -> Result<u64, sqlx::Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    for _ in 0..max_batches {
        let deleted = delete_batch(batch).await?;
        total += deleted;
        if deleted < u64::from(batch) {
            break;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn attempts_until(
        until: Instant,
        fail_first: u32,
        error: fn() -> sqlx::Error,
    ) -> (Result<u32, sqlx::Error>, u32) {
        let attempts = AtomicU32::new(0);
        let outcome = retry_while_unavailable(until, || async {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if attempt <= fail_first {
                Err(error())
            } else {
                Ok(attempt)
            }
        })
        .await;
        (outcome, attempts.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn an_unreachable_database_is_tried_again_until_it_answers() {
        let until = Instant::now() + Duration::from_secs(5);
        let (outcome, attempts) = attempts_until(until, 2, || sqlx::Error::PoolTimedOut).await;
        assert_eq!(outcome.unwrap(), 3);
        assert_eq!(attempts, 3);
    }

    #[tokio::test]
    async fn it_gives_up_before_the_deadline_with_the_last_error() {
        let until = Instant::now() + Duration::from_millis(500);
        let (outcome, attempts) =
            attempts_until(until, u32::MAX, || sqlx::Error::PoolTimedOut).await;
        assert!(matches!(outcome, Err(sqlx::Error::PoolTimedOut)));
        // Pauses of 100 and 200 ms fit (the second only on time); the next (400 ms) would end
        // past the deadline, so it is not waited for.
        assert!((2..=3).contains(&attempts), "{attempts}");
    }

    #[tokio::test]
    async fn an_error_of_the_statement_is_not_tried_again() {
        let until = Instant::now() + Duration::from_secs(5);
        let (outcome, attempts) = attempts_until(until, 1, || sqlx::Error::RowNotFound).await;
        assert!(matches!(outcome, Err(sqlx::Error::RowNotFound)));
        assert_eq!(attempts, 1);
    }
}
