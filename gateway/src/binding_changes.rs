//! Membership's binding changes, received by every gateway instance (Redis pub/sub,
//! `membership.v1.BindingChanged`): long polls waiting for the client are woken, and a rotated or
//! revoked token is dropped from the [`ClientCache`].
//!
//! One subscription per process, made again after any failure (with a ping now and then, so a
//! dead connection is noticed). While it is down the client cache is not used, and waiting long
//! polls are woken so they read again rather than wait out a change they might never hear of.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use proto::membership::v1 as pb;

use crate::client_cache::ClientCache;

/// Tests ping often, to see pings answered without losing the subscription.
const PING_EVERY: Duration = if cfg!(test) {
    Duration::from_millis(50)
} else {
    Duration::from_secs(15)
};
const PING_BUDGET: Duration = Duration::from_secs(3);
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Long polls waiting for their client's binding to change, by client id.
#[derive(Clone, Default)]
pub struct Waiters {
    by_client: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    /// Set when the gateway stops: nobody waits any more, so draining is not held up.
    closed: Arc<AtomicBool>,
}

/// A long poll's registration: `changed()` returns once the client's binding changed after the
/// registration (or the gateway is closing). Dropping it unregisters.
pub struct Watch {
    waiters: Waiters,
    client_id: String,
    changes: watch::Receiver<u64>,
}

impl Waiters {
    pub fn watch(&self, client_id: &str) -> Watch {
        let mut map = self
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let changes = map
            .entry(client_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Watch {
            waiters: self.clone(),
            client_id: client_id.to_owned(),
            changes,
        }
    }

    pub fn wake(&self, client_id: &str) {
        let map = self
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = map.get(client_id) {
            sender.send_modify(|version| *version += 1);
        }
    }

    /// Wakes every long poll and lets no new one wait.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake_all();
    }

    pub fn wake_all(&self) {
        let map = self
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for sender in map.values() {
            sender.send_modify(|version| *version += 1);
        }
    }

    /// How many clients have a long poll waiting (what the tests check is forgotten).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Watch {
    pub async fn changed(&mut self) {
        if self.waiters.closed.load(Ordering::Acquire) {
            return;
        }
        // An error means the sender is gone, which only happens once nobody waits.
        let _ = self.changes.changed().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut map = self
            .waiters
            .by_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // This receiver is still counted while it is being dropped.
        if map
            .get(&self.client_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            map.remove(&self.client_id);
        }
    }
}

/// Keeps the subscription until `shutdown`, applying each change to `cache` and `waiters`.
pub fn spawn_subscriber(
    redis_url: SecretString,
    channel: String,
    cache: ClientCache,
    waiters: Waiters,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let ended = tokio::select! {
                _ = shutdown.cancelled() => break,
                ended = subscribe_until_lost(&redis_url, &channel, &cache, &waiters) => ended,
            };
            cache.set_live(false);
            waiters.wake_all();
            if let Err(why) = ended {
                tracing::warn!(error = %why, "binding changes not received; subscribing again");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RETRY_AFTER) => {}
            }
        }
        cache.set_live(false);
        waiters.close();
    })
}

async fn subscribe_until_lost(
    redis_url: &SecretString,
    channel: &str,
    cache: &ClientCache,
    waiters: &Waiters,
) -> Result<(), redis::RedisError> {
    let client = redis::Client::open(redis_url.expose_secret())?;
    let mut pubsub = tokio::time::timeout(PING_BUDGET, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    pubsub.subscribe(channel).await?;
    let (mut sink, mut messages) = pubsub.split();
    cache.set_live(true);
    // Whatever changed while nobody listened: waiting polls read again.
    waiters.wake_all();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "subscription closed",
                    )));
                };
                apply(message.get_payload_bytes(), cache, waiters);
            }
            _ = ping.tick() => {
                // A subscribed connection answers PING with ["pong", ""], not a plain string.
                tokio::time::timeout(PING_BUDGET, sink.ping::<redis::Value>())
                    .await
                    .map_err(|_| timed_out())??;
            }
        }
    }
}

fn apply(payload: &[u8], cache: &ClientCache, waiters: &Waiters) {
    match pb::BindingChanged::decode(payload) {
        Ok(change) => {
            if !change.revoked_token_sha256.is_empty() {
                cache.revoke(&change.revoked_token_sha256);
            }
            waiters.wake(&change.client_id);
        }
        Err(err) => tracing::warn!(error = %err, "unreadable binding change ignored"),
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "redis did not answer in time",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_the_clients_watchers_only_and_watches_are_forgotten() {
        let waiters = Waiters::default();
        let mut first = waiters.watch("pc-1");
        let mut second = waiters.watch("pc-1");
        let mut other = waiters.watch("pc-2");
        waiters.wake("pc-1");
        first.changed().await;
        second.changed().await;
        let other_woken = tokio::time::timeout(Duration::from_millis(50), other.changed()).await;
        assert!(other_woken.is_err(), "pc-2 did not change");
        drop((first, second));
        assert_eq!(waiters.len(), 1);
        drop(other);
        assert!(waiters.is_empty());
    }

    #[tokio::test]
    async fn the_subscription_outlives_its_keepalive_pings() {
        let cache = ClientCache::new(Duration::from_secs(60));
        let shutdown = CancellationToken::new();
        let before = cache.epoch();
        let task = spawn_subscriber(
            platform::testing::redis_url(),
            format!("{}:bindings:changed", platform::testing::redis_prefix()),
            cache.clone(),
            Waiters::default(),
            shutdown.clone(),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while cache.epoch() == before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let subscribed = cache.epoch();
        assert_ne!(subscribed, before, "subscribed");
        tokio::time::sleep(PING_EVERY * 6).await;
        // Every (re)subscription moves the epoch: still the first one.
        assert_eq!(
            cache.epoch(),
            subscribed,
            "the pings broke the subscription"
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    #[test]
    fn a_revocation_drops_the_token_from_the_cache() {
        let cache = ClientCache::new(Duration::from_secs(60));
        cache.set_live(true);
        let key = crate::client_cache::token_key("token");
        let client = crate::client_cache::CachedClient {
            client_id: "pc".into(),
            openid: "o".into(),
            user_id: 1,
            completed_at_unix: 1,
            expires_at_unix: 2,
        };
        cache.insert(key, client, cache.epoch());
        let change = pb::BindingChanged {
            client_id: "pc".into(),
            revoked_token_sha256: key.to_vec(),
        };
        apply(&change.encode_to_vec(), &cache, &Waiters::default());
        assert!(cache.get(&key).is_none());
        apply(b"\xff\xff not a message", &cache, &Waiters::default());
    }
}
