//! One allowance: so many units per minute per key, shared by every gateway instance through
//! Redis, and kept in this process as well.
//!
//! The process's own count comes first: what it refuses is refused without a Redis round trip,
//! and it alone decides while Redis is unreachable (each instance then grants at most the whole
//! allowance). What it allows is then counted in Redis, which refuses once all instances together
//! have used the allowance. Both count the same way (GCRA: the allowance may be used at once,
//! then comes back evenly over the minute), governor in process and a script in Redis.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use platform::redis::{Keys, Redis};

/// Takes `ARGV[2]` units from the key's allowance of `ARGV[1]` per minute, on Redis's clock.
/// The key holds the theoretical arrival time (ms) and expires once it is in the past; 1 when
/// taken, 0 when refused (nothing is taken then).
const TAKE: &str = r"
local per_minute = tonumber(ARGV[1])
local units = tonumber(ARGV[2])
local interval = 60000 / per_minute
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval * units
if next_tat - now > 60000 then return 0 end
redis.call('SET', KEYS[1], math.ceil(next_tat), 'PX', math.ceil(next_tat - now) + 1)
return 1";

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
        let mut redis = self.redis.clone();
        let shared: Result<i64, redis::RedisError> = self
            .script
            .key(self.keys.key(&[key]))
            .arg(self.per_minute)
            .arg(units.get())
            .invoke_async(&mut redis)
            .await;
        match shared {
            Ok(0) => Verdict::Refused,
            // Redis unreachable: this instance's own count has allowed it.
            Ok(_) | Err(_) => Verdict::Allowed,
        }
    }

    /// Forgets keys whose allowance is whole again, so the process's memory stays bounded.
    pub fn forget_idle(&self) {
        self.local.retain_recent();
    }
}
