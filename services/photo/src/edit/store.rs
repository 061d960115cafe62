//! `edit_tasks` and `edit_dispatch`: edit tasks from request to end. Every state change is one
//! guarded UPDATE (the expected state, and the lease where a step holds one), so two instances
//! never both move a task, and a step replayed after a crash changes nothing twice. Times are
//! the database's clock, the one clock every instance shares.

use sqlx::{Acquire, FromRow, MySqlConnection, MySqlExecutor, MySqlPool};

use crate::edit::domain::TaskState;

/// Columns read for a task.
const COLUMNS: &str = "id, user_id, client_id, openid, request_id, `function` AS function_name, model, prompt, \
    CAST(parameters AS CHAR) AS parameters, outputs, input_key, input_content_type, mask_key, \
    mask_content_type, width, height, CAST(status AS CHAR) AS status, provider_task_id, attempts, \
    polls, CAST(results AS CHAR) AS results, results_purged_at IS NOT NULL AS results_purged, \
    erased_at IS NOT NULL AS erased, \
    credits_reserved, credits_charged, error_code, \
    error_message, CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED) AS created_ms, \
    CAST(COALESCE(UNIX_TIMESTAMP(finished_at) * 1000, 0) AS SIGNED) AS finished_ms, \
    CAST(TIMESTAMPDIFF(MICROSECOND, COALESCE(submitted_at, created_at), NOW(3)) / 1000 AS SIGNED) AS since_submit_ms";

#[derive(Clone, Debug, FromRow)]
pub struct TaskRow {
    pub id: String,
    pub user_id: i64,
    pub client_id: String,
    pub openid: String,
    pub request_id: String,
    pub function_name: String,
    pub model: String,
    pub prompt: String,
    pub parameters: String,
    pub outputs: u32,
    pub input_key: String,
    pub input_content_type: String,
    pub mask_key: Option<String>,
    pub mask_content_type: Option<String>,
    pub width: u32,
    pub height: u32,
    #[sqlx(try_from = "String")]
    pub status: TaskState,
    pub provider_task_id: Option<String>,
    pub attempts: u32,
    pub polls: u32,
    pub results: Option<String>,
    /// The stored results were deleted after their retention (`results` is NULL then).
    pub results_purged: bool,
    /// The owner's personal data was erased: the row is only a credit record now.
    pub erased: bool,
    pub credits_reserved: u32,
    pub credits_charged: u32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_ms: i64,
    pub finished_ms: i64,
    /// Milliseconds since the provider call was claimed (or since creation).
    pub since_submit_ms: i64,
    /// When the lease the worker took with the row ends (None where the row was only read): a
    /// step's updates may be tried again until then.
    #[sqlx(skip)]
    pub lease_ends: Option<std::time::Instant>,
}

/// A task as the request makes it.
pub struct NewTask<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub client_id: &'a str,
    pub openid: &'a str,
    pub request_id: &'a str,
    pub request_key: &'a str,
    pub function_name: &'a str,
    pub model: &'a str,
    pub prompt: &'a str,
    pub parameters: &'a str,
    pub outputs: u32,
    pub input_key: &'a str,
    pub input_content_type: &'a str,
    pub mask_key: Option<&'a str>,
    pub mask_content_type: Option<&'a str>,
    pub width: u32,
    pub height: u32,
    pub deadline_secs: u64,
}

/// Inserts a task in state `new`. A unique violation means the same request made one before.
#[tracing::instrument(name = "edit_tasks.insert", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn insert(
    executor: impl MySqlExecutor<'_>,
    task: &NewTask<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO edit_tasks (id, user_id, client_id, openid, request_id, request_key, \
         `function`, model, prompt, parameters, outputs, input_key, input_content_type, mask_key, \
         mask_content_type, width, height, status, next_attempt_at, deadline_at, credits_reserved) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'new', NOW(3), \
         DATE_ADD(NOW(3), INTERVAL ? SECOND), ?)",
    )
    .bind(task.id)
    .bind(task.user_id)
    .bind(task.client_id)
    .bind(task.openid)
    .bind(task.request_id)
    .bind(task.request_key)
    .bind(task.function_name)
    .bind(task.model)
    .bind(task.prompt)
    .bind(task.parameters)
    .bind(task.outputs)
    .bind(task.input_key)
    .bind(task.input_content_type)
    .bind(task.mask_key)
    .bind(task.mask_content_type)
    .bind(task.width)
    .bind(task.height)
    .bind(task.deadline_secs)
    .bind(task.outputs)
    .execute(executor)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "edit_tasks.find", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find(
    executor: impl MySqlExecutor<'_>,
    id: &str,
) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM edit_tasks WHERE id = ?"))
        .bind(id)
        .fetch_optional(executor)
        .await
}

#[tracing::instrument(name = "edit_tasks.find_by_request", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn find_by_request(
    executor: impl MySqlExecutor<'_>,
    client_id: &str,
    user_id: i64,
    request_key: &str,
) -> Result<Option<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM edit_tasks WHERE client_id = ? AND user_id = ? AND request_key = ?"
    ))
    .bind(client_id)
    .bind(user_id)
    .bind(request_key)
    .fetch_optional(executor)
    .await
}

/// new → queued, once the credits are held.
#[tracing::instrument(name = "edit_tasks.mark_queued", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_queued(executor: impl MySqlExecutor<'_>, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET status = 'queued', next_attempt_at = NOW(3) \
         WHERE id = ? AND status = 'new'",
    )
    .bind(id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a task that delivered nothing. `owner` is the lease the caller holds (None: the task
/// holds no lease, as during the request). The request key is cleared, so the same request may
/// be tried again as a new task.
#[tracing::instrument(name = "edit_tasks.fail", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn fail(
    executor: impl MySqlExecutor<'_>,
    id: &str,
    owner: Option<&str>,
    code: &str,
    message: &str,
) -> Result<bool, sqlx::Error> {
    let message: String = message.chars().take(500).collect();
    let done = sqlx::query(
        "UPDATE edit_tasks SET status = 'failed', request_key = NULL, error_code = ?, \
         error_message = ?, lease_owner = NULL, lease_until = NULL, finished_at = NOW(3) \
         WHERE id = ? AND status IN ('new', 'queued', 'submitting', 'running', 'settling') \
         AND (lease_owner <=> ?)",
    )
    .bind(code)
    .bind(message)
    .bind(id)
    .bind(owner)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The provider's limits for one model, enforced across every instance.
#[derive(Clone, Copy, Debug)]
pub struct ProviderLimits {
    pub max_in_flight: u32,
    /// Submissions within `window_ms`.
    pub submits_per_window: u32,
    pub window_ms: u64,
}

/// Claims up to `max` queued tasks of `model` for the provider call, within its limits: under
/// the model's dispatch row lock, counts the tasks in flight (submitting or running) and the
/// submissions of the last window, and takes what is left, oldest first.
#[tracing::instrument(name = "edit_tasks.claim_for_provider", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim_for_provider(
    pool: &MySqlPool,
    model: &str,
    owner: &str,
    limits: ProviderLimits,
    lease_secs: u64,
    max: u32,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    // An idle worker looks (one indexed read) before it takes the dispatch lock.
    let due: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM edit_tasks WHERE status = 'queued' AND next_attempt_at <= NOW(3) \
         AND model = ? LIMIT 1",
    )
    .bind(model)
    .fetch_optional(&mut *conn)
    .await?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query("INSERT IGNORE INTO edit_dispatch (model) VALUES (?)")
        .bind(model)
        .execute(&mut *conn)
        .await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT model FROM edit_dispatch WHERE model = ? FOR UPDATE")
        .bind(model)
        .execute(&mut *tx)
        .await?;
    let (in_flight, recent): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(status IN ('submitting', 'running')), 0) AS SIGNED), \
         CAST(COALESCE(SUM(submitted_at > DATE_SUB(NOW(3), INTERVAL ? MICROSECOND)), 0) AS SIGNED) \
         FROM edit_tasks WHERE model = ? \
         AND (status IN ('submitting', 'running') OR submitted_at > DATE_SUB(NOW(3), INTERVAL ? MICROSECOND))",
    )
    .bind(limits.window_ms * 1000)
    .bind(model)
    .bind(limits.window_ms * 1000)
    .fetch_one(&mut *tx)
    .await?;
    let room = (i64::from(limits.max_in_flight) - in_flight)
        .min(i64::from(limits.submits_per_window) - recent)
        .min(i64::from(max));
    if room <= 0 {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM edit_tasks WHERE model = ? AND status = 'queued' \
         AND next_attempt_at <= NOW(3) ORDER BY created_at, id LIMIT ?",
    )
    .bind(model)
    .bind(room)
    .fetch_all(&mut *tx)
    .await?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        sqlx::query(
            "UPDATE edit_tasks SET status = 'submitting', lease_owner = ?, \
             lease_until = DATE_ADD(NOW(3), INTERVAL ? SECOND), submitted_at = NOW(3), \
             attempts = attempts + 1 WHERE id = ? AND status = 'queued'",
        )
        .bind(owner)
        .bind(lease_secs)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        if let Some(row) = find(&mut *tx, &id).await? {
            claimed.push(row);
        }
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Claims up to `max` tasks in `status` that are due and whose lease is free or ran out.
#[tracing::instrument(name = "edit_tasks.claim_due", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim_due(
    pool: &MySqlPool,
    status: TaskState,
    owner: &str,
    lease_secs: u64,
    max: u32,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM edit_tasks WHERE status = ? AND next_attempt_at <= NOW(3) \
         AND (lease_until IS NULL OR lease_until < NOW(3)) ORDER BY next_attempt_at LIMIT ?",
    )
    .bind(status.as_str())
    .bind(max)
    .fetch_all(&mut *conn)
    .await?;
    take_leases(&mut conn, &ids, status, owner, lease_secs).await
}

/// Claims tasks past their deadline (or, in state `new`, older than `abandon_after_secs`: the
/// instance that took the request stopped before the credits were held), lease free.
#[tracing::instrument(name = "edit_tasks.claim_expired", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn claim_expired(
    pool: &MySqlPool,
    owner: &str,
    abandon_after_secs: u64,
    lease_secs: u64,
    max: u32,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, CAST(status AS CHAR) FROM edit_tasks \
         WHERE ((status IN ('queued', 'submitting', 'running') AND deadline_at < NOW(3)) \
         OR (status = 'new' AND created_at < DATE_SUB(NOW(3), INTERVAL ? SECOND))) \
         AND (lease_until IS NULL OR lease_until < NOW(3)) LIMIT ?",
    )
    .bind(abandon_after_secs)
    .bind(max)
    .fetch_all(&mut *conn)
    .await?;
    let mut claimed = Vec::new();
    for (id, status) in rows {
        let Ok(status) = TaskState::try_from(status) else {
            continue; // not a state this code knows: left alone
        };
        claimed.extend(take_leases(&mut conn, &[id], status, owner, lease_secs).await?);
    }
    Ok(claimed)
}

async fn take_leases(
    conn: &mut MySqlConnection,
    ids: &[String],
    status: TaskState,
    owner: &str,
    lease_secs: u64,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    let mut claimed = Vec::new();
    for id in ids {
        let taken = sqlx::query(
            "UPDATE edit_tasks SET lease_owner = ?, lease_until = DATE_ADD(NOW(3), INTERVAL ? SECOND) \
             WHERE id = ? AND status = ? AND (lease_until IS NULL OR lease_until < NOW(3))",
        )
        .bind(owner)
        .bind(lease_secs)
        .bind(id)
        .bind(status.as_str())
        .execute(&mut *conn)
        .await?;
        if taken.rows_affected() == 1
            && let Some(row) = find(&mut *conn, id).await?
        {
            claimed.push(row);
        }
    }
    Ok(claimed)
}

/// Gives back the leases of submits that never finished (their instance stopped): the tasks
/// are queued again. The provider may have taken such a submit; a second one costs us, never
/// the user (they pay for one task's results).
#[tracing::instrument(name = "edit_tasks.requeue_lost_submits", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn requeue_lost_submits(executor: impl MySqlExecutor<'_>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
         next_attempt_at = NOW(3) WHERE status = 'submitting' AND lease_until < NOW(3)",
    )
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// submitting → queued again after `delay_ms` (the provider was busy).
#[tracing::instrument(name = "edit_tasks.requeue", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn requeue(
    executor: impl MySqlExecutor<'_>,
    id: &str,
    owner: &str,
    delay_ms: u64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET status = 'queued', lease_owner = NULL, lease_until = NULL, \
         next_attempt_at = DATE_ADD(NOW(3), INTERVAL ? MICROSECOND) \
         WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
    )
    .bind(delay_ms * 1000)
    .bind(id)
    .bind(owner)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// submitting → running with the provider's task id; first poll after `delay_ms`. The
/// submission is stamped again now that the provider has it: the provider counts it from its
/// arrival, which the claim's stamp preceded by the time the call took.
#[tracing::instrument(name = "edit_tasks.mark_running", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_running(
    executor: impl MySqlExecutor<'_>,
    id: &str,
    owner: &str,
    provider_task_id: &str,
    delay_ms: u64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET status = 'running', provider_task_id = ?, lease_owner = NULL, \
         lease_until = NULL, submitted_at = NOW(3), \
         next_attempt_at = DATE_ADD(NOW(3), INTERVAL ? MICROSECOND) \
         WHERE id = ? AND status = 'submitting' AND lease_owner = ?",
    )
    .bind(provider_task_id)
    .bind(delay_ms * 1000)
    .bind(id)
    .bind(owner)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A step on a task in `status` is done; the next one is due after `delay_ms`. Gives the lease
/// back.
#[tracing::instrument(name = "edit_tasks.reschedule", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn reschedule(
    executor: impl MySqlExecutor<'_>,
    id: &str,
    status: TaskState,
    owner: &str,
    delay_ms: u64,
    polled: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET lease_owner = NULL, lease_until = NULL, polls = polls + ?, \
         next_attempt_at = DATE_ADD(NOW(3), INTERVAL ? MICROSECOND) \
         WHERE id = ? AND status = ? AND lease_owner = ?",
    )
    .bind(u32::from(polled))
    .bind(delay_ms * 1000)
    .bind(id)
    .bind(status.as_str())
    .bind(owner)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// submitting/running → settling with the stored results: from here on the task succeeds
/// (once its credits are committed) and no deadline fails it.
#[tracing::instrument(name = "edit_tasks.mark_settling", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_settling(
    executor: impl MySqlExecutor<'_>,
    id: &str,
    owner: &str,
    results_json: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET status = 'settling', results = ? \
         WHERE id = ? AND status IN ('submitting', 'running') AND lease_owner = ?",
    )
    .bind(results_json)
    .bind(id)
    .bind(owner)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// settling → succeeded, with what was charged.
#[tracing::instrument(name = "edit_tasks.mark_succeeded", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn mark_succeeded(
    executor: impl MySqlExecutor<'_>,
    id: &str,
    owner: &str,
    charged: u32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET status = 'succeeded', credits_charged = ?, lease_owner = NULL, \
         lease_until = NULL, finished_at = NOW(3) \
         WHERE id = ? AND status = 'settling' AND lease_owner = ?",
    )
    .bind(charged)
    .bind(id)
    .bind(owner)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Succeeded tasks that still hold results and ended over `retention_secs` ago, oldest first:
/// (id, results JSON).
#[tracing::instrument(name = "edit_tasks.results_past_retention", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn results_past_retention(
    executor: impl MySqlExecutor<'_>,
    retention_secs: u64,
    limit: u32,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, CAST(results AS CHAR) FROM edit_tasks \
         WHERE status = 'succeeded' AND finished_at < NOW(3) - INTERVAL ? SECOND \
           AND results IS NOT NULL \
         ORDER BY finished_at LIMIT ?",
    )
    .bind(retention_secs)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// Forgets a task's results, once: true for the one caller that did it (who then deletes the
/// files). The request key goes too, so the same request may be made again.
#[tracing::instrument(name = "edit_tasks.purge_results", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn purge_results(
    executor: impl MySqlExecutor<'_>,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE edit_tasks SET results = NULL, results_purged_at = NOW(3), request_key = NULL \
         WHERE id = ? AND status = 'succeeded' AND results IS NOT NULL",
    )
    .bind(id)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The user's tasks whose personal data is still here, whatever their state, newest first.
#[tracing::instrument(name = "edit_tasks.not_erased_of_user", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn not_erased_of_user(
    executor: impl MySqlExecutor<'_>,
    user_id: i64,
) -> Result<Vec<TaskRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM edit_tasks WHERE user_id = ? AND erased_at IS NULL \
         ORDER BY created_at DESC, id"
    ))
    .bind(user_id)
    .fetch_all(executor)
    .await
}

/// Ids per UPDATE of [`erase`]: one statement stays small however many tasks a user has.
const ERASE_BATCH: usize = 500;

/// Clears the personal fields of the user's ended tasks among `ids`, in one transaction; returns
/// how many rows it cleared. What the credit records need stays (id, user, function, model,
/// status, credits, times, the error code); the request key becomes NULL, which the unique key
/// on (client_id, user_id, request_key) never counts as a duplicate, so the blanked client ids
/// cannot collide. Only the given ids: a task made meanwhile still names objects nobody deleted.
/// A row already erased, or not ended, is left as it is.
#[tracing::instrument(name = "edit_tasks.erase", skip_all, fields(otel.kind = "client", db.system.name = "mysql"))]
pub async fn erase(pool: &MySqlPool, user_id: i64, ids: &[&str]) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut erased = 0;
    for batch in ids.chunks(ERASE_BATCH) {
        let placeholders = vec!["?"; batch.len()].join(", ");
        // results_purged_at says the results were there and are gone: only a succeeded task
        // had any to show.
        let sql = format!(
            "UPDATE edit_tasks SET prompt = '', parameters = JSON_OBJECT(), client_id = '', \
             openid = '', request_id = '', request_key = NULL, input_key = '', mask_key = NULL, \
             results = NULL, error_message = NULL, \
             results_purged_at = IF(status = 'succeeded', COALESCE(results_purged_at, NOW(3)), \
             results_purged_at), erased_at = NOW(3) \
             WHERE user_id = ? AND erased_at IS NULL AND status IN ('succeeded', 'failed') \
             AND id IN ({placeholders})"
        );
        let mut query = sqlx::query(&sql).bind(user_id);
        for id in batch {
            query = query.bind(*id);
        }
        erased += query.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(erased)
}
