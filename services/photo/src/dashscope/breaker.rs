//! The circuit breaker in front of the provider (failsafe): after N failed attempts in a row it
//! refuses calls at once for a while, then lets a probe through; a success closes it again.

use std::time::Duration;

use failsafe::backoff::Constant;
use failsafe::failure_policy::ConsecutiveFailures;
use failsafe::{Config, Instrument, StateMachine};

pub type Breaker = StateMachine<ConsecutiveFailures<Constant>, BreakerLog>;

pub fn new(failures: u32, open_for: Duration) -> Breaker {
    let policy = failsafe::failure_policy::consecutive_failures(
        failures.max(1),
        failsafe::backoff::constant(open_for),
    );
    Config::new()
        .failure_policy(policy)
        .instrument(BreakerLog)
        .build()
}

/// Logs the breaker's state changes, which operators want to see.
#[derive(Debug, Clone, Copy)]
pub struct BreakerLog;

impl Instrument for BreakerLog {
    fn on_call_rejected(&self) {
        tracing::debug!("cloud model call refused: circuit open");
    }

    fn on_open(&self) {
        tracing::warn!("circuit breaker open: the cloud model is failing, calls fail fast");
    }

    fn on_half_open(&self) {
        tracing::info!("circuit breaker half open: probing the cloud model");
    }

    fn on_closed(&self) {
        tracing::info!("circuit breaker closed: the cloud model answers again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failsafe::futures::CircuitBreaker as _;

    #[tokio::test]
    async fn it_opens_after_consecutive_failures_and_refuses_at_once() {
        let breaker = new(2, Duration::from_secs(60));
        for _ in 0..2 {
            let failed: Result<(), _> = breaker.call(async { Err::<(), _>("503") }).await;
            assert!(matches!(failed, Err(failsafe::Error::Inner(_))));
        }
        let mut ran = false;
        let refused = breaker
            .call(async {
                ran = true;
                Ok::<(), &str>(())
            })
            .await;
        assert!(matches!(refused, Err(failsafe::Error::Rejected)));
        assert!(!ran, "an open breaker does not run the call");
        assert!(!breaker.is_call_permitted());
    }

    #[tokio::test]
    async fn refusals_that_are_not_provider_failures_keep_it_closed() {
        let breaker = new(1, Duration::from_secs(60));
        let not_a_failure = |_: &&str| false;
        let _ = breaker
            .call_with(not_a_failure, async { Err::<(), _>("400 moderation") })
            .await;
        assert!(breaker.is_call_permitted());
    }
}
