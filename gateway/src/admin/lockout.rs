//! Failed admin sign-ins, counted in Redis so that every gateway instance shares them.
//!
//! The rule is built so that an attacker cannot use it to lock the real operator out: failures
//! lock the **address** they come from (an IPv6 address by its /64, which one machine usually
//! holds whole), never the account. Brute force from many addresses stays bounded all the same:
//! once the account has had `admin_account_max_failures` failures from all addresses together
//! (within the lockout window) it is under attack, and each address then gets a single try: one
//! that has failed before is refused until its count expires. The operator, signing in from an
//! address that has not failed, still gets in.

use proto::ErrorCode;
use std::net::IpAddr;

use crate::AppState;
use crate::error::ApiError;

/// Increments a failure count and starts its window on the first failure, in one step (a
/// count whose expiry was never set would lock an address for good).
const COUNT_FAILURE: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
";

/// The counters one sign-in attempt reads and, when it fails, increments.
pub struct Attempt {
    address_key: String,
    /// Set when the attempt names the configured account: only its failures put it under attack.
    account_key: Option<String>,
    /// What the log line names: the address's group (an IPv6 /64), never the attempted name.
    pub address: String,
}

impl Attempt {
    pub fn new(state: &AppState, ip: Option<IpAddr>, known_account: bool) -> Self {
        let prefix = &state.cfg.redis.redis_key_prefix;
        let address = address_group(ip);
        Self {
            address_key: format!("{prefix}:gateway:admin-fail:addr:{address}"),
            account_key: known_account.then(|| format!("{prefix}:gateway:admin-fail:account")),
            address,
        }
    }

    /// Refuses an address that is locked, or that has failed while the account is under attack.
    /// Without Redis the counts cannot be kept, so sign-in fails closed (503) rather than open a
    /// way around the lockout.
    pub async fn check(&self, state: &AppState) -> Result<(), ApiError> {
        let mut redis = state.redis.clone();
        let keys: Vec<&str> = std::iter::once(self.address_key.as_str())
            .chain(self.account_key.as_deref())
            .collect();
        let counts: Vec<Option<u32>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut redis)
            .await
            .map_err(|_| super::unavailable("sign-in is unavailable, try again later"))?;
        let address_failures = counts.first().copied().flatten().unwrap_or(0);
        let account_failures = counts.get(1).copied().flatten().unwrap_or(0);
        let cfg = &state.cfg;
        let locked = address_failures >= cfg.admin_max_failures
            || (account_failures >= cfg.admin_account_max_failures && address_failures > 0);
        if locked {
            return Err(ApiError::new(
                ErrorCode::AdminLocked,
                "too many failed sign-ins; try again later",
            ));
        }
        Ok(())
    }

    /// Counts a failure against the address and, when it named the account, the account.
    pub async fn failed(&self, state: &AppState) -> Result<(), ApiError> {
        let mut redis = state.redis.clone();
        let window = i64::try_from(state.cfg.admin_lockout_secs).unwrap_or(900);
        for key in std::iter::once(&self.address_key).chain(self.account_key.as_ref()) {
            let _: u32 = redis::Script::new(COUNT_FAILURE)
                .key(key)
                .arg(window)
                .invoke_async(&mut redis)
                .await
                .map_err(|_| super::unavailable("sign-in is unavailable"))?;
        }
        Ok(())
    }

    /// A signed-in address starts afresh. The account's count stays: a success does not end an
    /// attack from elsewhere.
    pub async fn succeeded(&self, state: &AppState) {
        let mut redis = state.redis.clone();
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(&self.address_key)
            .query_async(&mut redis)
            .await;
    }
}

/// The unit an address is counted in: an IPv4 address, or the /64 of an IPv6 one (a host is
/// usually given a whole /64 and can use any address in it).
pub fn address_group(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::address_group;

    #[test]
    fn addresses_are_counted_by_ipv4_address_and_ipv6_slash_64() {
        let group = |raw: &str| address_group(Some(raw.parse().unwrap()));
        assert_eq!(group("203.0.113.7"), "203.0.113.7");
        assert_eq!(group("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(group("2001:db8:1:2::10"), "2001:db8:1:2::/64");
        assert_eq!(group("2001:db8:1:2:ffff::1"), group("2001:db8:1:2::10"));
        assert_ne!(group("2001:db8:1:3::10"), group("2001:db8:1:2::10"));
        assert_eq!(address_group(None), "unknown");
    }
}
