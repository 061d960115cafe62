//! Redis: one multiplexed, reconnecting connection per process and one key-naming helper.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// Connects a [`ConnectionManager`]; it reconnects by itself after Redis restarts.
pub async fn connect(url: &SecretString) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url.expose_secret())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client, config).await
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

/// A Redis connection made on first use and remade after a failed connect, so a process starts
/// (and keeps serving what does not need Redis) while Redis is down.
#[derive(Clone)]
pub struct LazyRedis {
    url: SecretString,
    connection: std::sync::Arc<tokio::sync::Mutex<Option<ConnectionManager>>>,
}

impl LazyRedis {
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            connection: std::sync::Arc::default(),
        }
    }

    /// The shared connection, connecting now if there is none yet.
    pub async fn get(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = connect(&self.url).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}
