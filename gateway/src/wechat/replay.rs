//! Pushes cannot be replayed. A push's signature covers only its query (token, timestamp,
//! nonce) in plain mode, so a captured query would otherwise carry any body, forever. Two rules
//! close that: a timestamp far from now is refused, and each (timestamp, nonce) is used once,
//! across every gateway instance (Redis, kept for twice the window; an in-process memory while
//! Redis is unreachable). WeChat itself sends the same push again when an answer is slow or
//! lost: the same query with the same body is such a retry and is answered without being
//! applied again; the same query with another body is a forgery and is refused.

use std::time::Duration;

use redis::AsyncCommands;
use sha2::{Digest, Sha256};

use platform::redis::Redis;

/// What a push's (timestamp, nonce) says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not seen before: apply it (and release it if applying fails, so WeChat's retry can).
    Fresh,
    /// Seen with the same body: WeChat sending it again.
    Retry,
    /// Seen with another body: a captured signature reused.
    Forged,
}

#[derive(Clone)]
pub struct ReplayGuard {
    redis: Redis,
    key_prefix: String,
    window: Duration,
    /// Claims made while Redis was unreachable (this instance only).
    local: moka::future::Cache<String, String>,
}

impl ReplayGuard {
    pub fn new(redis: Redis, key_prefix: &str, window: Duration) -> Self {
        Self {
            redis,
            key_prefix: key_prefix.to_owned(),
            window,
            local: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window * 2)
                .build(),
        }
    }

    /// True when the push's timestamp (Unix seconds) is within the window of `now`.
    pub fn is_timely(&self, timestamp: &str, now: i64) -> bool {
        let window = i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX);
        timestamp
            .parse::<i64>()
            .is_ok_and(|sent| (now - sent).abs() <= window)
    }

    fn key(&self, timestamp: &str, nonce: &str) -> String {
        format!("{}:gateway:push-seen:{timestamp}:{nonce}", self.key_prefix)
    }

    /// Claims the push's (timestamp, nonce) for its body.
    pub async fn claim(&self, timestamp: &str, nonce: &str, body: &[u8]) -> Claim {
        let key = self.key(timestamp, nonce);
        let digest = hex::encode(Sha256::digest(body));
        let ttl = self.window.as_secs().saturating_mul(2).max(1);
        let mut redis = self.redis.clone();
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::EX(ttl));
        let claimed: Result<Option<String>, _> = redis.set_options(&key, &digest, options).await;
        let earlier = match claimed {
            // SET NX answers OK when it set the key, nothing when the key was there.
            Ok(Some(_)) => return Claim::Fresh,
            Ok(None) => redis.get::<_, Option<String>>(&key).await.ok().flatten(),
            Err(_) => {
                let entry = self.local.entry(key).or_insert(digest.clone()).await;
                if entry.is_fresh() {
                    return Claim::Fresh;
                }
                Some(entry.into_value())
            }
        };
        match earlier {
            Some(earlier) if earlier == digest => Claim::Retry,
            // Claimed, then released by a failure between our two reads: a retry of it.
            None => Claim::Retry,
            Some(_) => Claim::Forged,
        }
    }

    /// Gives a claim back after the push could not be applied, so WeChat's retry is applied.
    pub async fn release(&self, timestamp: &str, nonce: &str) {
        let key = self.key(timestamp, nonce);
        let mut redis = self.redis.clone();
        let _: Result<(), _> = redis.del(&key).await;
        self.local.invalidate(&key).await;
    }
}
