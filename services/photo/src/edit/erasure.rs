//! Erasing a user's personal data from their edits (`ImageEditService.ForgetUser`), for a user
//! who asked for deletion: every stored object of their tasks (input, mask, results) is deleted,
//! and each task row keeps only what the credit records need.
//!
//! The objects go first, then the rows are cleared in one transaction. A crash in between leaves
//! rows not yet erased whose objects are gone; the next call finds them again, deletes nothing
//! more (a missing object is fine) and clears them. The other order could clear a row whose
//! objects were never deleted, and nothing would name them any more.

use crate::edit::store::{self, TaskRow};
use crate::error::PhotoError;

use super::{EditService, view};

/// What one erasure did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Task rows whose personal fields were cleared by this call.
    pub edit_tasks: u32,
    /// Stored objects this call deleted. An object already gone (an input deleted when its task
    /// ended, results past their retention, a call that crashed before clearing its rows) is not
    /// counted: it was not deleted by this call.
    pub stored_objects: u32,
}

impl EditService {
    /// Erases what the edits hold of `user_id`. Refused with nothing changed while a task of the
    /// user has not ended: its credits are not settled yet and a worker step still needs its
    /// input. Asking again answers zero and zero.
    pub async fn forget_user(&self, user_id: i64) -> Result<Forgotten, PhotoError> {
        if user_id <= 0 {
            return Err(PhotoError::invalid("user_id", "a user id is positive"));
        }
        // The primary: what a worker has just ended must be seen as ended.
        let pool = &self.pools.primary;
        let tasks = store::not_erased_of_user(pool, user_id).await?;
        let running = tasks.iter().filter(|task| !task.status.has_ended()).count();
        if running > 0 {
            return Err(PhotoError::ErasureBlocked { running });
        }
        if tasks.is_empty() {
            return Ok(Forgotten::default());
        }
        let keys: Vec<Option<String>> = tasks.iter().flat_map(stored_keys).map(Some).collect();
        let deletion = self.delete_objects(&keys).await;
        // A row cleared now would no longer name the object that stayed: keep the rows, so
        // that the next call tries again.
        if let Some(failure) = deletion.failure {
            return Err(failure.into());
        }
        let ids: Vec<&str> = tasks.iter().map(|task| task.id.as_str()).collect();
        let erased = store::erase(pool, user_id, &ids).await?;
        let forgotten = Forgotten {
            edit_tasks: u32::try_from(erased).unwrap_or(u32::MAX),
            stored_objects: deletion.deleted,
        };
        tracing::info!(
            user_id,
            edit_tasks = forgotten.edit_tasks,
            stored_objects = forgotten.stored_objects,
            "a user's edit data erased"
        );
        Ok(forgotten)
    }
}

/// Every object key a task names: its input, its mask and each stored result. Most are gone
/// already once a task ended (its input then, its results after their retention); asking
/// storage to delete a missing one is harmless, and forgetting one that stayed is not.
fn stored_keys(task: &TaskRow) -> Vec<String> {
    let mut keys = Vec::with_capacity(2 + task.outputs as usize);
    keys.push(task.input_key.clone());
    keys.extend(task.mask_key.clone());
    keys.extend(
        view::stored_results(task)
            .into_iter()
            .map(|result| result.key),
    );
    keys.retain(|key| !key.is_empty());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::domain::TaskState;

    fn task(mask_key: Option<&str>, results: Option<&str>) -> TaskRow {
        TaskRow {
            id: "0123456789abcdef0123456789abcdef".into(),
            user_id: 7,
            client_id: "pc-1".into(),
            openid: "o_1".into(),
            request_id: "r-1".into(),
            function_name: "description_edit".into(),
            model: "wanx2.1-imageedit".into(),
            prompt: "给小猫添加一副墨镜".into(),
            parameters: "{}".into(),
            outputs: 2,
            input_key: "edits/0123/input.png".into(),
            input_content_type: "image/png".into(),
            mask_key: mask_key.map(str::to_owned),
            mask_content_type: mask_key.map(|_| "image/png".to_owned()),
            width: 768,
            height: 512,
            status: TaskState::Succeeded,
            provider_task_id: None,
            attempts: 1,
            polls: 1,
            results: results.map(str::to_owned),
            results_purged: false,
            erased: false,
            credits_reserved: 2,
            credits_charged: 2,
            error_code: None,
            error_message: None,
            created_ms: 0,
            finished_ms: 0,
            since_submit_ms: 0,
            lease_ends: None,
        }
    }

    #[test]
    fn a_task_names_its_input_mask_and_every_result() {
        let results = r#"[{"key": "edits/0123/result-0.png", "width": 1, "height": 1, "bytes": 1, "content_type": "image/png"},
                          {"key": "edits/0123/result-1.png", "width": 1, "height": 1, "bytes": 1, "content_type": "image/png"}]"#;
        assert_eq!(
            stored_keys(&task(Some("edits/0123/mask.png"), Some(results))),
            [
                "edits/0123/input.png",
                "edits/0123/mask.png",
                "edits/0123/result-0.png",
                "edits/0123/result-1.png",
            ]
        );
    }

    #[test]
    fn a_task_without_mask_or_results_names_its_input_only() {
        assert_eq!(stored_keys(&task(None, None)), ["edits/0123/input.png"]);
        let mut erased = task(None, None);
        erased.input_key.clear();
        assert!(stored_keys(&erased).is_empty());
    }
}
