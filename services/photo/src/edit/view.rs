//! A task as its client sees it: the public status, and signed URL tokens for its results.

use std::time::Duration;

use crate::edit::domain::{PublicStatus, UrlSigner};
use crate::edit::store::TaskRow;

use super::StoredResult;

#[derive(Clone, Debug)]
pub struct ResultView {
    pub token: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub content_type: String,
}

#[derive(Clone, Debug)]
pub struct TaskView {
    pub task_id: String,
    pub status: PublicStatus,
    pub function: String,
    pub model: String,
    pub outputs: u32,
    pub results: Vec<ResultView>,
    pub credits_reserved: i64,
    pub credits_charged: i64,
    pub error_code: String,
    pub error_message: String,
    pub created_at_unix_ms: i64,
    pub finished_at_unix_ms: i64,
    /// When the result tokens stop working (0 without results).
    pub results_expire_at_unix: i64,
    /// False when an earlier identical request made the task.
    pub created: bool,
    /// The stored results were deleted after their retention.
    pub results_purged: bool,
}

/// The results stored for a task (none unless it got that far).
pub fn stored_results(row: &TaskRow) -> Vec<StoredResult> {
    row.results
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

pub fn task_view(row: &TaskRow, created: bool, signer: &UrlSigner, url_ttl: Duration) -> TaskView {
    let status = row.status.public();
    let mut results = Vec::new();
    let mut results_expire_at_unix = 0;
    // Results are shown only once paid for: a settling task is still "running".
    if status == PublicStatus::Succeeded {
        let expires = chrono::Utc::now().timestamp() + url_ttl.as_secs() as i64;
        results_expire_at_unix = expires;
        results = stored_results(row)
            .into_iter()
            .enumerate()
            .map(|(index, stored)| ResultView {
                token: signer.sign(&row.id, index as u32, expires),
                width: stored.width,
                height: stored.height,
                bytes: stored.bytes,
                content_type: stored.content_type,
            })
            .collect();
    }
    TaskView {
        task_id: row.id.clone(),
        status,
        function: row.function_name.clone(),
        model: row.model.clone(),
        outputs: row.outputs,
        results,
        credits_reserved: i64::from(row.credits_reserved),
        credits_charged: i64::from(row.credits_charged),
        error_code: row.error_code.clone().unwrap_or_default(),
        error_message: row.error_message.clone().unwrap_or_default(),
        created_at_unix_ms: row.created_ms,
        finished_at_unix_ms: row.finished_ms,
        results_expire_at_unix,
        results_purged: row.results_purged,
        created,
    }
}
