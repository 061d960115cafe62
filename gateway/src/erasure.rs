//! Erasing a user's personal data across the services. Membership erases what it holds (in one
//! transaction) and names what the photo service (the user's edits) and the stats service (the
//! request logs of the openid and the apps) must still forget; the gateway runs those
//! follow-ups and confirms them. Follow-ups that fail (a service down) are run again by
//! [`spawn_retries`] until they are confirmed: both are safe to run more than once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use proto::membership::v1 as membership;
use proto::photo::v1 as photo;
use proto::stats::v1 as stats;

use crate::AppState;
use crate::error::ApiError;

/// An erasure as answered to whoever asked.
pub struct Erased {
    pub credits_forfeited: i64,
    /// False when a follow-up failed; it is run again later.
    pub follow_ups_done: bool,
}

/// Erases `openid`'s personal data; `actor` is `member` or the operator's name.
pub async fn erase(
    state: &AppState,
    openid: String,
    actor: String,
    reason: String,
) -> Result<Erased, ApiError> {
    let mut personal_data = state.clients.personal_data.clone();
    let erasure = personal_data
        .erase_user(membership::EraseUserRequest {
            openid,
            actor,
            reason,
        })
        .await?
        .into_inner();
    let follow_ups_done = follow_up(state, &erasure).await;
    Ok(Erased {
        credits_forfeited: erasure.credits_forfeited,
        follow_ups_done,
    })
}

/// Asks the photo and stats services to forget the erased user, then confirms the erasure.
/// Returns whether it was confirmed; a failure is logged and left for the next retry.
async fn follow_up(state: &AppState, erasure: &membership::Erasure) -> bool {
    let mut edits = state.clients.edit.clone();
    let mut stats_client = state.clients.stats.clone();
    let (photo, stats) = tokio::join!(
        edits.forget_user(photo::ForgetUserRequest {
            user_id: erasure.user_id,
        }),
        stats_client.forget_caller(stats::ForgetCallerRequest {
            openid: erasure.openid.clone(),
            client_ids: erasure.client_ids.clone(),
        }),
    );
    match (photo, stats) {
        (Ok(photo), Ok(stats)) => {
            let (photo, stats) = (photo.into_inner(), stats.into_inner());
            tracing::info!(
                erasure = erasure.id,
                edit_tasks = photo.edit_tasks,
                stored_objects = photo.stored_objects,
                request_logs = stats.request_logs,
                "erased user forgotten by the photo and stats services"
            );
            let mut personal_data = state.clients.personal_data.clone();
            match personal_data
                .complete_erasure(membership::CompleteErasureRequest { id: erasure.id })
                .await
            {
                Ok(_) => true,
                Err(status) => {
                    tracing::warn!(erasure = erasure.id, error = %status.message(), "could not confirm an erasure; retried later");
                    false
                }
            }
        }
        (photo, stats) => {
            for (service, failed) in [("photo", photo.err()), ("stats", stats.err())] {
                if let Some(status) = failed {
                    tracing::warn!(erasure = erasure.id, service, error = %status.message(), "erasure follow-up failed; retried later");
                }
            }
            false
        }
    }
}

/// Every `interval`, runs the follow-ups of erasures older than `interval` that are not
/// confirmed. None when `interval` is zero.
pub fn spawn_retries(
    state: AppState,
    interval: Duration,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    Some(platform::shutdown::every(interval, shutdown, move || {
        let state = state.clone();
        async move { retry_pending(&state, interval).await }
    }))
}

async fn retry_pending(state: &AppState, older_than: Duration) {
    let mut personal_data = state.clients.personal_data.clone();
    let pending = match personal_data
        .list_pending_erasures(membership::ListPendingErasuresRequest {
            older_than_seconds: u32::try_from(older_than.as_secs()).unwrap_or(u32::MAX),
            limit: 20,
        })
        .await
    {
        Ok(answer) => answer.into_inner().erasures,
        Err(status) => {
            tracing::debug!(error = %status.message(), "pending erasures not listed");
            return;
        }
    };
    for erasure in &pending {
        follow_up(state, erasure).await;
    }
}
