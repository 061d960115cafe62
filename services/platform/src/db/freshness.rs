//! Read-your-writes on the replica: after a write that a client will read back, the GTID of the
//! write is kept in Redis for a while. A read for that client waits briefly for the replica to
//! apply it and otherwise reads the primary; so a poll right after a write never sees old data,
//! while the polls in between go to the replica.

use std::future::Future;
use std::time::Duration;

use redis::AsyncCommands;
use sqlx::MySqlPool;

use super::{Pools, ReadFrom};
use crate::redis::{Keys, Redis};

/// How long the replica may take to apply a write before the primary is read instead.
const REPLICA_WAIT: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Freshness {
    redis: Redis,
    keys: Keys,
    /// How long a write's GTID is remembered; longer than any replica lag we accept.
    remember: Duration,
}

impl Freshness {
    pub fn new(redis: Redis, keys: Keys, remember: Duration) -> Self {
        Self {
            redis,
            keys,
            remember,
        }
    }

    /// Remembers that `subject` was written in transaction `gtid`. Without a GTID (or without
    /// Redis) the subject is pinned to the primary by a marker instead.
    pub async fn wrote(&self, subject: &str, gtid: Option<&str>) {
        let mut redis = self.redis.clone();
        let key = self.keys.key(&["fresh", subject]);
        let result: Result<(), redis::RedisError> = redis
            .set_ex(
                key,
                gtid.unwrap_or("primary"),
                self.remember.as_secs().max(1),
            )
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, subject, "could not record a write's gtid");
        }
    }

    /// Remembers that `subject` was written by everything the primary has committed so far: for
    /// an action of several transactions, some of them made elsewhere in the code.
    pub async fn wrote_all_so_far(&self, pools: &Pools, subject: &str) {
        let position = super::binlog_position(&pools.primary).await;
        self.wrote(subject, position.as_deref()).await;
    }

    /// Runs `query` on the replica when it shows `subject`'s last write, else on the primary.
    pub async fn read<'a, T, F, Fut>(
        &self,
        pools: &'a Pools,
        subject: &str,
        query: F,
    ) -> Result<T, sqlx::Error>
    where
        F: Fn(&'a MySqlPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let wanted = self.read_from(pools, subject).await;
        pools.read_from(wanted, query).await.0
    }

    /// Where a read returns `subject` as of its last write.
    pub async fn read_from(&self, pools: &Pools, subject: &str) -> ReadFrom {
        if self.replica_is_current(pools, subject).await {
            ReadFrom::Replica
        } else {
            ReadFrom::Primary
        }
    }

    /// True when a write of `subject` is remembered, or when that cannot be known (Redis
    /// unreachable): false only when Redis says there is none.
    pub async fn remembers(&self, subject: &str) -> bool {
        let mut redis = self.redis.clone();
        let key = self.keys.key(&["fresh", subject]);
        let exists: Result<bool, redis::RedisError> = redis.exists(key).await;
        exists.unwrap_or(true)
    }

    /// True when the replica already shows `subject`'s last write (or none is remembered).
    pub async fn replica_is_current(&self, pools: &Pools, subject: &str) -> bool {
        let mut redis = self.redis.clone();
        let key = self.keys.key(&["fresh", subject]);
        let marker: Result<Option<String>, redis::RedisError> = redis.get(key).await;
        match marker {
            Ok(None) => true,
            Ok(Some(gtid)) if gtid != "primary" => pools.replica_has(&gtid, REPLICA_WAIT).await,
            Ok(Some(_)) => false,
            Err(err) => {
                tracing::warn!(error = %err, "freshness unknown; reading the primary");
                pools.note_replica_fallback("freshness_unknown");
                false
            }
        }
    }
}
