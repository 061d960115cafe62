//! The official-account access token, shared through Redis by every instance of every service.
//!
//! Fetched with `cgi-bin/stable_token` (normal mode: concurrent callers get the same token, so
//! nobody invalidates anybody else's). One caller at a time refreshes, under a Redis lock with a
//! double check; the others wait for the cache. When Redis is down every caller fetches for itself,
//! which stable_token makes harmless.

use std::time::Duration;

use rand::RngCore;
use redis::AsyncCommands;
use secrecy::ExposeSecret;
use serde::Deserialize;

use platform::redis::Redis;

use super::{WechatError, WechatSettings, send_json};

/// How long a refresher may hold the lock before others stop waiting for it.
const LOCK_TTL_MS: u64 = 10_000;
const WAIT_STEP: Duration = Duration::from_millis(50);
const WAIT_STEPS: u32 = 120;

const COMPARE_AND_DELETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

#[derive(Deserialize)]
pub(super) struct StableToken {
    pub(super) access_token: String,
    pub(super) expires_in: u64,
}

#[derive(Clone)]
pub struct AccessTokens {
    http: reqwest::Client,
    settings: WechatSettings,
    redis: Redis,
}

impl AccessTokens {
    pub fn new(http: reqwest::Client, settings: WechatSettings, redis: Redis) -> Self {
        Self {
            http,
            settings,
            redis,
        }
    }

    pub fn appid(&self) -> &str {
        &self.settings.appid
    }

    pub fn secret(&self) -> &str {
        self.settings.secret.expose_secret()
    }

    /// Returns the current token: from the cache, or fetched by exactly one caller.
    pub async fn get(&self) -> Result<String, WechatError> {
        match self.cached().await {
            Ok(Some(token)) => return Ok(token),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "token cache unavailable; fetching directly");
                return Ok(self.fetch().await?.access_token);
            }
        }
        let lock_value = random_value();
        for _ in 0..WAIT_STEPS {
            match self.try_lock(&lock_value).await {
                Ok(true) => {
                    let result = self.refresh_locked().await;
                    self.unlock(&lock_value).await;
                    return result;
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "token lock unavailable; fetching directly");
                    return Ok(self.fetch().await?.access_token);
                }
            }
            tokio::time::sleep(WAIT_STEP).await;
            if let Ok(Some(token)) = self.cached().await {
                return Ok(token);
            }
        }
        tracing::warn!("token refresher did not finish in time; fetching directly");
        Ok(self.fetch().await?.access_token)
    }

    /// Drops `rejected` from the cache if it is still the cached token (compare and delete), so a
    /// token another caller already replaced is left alone.
    pub async fn invalidate(&self, rejected: &str) {
        let mut redis = self.redis.clone();
        let result: Result<i64, redis::RedisError> = redis::Script::new(COMPARE_AND_DELETE)
            .key(&self.settings.token_key)
            .arg(rejected)
            .invoke_async(&mut redis)
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "could not drop the rejected token");
        }
    }

    async fn refresh_locked(&self) -> Result<String, WechatError> {
        // Double check: whoever held the lock before us may have filled the cache.
        if let Ok(Some(token)) = self.cached().await {
            return Ok(token);
        }
        let fetched = self.fetch().await?;
        let ttl = cache_ttl(fetched.expires_in);
        let mut redis = self.redis.clone();
        let stored: Result<(), redis::RedisError> = redis
            .set_ex(&self.settings.token_key, &fetched.access_token, ttl)
            .await;
        if let Err(err) = stored {
            tracing::warn!(error = %err, "could not cache the access token");
        }
        Ok(fetched.access_token)
    }

    async fn cached(&self) -> Result<Option<String>, redis::RedisError> {
        let mut redis = self.redis.clone();
        redis.get(&self.settings.token_key).await
    }

    async fn try_lock(&self, value: &str) -> Result<bool, redis::RedisError> {
        let mut redis = self.redis.clone();
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(LOCK_TTL_MS));
        let acquired: Option<String> = redis
            .set_options(&self.settings.token_lock_key, value, options)
            .await?;
        Ok(acquired.is_some())
    }

    async fn unlock(&self, value: &str) {
        let mut redis = self.redis.clone();
        let _: Result<i64, redis::RedisError> = redis::Script::new(COMPARE_AND_DELETE)
            .key(&self.settings.token_lock_key)
            .arg(value)
            .invoke_async(&mut redis)
            .await;
    }

    async fn fetch(&self) -> Result<StableToken, WechatError> {
        let url = format!(
            "{}/cgi-bin/stable_token",
            self.settings.api_base.trim_end_matches('/')
        );
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": self.settings.appid,
            "secret": self.settings.secret.expose_secret(),
            "force_refresh": false,
        });
        tracing::info!("fetching the official-account access token");
        send_json(self.http.post(url).json(&body)).await
    }
}

/// Seconds to cache a token: a stable token is rotated 5 minutes before it expires.
fn cache_ttl(expires_in: u64) -> u64 {
    if expires_in > 600 {
        expires_in - 300
    } else {
        (expires_in / 2).max(1)
    }
}

fn random_value() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::cache_ttl;

    #[test]
    fn tokens_are_cached_short_of_their_rotation() {
        assert_eq!(cache_ttl(7200), 6900);
        assert_eq!(cache_ttl(400), 200);
        assert_eq!(cache_ttl(1), 1);
    }
}
