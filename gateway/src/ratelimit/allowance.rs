//! One allowance: so many units per minute per key, shared by every gateway instance through
//! Redis, and kept in this process as well.
//!
//! The process's own count comes first: what it refuses is refused without a Redis round trip,
//! and it alone decides while Redis is unreachable (each instance then grants at most the whole
//! allowance). What it allows is then counted in Redis, which refuses once all instances together
//! have used the allowance. Both count the same way (GCRA: the allowance may be used at once,
//! then comes back evenly over the minute), governor in process and a script in Redis.
//!
//! A busy key does not cost a Redis round trip per request: its instance takes a few units ahead
//! (a lease, see [`Leases`]) and spends them locally. Leased units are counted in Redis when
//! taken, so all instances together still never grant more than the allowance; what an instance
//! leased and did not use is counted as used, so a client may be refused slightly early: by at
//! most `per_minute / 50` units per instance. Allowances under 50 a minute take no leases.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::lease::Leases;

use platform::redis::{Keys, Redis};

/// Takes `ARGV[2]` units from the key's allowance of `ARGV[1]` per minute, on Redis's clock, and
/// up to `ARGV[3]` more as a lease where the allowance has room. The key holds the theoretical
/// arrival time (ms) and expires once it is in the past. Answers the leased units (0 or more)
/// when taken, -1 when refused (nothing is taken then).
const TAKE: &str = r"
local per_minute = tonumber(ARGV[1])
local units = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local interval = 60000 / per_minute
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval * units
if next_tat - now > 60000 then return -1 end
local room = math.floor((60000 - (next_tat - now)) / interval)
local leased = math.max(0, math.min(wanted, room))
next_tat = next_tat + interval * leased
redis.call('SET', KEYS[1], math.ceil(next_tat), 'PX', math.ceil(next_tat - now) + 1)
return leased";

/// What an allowance says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the allowance for now.
    Refused,
    /// More units in one request than the whole allowance: never allowed.
    TooLarge,
}

pub struct Allowance {
    per_minute: u32,
    local: DefaultKeyedRateLimiter<String>,
    leases: Leases,
    /// Round trips to Redis, for the tests of leases.
    #[cfg(test)]
    shared_takes: std::sync::atomic::AtomicU64,
    redis: Redis,
    keys: Keys,
    script: redis::Script,
}

impl Allowance {
    /// `name` tells this allowance's keys apart in Redis.
    pub fn new(name: &str, per_minute: u32, redis: Redis, key_prefix: &str) -> Self {
        let per_minute = per_minute.max(1);
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            per_minute,
            local: RateLimiter::keyed(quota),
            leases: Leases::new(per_minute / 50),
            #[cfg(test)]
            shared_takes: std::sync::atomic::AtomicU64::new(0),
            redis,
            keys: Keys::new(format!("{key_prefix}:gateway:limit:{name}")),
            script: redis::Script::new(TAKE),
        }
    }

    /// Takes `units` (at least one) from `key`'s allowance.
    pub async fn take(&self, key: &str, units: u32) -> Verdict {
        let units = NonZeroU32::new(units).unwrap_or(NonZeroU32::MIN);
        match self.local.check_key_n(&key.to_owned(), units) {
            Err(_) => return Verdict::TooLarge,
            Ok(Err(_)) => return Verdict::Refused,
            Ok(Ok(())) => {}
        }
        if self.leases.spend(key, units.get()) {
            return Verdict::Allowed;
        }
        let wanted = self.leases.next_size(key);
        #[cfg(test)]
        self.shared_takes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut redis = self.redis.clone();
        let shared: Result<i64, redis::RedisError> = self
            .script
            .key(self.keys.key(&[key]))
            .arg(self.per_minute)
            .arg(units.get())
            .arg(wanted)
            .invoke_async(&mut redis)
            .await;
        match shared {
            Ok(leased) if leased < 0 => Verdict::Refused,
            Ok(leased) => {
                self.leases
                    .add(key, u32::try_from(leased).unwrap_or(0).min(wanted));
                Verdict::Allowed
            }
            // Redis unreachable: this instance's own count has allowed it.
            Err(_) => Verdict::Allowed,
        }
    }

    /// Forgets keys whose allowance is whole again, so the process's memory stays bounded.
    pub fn forget_idle(&self) {
        self.local.retain_recent();
        self.leases.forget_expired();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::*;

    fn fresh_prefix() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{}:lease-{nanos}", platform::testing::redis_prefix())
    }

    fn shared(per_minute: u32, prefix: &str) -> Allowance {
        let redis = Redis::new(&platform::testing::redis_url()).unwrap();
        Allowance::new("lease-test", per_minute, redis, prefix)
    }

    /// Two instances spend one key's allowance as fast as they can: together they never grant
    /// more than the allowance (and what came back of it meanwhile), lose at most a lease each
    /// to leftovers, and ask Redis for a fraction of the requests.
    #[tokio::test]
    async fn two_instances_share_an_allowance_through_leases() {
        let prefix = fresh_prefix();
        let per_minute = 1000;
        let started = std::time::Instant::now();
        let instances = [
            Arc::new(shared(per_minute, &prefix)),
            Arc::new(shared(per_minute, &prefix)),
        ];
        let runs = instances.iter().map(|allowance| {
            let allowance = Arc::clone(allowance);
            tokio::spawn(async move {
                let (mut allowed, mut refused) = (0u32, 0u32);
                while refused < 20 {
                    match allowance.take("client", 1).await {
                        Verdict::Allowed => allowed += 1,
                        _ => refused += 1,
                    }
                }
                allowed
            })
        });
        let mut allowed = 0;
        for run in runs {
            allowed += run.await.unwrap();
        }
        // The allowance comes back evenly over the minute (a unit every 60 ms here), and what
        // came back while the two spent it may be granted too: on a loaded 2-core machine the
        // spending took a second, and 1003 grants were right.
        let spent_in = started.elapsed();
        let came_back = spent_in.as_millis() * u128::from(per_minute) / 60_000;
        let came_back = u32::try_from(came_back).unwrap_or(u32::MAX);
        let most_lost = 2 * (per_minute / 50);
        assert!(
            allowed <= per_minute + came_back + 2,
            "granted {allowed} in {spent_in:?}: over the allowance"
        );
        assert!(
            allowed >= per_minute - most_lost,
            "granted {allowed}: leases lost too much"
        );
        let takes: u64 = instances
            .iter()
            .map(|allowance| allowance.shared_takes.load(Ordering::Relaxed))
            .sum();
        assert!(
            takes < u64::from(allowed) / 4,
            "{takes} round trips to Redis for {allowed} grants"
        );
    }

    /// A small allowance takes no leases: every grant is counted in Redis as it happens.
    #[tokio::test]
    async fn a_small_allowance_is_exact_across_instances() {
        let prefix = fresh_prefix();
        let a = shared(20, &prefix);
        let b = shared(20, &prefix);
        let mut allowed = 0;
        for _ in 0..30 {
            for allowance in [&a, &b] {
                if allowance.take("client", 1).await == Verdict::Allowed {
                    allowed += 1;
                }
            }
        }
        assert_eq!(allowed, 20);
    }
}
