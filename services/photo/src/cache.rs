//! CacheService: classification results by image digest and model versions. Redis holds a hot
//! copy with a TTL; MySQL holds the durable copy. Redis is only an accelerator: when it fails,
//! reads and writes go on against MySQL and the failure is logged.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;

use platform::db::Pools;
use platform::redis::{Keys, Redis};

use crate::domain::classification::{CacheKey, CachedEntry, Digest};
use crate::error::PhotoError;
use crate::metrics::{CacheLayer, PhotoMetrics};
use crate::store;

#[derive(Clone)]
pub struct CacheService {
    pools: Pools,
    redis: Redis,
    keys: Keys,
    ttl_secs: u64,
    metrics: PhotoMetrics,
}

impl CacheService {
    pub fn new(pools: Pools, redis: Redis, keys: Keys, ttl_secs: u64) -> Self {
        Self {
            pools,
            redis,
            keys,
            ttl_secs,
            metrics: PhotoMetrics::new(),
        }
    }

    fn redis_key(&self, key: &CacheKey) -> String {
        self.keys.key(&[
            "cls",
            &key.digest.to_hex(),
            &key.model_version,
            &key.prompt_version,
        ])
    }

    /// Returns what is stored under each key, in order.
    pub async fn get_many(
        &self,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<CachedEntry>>, PhotoError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = match self.redis_get_many(keys).await {
            Ok(found) => {
                let hits = found.iter().filter(|entry| entry.is_some()).count();
                self.metrics.cache(CacheLayer::Redis, "hit", hits);
                self.metrics
                    .cache(CacheLayer::Redis, "miss", keys.len() - hits);
                found
            }
            Err(err) => {
                tracing::warn!(error = %err, "redis read failed; reading the database");
                self.metrics.cache(CacheLayer::Redis, "error", keys.len());
                vec![None; keys.len()]
            }
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(found);
        }
        // The replica may lag behind a result written a moment ago; that costs one more local
        // inference at worst, while Redis normally has the fresh copy.
        let mut digests: Vec<Digest> = missing.iter().map(|&i| keys[i].digest).collect();
        digests.sort_by_key(|d| *d.as_bytes());
        digests.dedup();
        let rows: HashMap<CacheKey, CachedEntry> =
            match store::classification_cache::find(&self.pools.replica, &digests).await {
                Ok(rows) => rows.into_iter().map(|row| (row.key, row.entry)).collect(),
                Err(err) => {
                    self.metrics
                        .cache(CacheLayer::Database, "error", missing.len());
                    return Err(err.into());
                }
            };
        let mut backfill = Vec::new();
        for &index in &missing {
            if let Some(entry) = rows.get(&keys[index]) {
                backfill.push((keys[index].clone(), entry.clone()));
                found[index] = Some(entry.clone());
            }
        }
        self.metrics
            .cache(CacheLayer::Database, "hit", backfill.len());
        self.metrics
            .cache(CacheLayer::Database, "miss", missing.len() - backfill.len());
        for (key, entry) in backfill {
            self.redis_put(&key, &entry).await;
        }
        Ok(found)
    }

    /// Stores a result durably, then as the hot copy.
    pub async fn put(&self, key: &CacheKey, entry: &CachedEntry) -> Result<(), PhotoError> {
        store::classification_cache::insert(&self.pools.primary, key, entry).await?;
        self.redis_put(key, entry).await;
        Ok(())
    }

    /// Claims the right to call the cloud model for `key` across every instance, for `ttl` (the
    /// claim lapses by itself if this instance dies). Errors mean Redis is unreachable.
    pub async fn claim(
        &self,
        key: &CacheKey,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, redis::RedisError> {
        let mut redis = self.redis.clone();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.claim_key(key))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut redis)
            .await?;
        Ok(claimed.is_some())
    }

    /// Tells whether some instance holds the claim on `key` (unreachable Redis: no).
    pub async fn is_claimed(&self, key: &CacheKey) -> bool {
        let mut redis = self.redis.clone();
        let held: Result<bool, _> = redis.exists(self.claim_key(key)).await;
        held.unwrap_or(false)
    }

    /// Gives the claim up, if it is still this token's.
    pub async fn release_claim(&self, key: &CacheKey, token: &str) {
        // Compare and delete in one step: a lapsed claim may belong to another instance now.
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) \
             else return 0 end",
        );
        let mut redis = self.redis.clone();
        let released: Result<i64, _> = script
            .key(self.claim_key(key))
            .arg(token)
            .invoke_async(&mut redis)
            .await;
        if let Err(err) = released {
            tracing::warn!(error = %err, "cloud claim not released; it lapses by itself");
        }
    }

    /// Reads the hot copy alone (polled while another instance calls the cloud model).
    pub async fn get_hot(&self, key: &CacheKey) -> Option<CachedEntry> {
        match self.redis_get_many(std::slice::from_ref(key)).await {
            Ok(mut found) => found.pop().flatten(),
            Err(err) => {
                tracing::warn!(error = %err, "redis read failed");
                None
            }
        }
    }

    fn claim_key(&self, key: &CacheKey) -> String {
        self.keys.key(&[
            "cls-claim",
            &key.digest.to_hex(),
            &key.model_version,
            &key.prompt_version,
        ])
    }

    async fn redis_get_many(
        &self,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<CachedEntry>>, redis::RedisError> {
        let names: Vec<String> = keys.iter().map(|key| self.redis_key(key)).collect();
        let mut redis = self.redis.clone();
        // MGET with one key answers a bare value; asking for a Vec handles both shapes.
        let values: Vec<Option<String>> = redis.mget(&names).await?;
        if values.len() != keys.len() {
            return Ok(vec![None; keys.len()]);
        }
        Ok(values
            .into_iter()
            .map(|value| value.and_then(|text| serde_json::from_str(&text).ok()))
            .collect())
    }

    async fn redis_put(&self, key: &CacheKey, entry: &CachedEntry) {
        let Ok(value) = serde_json::to_string(entry) else {
            return;
        };
        let mut redis = self.redis.clone();
        let written: Result<(), _> = redis
            .set_ex(self.redis_key(key), value, self.ttl_secs)
            .await;
        if let Err(err) = written {
            tracing::warn!(error = %err, "redis write failed; the database copy stands");
        }
    }
}
