//! Durations in the defaults documents: a setting named `..._ms` or `..._secs` holds a whole
//! number, read straight into a `Duration` (`#[serde(deserialize_with = "...")]`), so the code
//! that uses it never converts, and the setting keeps the name that says its unit.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A whole number of milliseconds.
pub fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}

/// A whole number of seconds.
pub fn secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_secs)
}

/// A whole number of seconds where 0 means never (None).
pub fn secs_or_never<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    secs(deserializer).map(|duration| (!duration.is_zero()).then_some(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "millis")]
        wait_ms: Duration,
        #[serde(deserialize_with = "secs")]
        lease_secs: Duration,
        #[serde(deserialize_with = "secs_or_never")]
        kept_secs: Option<Duration>,
        #[serde(deserialize_with = "secs_or_never")]
        forever_secs: Option<Duration>,
    }

    #[test]
    fn units_come_from_the_setting() {
        let sample: Sample = super::super::defaults_only(&[
            "wait_ms = 1500\nlease_secs = 30\nkept_secs = 60\nforever_secs = 0\n",
        ])
        .unwrap();
        assert_eq!(sample.wait_ms, Duration::from_millis(1500));
        assert_eq!(sample.lease_secs, Duration::from_secs(30));
        assert_eq!(sample.kept_secs, Some(Duration::from_secs(60)));
        assert_eq!(sample.forever_secs, None);
    }
}
