//! Runs a whole transaction again after a deadlock or lock wait timeout, as MySQL asks of its
//! clients ([`platform::db::retry_transaction`]).

use std::future::Future;

use crate::error::MembershipError;

pub async fn transaction<T, F, Fut>(attempt: F) -> Result<T, MembershipError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, MembershipError>>,
{
    platform::db::retry_transaction(attempt, |err| match err {
        MembershipError::Database(err) => Some(err),
        _ => None,
    })
    .await
}
