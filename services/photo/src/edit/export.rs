//! A user's copy of what the edits hold about them (`ImageEditService.ExportUser`): every task not
//! yet erased, with the prompt and parameters they sent and what it cost. The images themselves
//! are not in the copy: results still stored are fetched through the task, and inputs are
//! deleted when a task ends.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::edit::store::{self, TaskRow};
use crate::error::PhotoError;

use super::{EditService, view};

/// The document's field names are the JSON the user downloads.
#[derive(Serialize)]
struct UserEdits {
    edit_tasks: Vec<EditTaskData>,
}

#[derive(Serialize)]
struct EditTaskData {
    task_id: String,
    client_id: String,
    function: String,
    model: String,
    prompt: String,
    parameters: serde_json::Value,
    outputs: u32,
    width: u32,
    height: u32,
    status: &'static str,
    error_code: Option<String>,
    credits_charged: u32,
    created_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// Results still in our storage (deleted after their retention).
    stored_results: usize,
}

fn task_data(row: TaskRow) -> EditTaskData {
    let at = |ms: i64| {
        (ms > 0)
            .then(|| DateTime::from_timestamp_millis(ms))
            .flatten()
    };
    EditTaskData {
        stored_results: view::stored_results(&row).len(),
        status: row.status.public().as_str(),
        // Stored as JSON by us; text that no longer parses is shown as it is.
        parameters: serde_json::from_str(&row.parameters)
            .unwrap_or(serde_json::Value::String(row.parameters)),
        created_at: at(row.created_ms),
        finished_at: at(row.finished_ms),
        task_id: row.id,
        client_id: row.client_id,
        function: row.function_name,
        model: row.model,
        prompt: row.prompt,
        outputs: row.outputs,
        width: row.width,
        height: row.height,
        error_code: row.error_code,
        credits_charged: row.credits_charged,
    }
}

impl EditService {
    /// The JSON copy of `user_id`'s edit tasks, read from the primary so the copy is complete up
    /// to the moment it was asked for.
    pub async fn export_user(&self, user_id: i64) -> Result<Vec<u8>, PhotoError> {
        if user_id <= 0 {
            return Err(PhotoError::invalid("user_id", "a user id is positive"));
        }
        let tasks = store::not_erased_of_user(&self.pools.primary, user_id).await?;
        let document = UserEdits {
            edit_tasks: tasks.into_iter().map(task_data).collect(),
        };
        serde_json::to_vec(&document).map_err(|err| PhotoError::Internal(err.to_string()))
    }
}
