//! Single flight across instances: before calling the cloud model for an image, an instance
//! claims it in Redis; the others wait for the result it stores. A claim lapses by itself (at the
//! claimant's deadline) if that instance dies; Redis being down only loses this protection.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::classify::cache::CacheService;
use crate::classify::domain::{CacheKey, CachedEntry};

/// The longest a claim is held.
const MAX_CLAIM: Duration = Duration::from_secs(60);

pub(super) enum Claim {
    /// This instance calls; give the token back with `CacheService::release_claim`.
    Mine(String),
    /// Another instance called and stored this.
    Stored(CachedEntry),
    /// Redis is unreachable: call without the cross-instance guard.
    Unguarded,
    /// Another instance held the claim past this caller's deadline.
    TimedOut,
}

/// Claims `key`, or waits for whoever holds it to store the result.
pub(super) async fn claim_or_wait(
    cache: &CacheService,
    key: &CacheKey,
    deadline: Instant,
) -> Claim {
    let token = uuid::Uuid::new_v4().simple().to_string();
    loop {
        let ttl = deadline
            .saturating_duration_since(Instant::now())
            .min(MAX_CLAIM);
        match cache.claim(key, &token, ttl).await {
            Ok(true) => {
                // The holder before us may have stored its result after our cache lookup and
                // then let go: look once more, or we would call for what is already known.
                if let Some(entry) = cache.get_hot(key).await {
                    cache.release_claim(key, &token).await;
                    return Claim::Stored(entry);
                }
                return Claim::Mine(token);
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cloud claim unavailable; calling unguarded");
                return Claim::Unguarded;
            }
        }
        // Someone else calls: poll for their result until the claim goes away.
        loop {
            let pause = Duration::from_millis(rand::rng().random_range(50..=150));
            if Instant::now() + pause >= deadline {
                return Claim::TimedOut;
            }
            tokio::time::sleep(pause).await;
            if let Some(entry) = cache.get_hot(key).await {
                return Claim::Stored(entry);
            }
            if !cache.is_claimed(key).await {
                // Gone without a result (that caller failed or could not pay): try ourselves.
                break;
            }
        }
    }
}
