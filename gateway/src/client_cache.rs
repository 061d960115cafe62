//! Bound app tokens remembered for a few seconds, so an app's calls skip the round trip to
//! membership (and its Redis and replica reads) while it keeps calling.
//!
//! Only bound clients are remembered: a pending client's token changes meaning when the user
//! scans. The cache is used only while the gateway is subscribed to binding changes
//! ([`crate::binding_changes`]), which drop a rotated or revoked token at once; a change message
//! lost on the way (membership could not publish) is bounded by the entries' lifetime,
//! `TOKEN_CACHE_TTL_SECS`. An answer that raced a revocation is not remembered: every revocation
//! moves an epoch, and an answer fetched across a move is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A bound client, as membership last described its token.
#[derive(Clone, Debug)]
pub struct CachedClient {
    pub client_id: String,
    pub openid: String,
    pub user_id: i64,
    pub completed_at_unix: i64,
    pub expires_at_unix: i64,
}

/// The key of a token: its SHA-256, as membership names revoked tokens.
pub type TokenKey = [u8; 32];

pub fn token_key(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Clone)]
pub struct ClientCache {
    entries: moka::sync::Cache<TokenKey, Arc<CachedClient>>,
    /// True while binding changes arrive (the subscription is up).
    live: Arc<AtomicBool>,
    /// Moves with every revocation and every (re)subscription.
    epoch: Arc<AtomicU64>,
}

/// Taken before asking membership; an answer is remembered only if it is still current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch(u64);

impl ClientCache {
    /// `ttl` zero turns the cache off.
    pub fn new(ttl: Duration) -> Self {
        let capacity = if ttl.is_zero() { 0 } else { 200_000 };
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            live: Arc::new(AtomicBool::new(false)),
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn get(&self, key: &TokenKey) -> Option<Arc<CachedClient>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.entries.get(key)
    }

    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::Acquire))
    }

    /// Remembers `client` unless a revocation or a gap in the subscription came since `epoch`.
    pub fn insert(&self, key: TokenKey, client: CachedClient, epoch: Epoch) {
        if !self.live.load(Ordering::Acquire) || self.epoch.load(Ordering::Acquire) != epoch.0 {
            return;
        }
        self.entries.insert(key, Arc::new(client));
        // A revocation that landed between the check and the insert removes it again.
        if self.epoch.load(Ordering::Acquire) != epoch.0 {
            self.entries.invalidate(&key);
        }
    }

    /// Forgets a token that stopped working.
    pub fn revoke(&self, key: &[u8]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Ok(key) = TokenKey::try_from(key) {
            self.entries.invalidate(&key);
        }
    }

    /// Whether changes arrive. Either way, what was remembered before may have missed some.
    pub fn set_live(&self, live: bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.live.store(live, Ordering::Release);
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> CachedClient {
        CachedClient {
            client_id: "pc".into(),
            openid: "o".into(),
            user_id: 1,
            completed_at_unix: 1,
            expires_at_unix: 2,
        }
    }

    #[test]
    fn remembers_only_while_live_and_forgets_revoked_tokens() {
        let cache = ClientCache::new(Duration::from_secs(60));
        let key = token_key("token");
        cache.insert(key, client(), cache.epoch());
        assert!(
            cache.get(&key).is_none(),
            "not subscribed: nothing remembered"
        );
        cache.set_live(true);
        cache.insert(key, client(), cache.epoch());
        assert_eq!(cache.get(&key).unwrap().client_id, "pc");
        cache.revoke(&key);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn an_answer_fetched_across_a_revocation_is_not_remembered() {
        let cache = ClientCache::new(Duration::from_secs(60));
        cache.set_live(true);
        let key = token_key("token");
        let before = cache.epoch();
        cache.revoke(&key);
        cache.insert(key, client(), before);
        assert!(cache.get(&key).is_none());
        cache.set_live(false);
        cache.set_live(true);
        let stale = Epoch(before.0);
        cache.insert(key, client(), stale);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn a_zero_lifetime_turns_it_off() {
        let cache = ClientCache::new(Duration::ZERO);
        cache.set_live(true);
        let key = token_key("token");
        cache.insert(key, client(), cache.epoch());
        cache.entries.run_pending_tasks();
        assert!(cache.get(&key).is_none());
    }
}
