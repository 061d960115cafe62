//! Tells every gateway instance that a client's binding changed (`membership.v1.BindingChanged`
//! on Redis pub/sub): a completed binding answers the long polls waiting for it at once, and a
//! rotated or revoked token is dropped from every gateway's cache of authenticated tokens.
//!
//! Best effort by design: a gateway that misses a message answers a long poll at its timeout and
//! keeps a cached token no longer than its cache's lifetime; the databases still decide.

use prost::Message;
use redis::AsyncCommands;

use platform::redis::Redis;
use proto::membership::v1 as pb;

#[derive(Clone)]
pub struct BindingChanges {
    redis: Redis,
    channel: String,
}

impl BindingChanges {
    pub fn new(redis: Redis, key_prefix: &str) -> Self {
        Self {
            redis,
            channel: format!("{key_prefix}:{}", pb::BINDING_CHANGES_CHANNEL),
        }
    }

    /// Publishes that `client_id`'s binding changed; `revoked` is the hash of a token that
    /// stopped working with the change.
    pub async fn publish(&self, client_id: &str, revoked: Option<&[u8]>) {
        let message = pb::BindingChanged {
            client_id: client_id.to_owned(),
            revoked_token_sha256: revoked.map(<[u8]>::to_vec).unwrap_or_default(),
        }
        .encode_to_vec();
        let mut redis = self.redis.clone();
        let published: Result<i64, redis::RedisError> = redis.publish(&self.channel, message).await;
        if let Err(err) = published {
            tracing::warn!(error = %err, "binding change not published");
        }
    }
}
