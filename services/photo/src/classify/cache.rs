//! CacheService: classification results by image digest and model versions. Redis holds a hot
//! copy with a TTL; MySQL holds the durable copy. Redis is only an accelerator: when it fails,
//! reads and writes go on against MySQL and the failure is logged.
//!
//! Redis also remembers, for a minute, that a digest had no stored result (an absence marker),
//! so an app that asks again about photos it has not uploaded costs no database read. Only
//! lookups trust a marker ([`Read::Advisory`]): a wrong "not found" there costs the app one
//! upload, which classification then answers from the database ([`Read::Authoritative`] ignores
//! markers), so a marker can never make a stored result be computed or charged twice. Storing
//! a result overwrites its marker; a marker is written only where no value is (`SET NX`).

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;

use platform::db::Pools;
use platform::redis::{Keys, Redis};

use crate::classify::domain::{CacheKey, CachedEntry, Digest};
use crate::classify::store;
use crate::error::PhotoError;
use crate::metrics::{CacheLayer, PhotoMetrics};

/// The Redis value that says "nothing stored" (not JSON, so older readers take it as a miss).
const ABSENT: &str = "absent";
/// How long an absence marker lives.
const ABSENCE_TTL_SECS: u64 = 60;

/// How much a read may trust absence markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// A lookup: a known absence is an answer.
    Advisory,
    /// Before computing (and perhaps charging for) a result: only the database says "absent".
    Authoritative,
}

/// What Redis holds under one key.
#[derive(Clone, Debug)]
enum Hot {
    Entry(CachedEntry),
    Absent,
    Unknown,
}

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
        read: Read,
    ) -> Result<Vec<Option<CachedEntry>>, PhotoError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let hot = match self.redis_get_many(keys).await {
            Ok(hot) => {
                let hits = hot.iter().filter(|h| matches!(h, Hot::Entry(_))).count();
                let absent = hot.iter().filter(|h| matches!(h, Hot::Absent)).count();
                self.metrics.cache(CacheLayer::Redis, "hit", hits);
                self.metrics.cache(CacheLayer::Redis, "absent", absent);
                self.metrics
                    .cache(CacheLayer::Redis, "miss", keys.len() - hits - absent);
                hot
            }
            Err(err) => {
                tracing::warn!(error = %err, "redis read failed; reading the database");
                self.metrics.cache(CacheLayer::Redis, "error", keys.len());
                vec![Hot::Unknown; keys.len()]
            }
        };
        let mut found: Vec<Option<CachedEntry>> = Vec::with_capacity(keys.len());
        let mut missing: Vec<usize> = Vec::new();
        for (index, hot) in hot.into_iter().enumerate() {
            match hot {
                Hot::Entry(entry) => found.push(Some(entry)),
                Hot::Absent if read == Read::Advisory => found.push(None),
                Hot::Absent | Hot::Unknown => {
                    found.push(None);
                    missing.push(index);
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        // The replica may lag behind a result written a moment ago; that costs one more local
        // inference at worst, while Redis normally has the fresh copy.
        let mut digests: Vec<Digest> = missing.iter().map(|&i| keys[i].digest).collect();
        digests.sort_by_key(|d| *d.as_bytes());
        digests.dedup();
        let rows: HashMap<CacheKey, CachedEntry> =
            match self.pools.read(|pool| store::find(pool, &digests)).await {
                Ok(rows) => rows.into_iter().map(|row| (row.key, row.entry)).collect(),
                Err(err) => {
                    self.metrics
                        .cache(CacheLayer::Database, "error", missing.len());
                    return Err(err.into());
                }
            };
        let mut backfill = Vec::new();
        let mut absent = Vec::new();
        for &index in &missing {
            match rows.get(&keys[index]) {
                Some(entry) => {
                    backfill.push((keys[index].clone(), entry.clone()));
                    found[index] = Some(entry.clone());
                }
                None => absent.push(&keys[index]),
            }
        }
        self.metrics
            .cache(CacheLayer::Database, "hit", backfill.len());
        self.metrics
            .cache(CacheLayer::Database, "miss", missing.len() - backfill.len());
        for (key, entry) in backfill {
            self.redis_put(&key, &entry).await;
        }
        if read == Read::Advisory {
            self.mark_absent(&absent).await;
        }
        Ok(found)
    }

    /// Remembers that nothing is stored under `keys`, where Redis holds nothing for them.
    async fn mark_absent(&self, keys: &[&CacheKey]) {
        if keys.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(self.redis_key(key))
                .arg(ABSENT)
                .arg("NX")
                .arg("EX")
                .arg(ABSENCE_TTL_SECS)
                .ignore();
        }
        let mut redis = self.redis.clone();
        let written: Result<(), _> = pipe.query_async(&mut redis).await;
        if let Err(err) = written {
            tracing::warn!(error = %err, "absence markers not written");
        }
    }

    /// Stores a result; a failure is logged, not answered: the result itself is good.
    pub async fn remember(&self, key: &CacheKey, entry: CachedEntry) {
        if let Err(err) = self.put(key, &entry).await {
            tracing::error!(error = ?err, sha256 = %key.digest, "classification result not stored");
        }
    }

    /// Stores a result durably (again after a deadlock: instances storing the same image's
    /// local results insert beside it), then as the hot copy. The hot copy is written even when
    /// the durable one failed: instances waiting on a cloud call read the result there, and
    /// without it each would pay for the call again.
    pub async fn put(&self, key: &CacheKey, entry: &CachedEntry) -> Result<(), PhotoError> {
        let stored = platform::db::retry_transaction(
            || store::insert(&self.pools.primary, key, entry),
            |err| Some(err),
        )
        .await;
        self.redis_put(key, entry).await;
        Ok(stored?)
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
            Ok(mut found) => match found.pop() {
                Some(Hot::Entry(entry)) => Some(entry),
                _ => None,
            },
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

    async fn redis_get_many(&self, keys: &[CacheKey]) -> Result<Vec<Hot>, redis::RedisError> {
        let names: Vec<String> = keys.iter().map(|key| self.redis_key(key)).collect();
        let mut redis = self.redis.clone();
        // MGET with one key answers a bare value; asking for a Vec handles both shapes.
        let values: Vec<Option<String>> = redis.mget(&names).await?;
        if values.len() != keys.len() {
            return Ok(vec![Hot::Unknown; keys.len()]);
        }
        Ok(values
            .into_iter()
            .map(|value| match value.as_deref() {
                None => Hot::Unknown,
                Some(ABSENT) => Hot::Absent,
                Some(text) => serde_json::from_str(text).map_or(Hot::Unknown, Hot::Entry),
            })
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

/// Rows deleted per statement by [`purge_stored_before`], and statements per round at most.
const PURGE_BATCH: u32 = 1000;
const PURGE_MAX_BATCHES: u32 = 100;

/// Deletes the durable copies of results stored before `before`, in batches; returns how many.
/// Hot copies expire by their own TTL, which is far shorter than any retention.
pub async fn purge_stored_before(
    pools: &Pools,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<u64, PhotoError> {
    let deleted = platform::db::delete_in_batches(PURGE_BATCH, PURGE_MAX_BATCHES, |batch| {
        store::delete_stored_before(&pools.primary, before, batch)
    })
    .await?;
    Ok(deleted)
}
