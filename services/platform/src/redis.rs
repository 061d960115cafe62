//! Redis: one multiplexed, reconnecting connection per process, bounded so that a Redis outage
//! never holds a request up, and one key-naming helper.
//!
//! Every service uses Redis as an accelerator or a coordination hint only (the databases decide
//! what is true), so the handle here favours answering over waiting: each command gets a short
//! budget, and after a failure Redis is skipped for a moment (commands fail at once) before it is
//! tried again. The connection is made on first use, so a process starts while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use crate::skip_window::SkipWindow;

/// How long one command may take before it counts as failed.
pub const COMMAND_BUDGET: Duration = Duration::from_millis(250);
/// How long Redis is skipped after a failure.
pub const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// A cheap-to-clone Redis handle: use it like a connection (`AsyncCommands`, scripts).
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    budget: Duration,
    /// While open, commands fail at once (Redis failed a moment ago).
    down: SkipWindow,
    /// `xintu.redis.failures` {reason = timeout | unavailable | skipped}
    failures: Counter<u64>,
}

impl Redis {
    /// A handle on `url`; nothing is connected yet (a bad URL is the only error).
    pub fn new(url: &SecretString) -> Result<Self, RedisError> {
        Self::with_budget(url, COMMAND_BUDGET)
    }

    /// Same, with another per-command budget.
    pub fn with_budget(url: &SecretString, budget: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url.expose_secret())?;
        let failures = crate::telemetry::meter("xintu.redis")
            .u64_counter("xintu.redis.failures")
            .with_unit("{command}")
            .with_description(
                "Redis commands that failed, by reason: timeout (over the budget), unavailable \
                 (connection refused or lost), skipped (Redis marked down after a failure)",
            )
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager: OnceCell::new(),
                budget,
                down: SkipWindow::new(),
                failures,
            }),
        })
    }

    /// True while Redis is skipped after a failure.
    pub fn is_marked_down(&self) -> bool {
        self.inner.down.is_open()
    }

    async fn manager(&self) -> Result<ConnectionManager, RedisError> {
        let client = self.inner.client.clone();
        self.inner
            .manager
            .get_or_try_init(|| async move {
                // Reconnects after a loss: a few quick tries, never minutes of backoff (the
                // default factor grows the pauses to a minute, and every command would wait on
                // that reconnect).
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_secs(1))
                    .set_response_timeout(Duration::from_secs(2))
                    .set_number_of_retries(1)
                    .set_factor(2)
                    .set_max_delay(500);
                ConnectionManager::new_with_config(client, config).await
            })
            .await
            .cloned()
    }

    /// Runs one command (or pipeline) within the budget, unless Redis is marked down.
    async fn bounded<T, F, Fut>(&self, run: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if self.is_marked_down() {
            self.failed("skipped");
            return Err(unavailable("redis is marked down after a failure"));
        }
        let attempt = async {
            let manager = self.manager().await?;
            run(manager).await
        };
        match tokio::time::timeout(self.inner.budget, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if err.is_io_error()
                    || err.is_timeout()
                    || err.is_connection_dropped()
                    || err.is_connection_refusal()
                    || err.is_unrecoverable_error()
                {
                    self.mark_down("unavailable");
                }
                Err(err)
            }
            Err(_) => {
                self.mark_down("timeout");
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "redis command over its budget",
                )))
            }
        }
    }

    fn mark_down(&self, reason: &'static str) {
        self.failed(reason);
        if self.inner.down.skip_for(SKIP_AFTER_FAILURE) {
            tracing::warn!(
                reason,
                skip_ms = SKIP_AFTER_FAILURE.as_millis() as u64,
                "redis failed; skipping it for a moment"
            );
        }
    }

    fn failed(&self, reason: &'static str) {
        self.inner
            .failures
            .add(1, &[KeyValue::new("reason", reason)]);
    }
}

fn unavailable(message: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        message,
    ))
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.bounded(|mut manager| async move { manager.req_packed_command(cmd).await })
                .await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.bounded(|mut manager| async move {
                manager.req_packed_commands(cmd, offset, count).await
            })
            .await
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.client.get_connection_info().redis.db
    }
}

/// A handle on `url` that has tried to connect once: a process logs at start when Redis is not
/// there, and goes on without it until it is.
pub async fn connect(url: &SecretString) -> Result<Redis, RedisError> {
    let redis = Redis::new(url)?;
    let mut probe = redis.clone();
    if let Err(err) = redis::cmd("PING").query_async::<()>(&mut probe).await {
        tracing::warn!(error = %err, "redis is unreachable at start; serving without it");
    }
    Ok(redis)
}

/// Builds every Redis key of a process from one prefix (tests use a random one per test).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// Returns `<prefix>:<parts joined by ':'>`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use redis::AsyncCommands;

    use super::*;

    fn url(port: u16) -> SecretString {
        SecretString::from(format!("redis://127.0.0.1:{port}"))
    }

    async fn get(redis: &Redis) -> (Result<Option<String>, RedisError>, Duration) {
        let started = Instant::now();
        let mut conn = redis.clone();
        let answer = conn.get("xintu-test-key").await;
        (answer, started.elapsed())
    }

    #[tokio::test]
    async fn a_refused_connection_fails_at_once_and_redis_is_then_skipped() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let redis = Redis::new(&url(port)).expect("url");
        let (answer, took) = get(&redis).await;
        assert!(answer.is_err());
        assert!(
            took <= COMMAND_BUDGET + Duration::from_millis(200),
            "{took:?}"
        );
        assert!(redis.is_marked_down());
        let (answer, took) = get(&redis).await;
        assert!(answer.is_err());
        assert!(
            took < Duration::from_millis(20),
            "skipped, not tried: {took:?}"
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_costs_one_budget() {
        // Accepts connections and holds them without a word, like a hung Redis.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let redis = Redis::new(&url(port)).expect("url");
        let (answer, took) = get(&redis).await;
        assert!(answer.is_err());
        assert!(took >= COMMAND_BUDGET, "{took:?}");
        assert!(
            took < COMMAND_BUDGET + Duration::from_millis(500),
            "{took:?}"
        );
        assert!(redis.is_marked_down());
    }
}
