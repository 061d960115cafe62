//! Runs a whole transaction again after a deadlock or lock wait timeout (up to 3 attempts, with
//! jittered 5–50 ms pauses), as MySQL asks of its clients.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::error::MembershipError;

const ATTEMPTS: u32 = 3;

pub async fn transaction<T, F, Fut>(mut attempt: F) -> Result<T, MembershipError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, MembershipError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(MembershipError::Database(err))
                if tries < ATTEMPTS && platform::db::is_retryable(&err) =>
            {
                let pause = rand::rng().random_range(5..=50);
                tracing::info!(error = %err, tries, "transaction conflict; running it again");
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}
