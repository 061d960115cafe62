//! The edit worker, one per instance: it takes steps of tasks from MySQL under short leases and
//! runs them (submit within the provider's limits, poll, download and settle, fail what ran out
//! of time). Any instance carries on what another began; after a restart nothing is lost.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::edit::domain::{TaskState, WANX_MODEL};
use crate::edit::store::{self, TaskRow};

use super::EditService;

/// Tasks claimed per kind of step in one round.
const CLAIM_BATCH: u32 = 16;
/// How long a stopping instance lets its running steps finish before it drops them (their
/// leases run out and another instance takes them).
const DRAIN: Duration = Duration::from_secs(5);

/// Runs until `shutdown`, then lets the steps in progress finish (within [`DRAIN`]).
pub async fn run(service: Arc<EditService>, shutdown: CancellationToken) {
    let mut steps = JoinSet::new();
    let mut next_purge = Instant::now();
    loop {
        if let Err(err) = round(&service, &mut steps).await {
            tracing::warn!(error = %err, "edit worker round failed; trying again");
        }
        if Instant::now() >= next_purge {
            // At least 10 ms apart, whatever is configured: a round is a query.
            next_purge = Instant::now()
                + service
                    .settings
                    .retention_interval
                    .max(Duration::from_millis(10));
            match service.purge_old_results().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "edit results past their retention deleted"),
                Err(err) => tracing::warn!(error = %err, "edit retention round failed"),
            }
        }
        while steps.try_join_next().is_some() {}
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = service.wake.notified() => {}
            () = tokio::time::sleep(service.settings.tick) => {}
        }
    }
    if tokio::time::timeout(DRAIN, async { while steps.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            left = steps.len(),
            "edit steps still running at shutdown; their leases will run out"
        );
        steps.abort_all();
    }
}

/// Starts one step of `task` under the id of the request that made the task, so what the step
/// asks of membership (capturing or releasing the credits) is logged under that request.
fn spawn_step<F, Fut>(
    steps: &mut JoinSet<()>,
    service: &Arc<EditService>,
    mut task: TaskRow,
    lease_ends: Instant,
    step: F,
) where
    F: FnOnce(Arc<EditService>, TaskRow) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    task.lease_ends = Some(lease_ends);
    let request_id = task.request_id.clone();
    steps.spawn(platform::request_id::scope(
        request_id,
        step(service.clone(), task),
    ));
}

/// One round: claim every kind of due step and start it.
async fn round(service: &Arc<EditService>, steps: &mut JoinSet<()>) -> Result<(), sqlx::Error> {
    let pool = &service.pools.primary;
    let settings = &service.settings;
    let owner = service.instance_id.as_str();
    let lease = settings.lease.as_secs().max(1);
    // Taken before any claim, so a step's idea of its lease never outlasts the row's.
    let lease_ends = Instant::now() + Duration::from_secs(lease);
    let requeued = store::requeue_lost_submits(pool).await?;
    if requeued > 0 {
        tracing::warn!(requeued, "edit submits of a stopped instance queued again");
    }
    for expired in store::claim_expired(
        pool,
        owner,
        settings.abandon_after.as_secs(),
        lease,
        CLAIM_BATCH,
    )
    .await?
    {
        spawn_step(
            steps,
            service,
            expired,
            lease_ends,
            |service, task| async move { service.expire(task).await },
        );
    }
    let models = [
        (WANX_MODEL, settings.wanx_limits()),
        (
            settings.free_text_model.as_str(),
            settings.free_text_limits(),
        ),
    ];
    for (model, limits) in models {
        // A submit holds its lease for the whole provider call: a lease that ran out while the
        // call was still within its timeout would have the task taken as lost and sent again,
        // and the provider would run (and bill) it twice.
        let call = if model == WANX_MODEL {
            settings.call_timeout
        } else {
            settings.sync_timeout
        };
        let lease = lease + call.as_millis().div_ceil(1000) as u64;
        for task in
            store::claim_for_provider(pool, model, owner, limits, lease, CLAIM_BATCH).await?
        {
            spawn_step(
                steps,
                service,
                task,
                lease_ends,
                |service, task| async move { service.submit_step(task).await },
            );
        }
    }
    for task in store::claim_due(pool, TaskState::Running, owner, lease, CLAIM_BATCH).await? {
        spawn_step(
            steps,
            service,
            task,
            lease_ends,
            |service, task| async move { service.poll_step(task).await },
        );
    }
    for task in store::claim_due(pool, TaskState::Settling, owner, lease, CLAIM_BATCH).await? {
        spawn_step(
            steps,
            service,
            task,
            lease_ends,
            |service, task| async move { service.settle_step(task).await },
        );
    }
    Ok(())
}
