//! Erasing a user's edits (`ImageEditService.ForgetUser`, asked for a user who wants their data
//! deleted): their stored objects are deleted from the edit storage, their task rows keep only
//! what the credit records need, and nothing of theirs is served any more. Another user's edits
//! stay; a user whose edit still runs is refused until it has ended.

use std::path::PathBuf;
use std::time::Duration;

use e2e::{Options, System};
use proto::ErrorCode;
use proto::photo::v1 as pb;
use proto::photo::v1::image_edit_service_client::ImageEditServiceClient;
use sandbox::{EditFaults, EditSettings};
use serde_json::Value;

use crate::edit::support::{App, bind, bound_app, form, photo};

const WITHIN: Duration = Duration::from_secs(20);

async fn forget_user(
    system: &System,
    user_id: i64,
) -> Result<pb::ForgetUserResponse, tonic::Status> {
    ImageEditServiceClient::new(system.grpc_channel(system.photo_url()))
        .forget_user(pb::ForgetUserRequest { user_id })
        .await
        .map(tonic::Response::into_inner)
}

/// Polls a task with `token` until it has ended.
async fn wait_as(app: &App, token: &str, task_id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, task) = app.edit_task_as(token, task_id).await;
        assert_eq!(status, 200, "{task}");
        if task["status"] == "succeeded" || task["status"] == "failed" {
            return task;
        }
        assert!(
            started.elapsed() < WITHIN,
            "edit {task_id} did not end: {task}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// A task's row in the photo service's table, as the credit records and the erasure see it.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    user_id: i64,
    client_id: String,
    openid: String,
    request_id: String,
    request_key: Option<String>,
    function: String,
    model: String,
    prompt: String,
    parameters: String,
    input_key: String,
    mask_key: Option<String>,
    results: Option<String>,
    status: String,
    credits_reserved: u32,
    credits_charged: u32,
    error_code: Option<String>,
    created: bool,
    finished: bool,
    results_purged: bool,
    erased: bool,
}

async fn row(system: &System, task_id: &str) -> Row {
    let pool = system.photo_db().primary().await;
    let row = sqlx::query_as(
        "SELECT user_id, client_id, openid, request_id, request_key, `function`, model, prompt, \
         CAST(parameters AS CHAR) AS parameters, input_key, mask_key, \
         CAST(results AS CHAR) AS results, CAST(status AS CHAR) AS status, credits_reserved, \
         credits_charged, error_code, created_at IS NOT NULL AS created, \
         finished_at IS NOT NULL AS finished, results_purged_at IS NOT NULL AS results_purged, \
         erased_at IS NOT NULL AS erased FROM edit_tasks WHERE id = ?",
    )
    .bind(task_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    row
}

/// The files left in a task's directory of the edit storage.
fn stored_files(system: &System, task_id: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(task_dir(system, task_id))
        .map(|dir| {
            dir.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits until the worker has deleted a task's input, which it does just after the task is shown
/// ended: an erasure that came first would count the input as its own.
async fn wait_until_inputs_gone(system: &System, task_id: &str) {
    let started = std::time::Instant::now();
    while stored_files(system, task_id)
        .iter()
        .any(|name| name.starts_with("input") || name.starts_with("mask"))
    {
        assert!(started.elapsed() < WITHIN, "the input of {task_id} stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn task_dir(system: &System, task_id: &str) -> PathBuf {
    e2e::photo::edit_storage_dir(system.photo_db())
        .join("edits")
        .join(task_id)
}

/// The token of a result URL (`/api/v1/photos/edit/results/<token>`).
fn token_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// Reading a result straight from the photo service, both ways, answers NOT_FOUND
/// `edit_result_not_found` (not an internal error, not membership_unavailable).
async fn assert_result_not_found(system: &System, token: &str) {
    let mut client = ImageEditServiceClient::new(system.grpc_channel(system.photo_url()));
    let request = || pb::ReadEditResultRequest {
        token: token.to_owned(),
    };
    let read = client.read_edit_result(request()).await.unwrap_err();
    let streamed = match client.stream_edit_result(request()).await {
        Ok(_) => panic!("an erased result is streamed"),
        Err(status) => status,
    };
    for status in [read, streamed] {
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        assert_eq!(
            platform::grpc::error_code(&status),
            Some(ErrorCode::EditResultNotFound)
        );
    }
}

#[tokio::test]
async fn forgetting_a_user_deletes_their_edit_objects_and_keeps_only_the_credit_records() {
    let app = bound_app(Options::default(), "o_erase_done").await;
    let system = &app.system;
    let user_id = system.user_id("o_erase_done").await;
    // Another user's edit, which must stay as it is.
    let other = bind(system, "pc-o_erase_other", "o_erase_other").await;
    let (status, theirs) = app
        .submit_edit_as(
            &other,
            form(photo(), "free_text", &[("prompt", "将背景更改为海滩")]),
            None,
        )
        .await;
    assert_eq!(status, 202, "{theirs}");
    let their_id = theirs["task_id"].as_str().unwrap().to_owned();
    let their_task = wait_as(&app, &other, &their_id).await;
    assert_eq!(their_task["status"], "succeeded", "{their_task}");

    // The user's edits: one succeeded with two results, one failed.
    let (status, accepted) = app
        .submit_edit_with_key(
            form(
                photo(),
                "description_edit",
                &[("prompt", "给小猫添加一副墨镜"), ("outputs", "2")],
            ),
            Some("erase-me-1"),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let done_id = accepted["task_id"].as_str().unwrap().to_owned();
    let done = app.wait_for_edit(&done_id, WITHIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Every task the provider is given fails until this one has: a submit whose answer came
    // late on a loaded machine is sent again and makes a second provider task, and the first
    // would have used up a single fault.
    system.sandbox.set_edit_faults(EditFaults {
        fail_tasks: u32::MAX,
        ..EditFaults::default()
    });
    let failed_id = app
        .edit(form(
            photo(),
            "stylization_all",
            &[("prompt", "转换成法国绘本风格")],
        ))
        .await;
    let failed = app.wait_for_edit(&failed_id, WITHIN).await;
    system.sandbox.set_edit_faults(EditFaults::default());
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(app.credits().await, (8, 0));
    wait_until_inputs_gone(system, &done_id).await;
    wait_until_inputs_gone(system, &failed_id).await;

    let url = done["results"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(app.fetch(&url).await.0, 200);
    assert_eq!(
        stored_files(system, &done_id),
        ["result-0.png", "result-1.png"]
    );
    // The input went when the task ended; one left behind (a delete that failed then) is the
    // user's photo all the same, and must go too.
    let before = row(system, &done_id).await;
    assert_eq!(before.prompt, "给小猫添加一副墨镜");
    assert_eq!(before.client_id, "pc-o_erase_done");
    assert!(before.request_key.is_some());
    let input = e2e::photo::edit_storage_dir(system.photo_db()).join(&before.input_key);
    std::fs::write(&input, photo()).unwrap();

    let forgotten = forget_user(system, user_id).await.unwrap();
    assert_eq!(forgotten.edit_tasks, 2, "{forgotten:?}");
    assert_eq!(
        forgotten.stored_objects, 3,
        "two results and the input left behind: {forgotten:?}"
    );
    assert!(!input.exists());
    assert!(stored_files(system, &done_id).is_empty());
    assert!(stored_files(system, &failed_id).is_empty());

    // The rows keep what the credit records need and nothing personal.
    for (task_id, status, charged) in [(&done_id, "succeeded", 2), (&failed_id, "failed", 0)] {
        let erased = row(system, task_id).await;
        assert!(erased.erased, "{erased:?}");
        assert_eq!(erased.user_id, user_id);
        assert_eq!(erased.status, status);
        assert_eq!(erased.credits_charged, charged, "{erased:?}");
        assert!(erased.created && erased.finished, "{erased:?}");
        assert_eq!(
            (
                erased.prompt.as_str(),
                erased.parameters.as_str(),
                erased.client_id.as_str(),
                erased.openid.as_str(),
                erased.request_id.as_str(),
                erased.input_key.as_str(),
            ),
            ("", "{}", "", "", "", ""),
            "{erased:?}"
        );
        assert_eq!(erased.request_key, None);
        assert_eq!(erased.mask_key, None);
        assert_eq!(erased.results, None);
    }
    let erased_done = row(system, &done_id).await;
    assert_eq!(
        (
            erased_done.function.as_str(),
            erased_done.model.as_str(),
            erased_done.credits_reserved
        ),
        ("description_edit", "wanx2.1-imageedit", 2)
    );
    assert!(erased_done.results_purged);
    let erased_failed = row(system, &failed_id).await;
    assert_eq!(erased_failed.error_code.as_deref(), Some("provider_failed"));
    // Credits are membership's and stay as they were.
    assert_eq!(app.credits().await, (8, 0));
    assert_eq!(app.edit_spending().await, (1, 2));

    // Nothing of the erased tasks is served: not the task, not a URL handed out before.
    let (status, body) = app.edit_task_as(&app.token, &done_id).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "edit_not_found");
    let (status, _, _) = app.fetch(&url).await;
    assert_eq!(status, 404);
    assert_result_not_found(system, &token_of(&url)).await;

    // Asking again changes and counts nothing more.
    let again = forget_user(system, user_id).await.unwrap();
    assert_eq!((again.edit_tasks, again.stored_objects), (0, 0));

    // The other user's edit is untouched.
    let kept = row(system, &their_id).await;
    assert!(!kept.erased);
    assert_eq!(kept.prompt, "将背景更改为海滩");
    assert_eq!(kept.client_id, "pc-o_erase_other");
    assert_eq!(stored_files(system, &their_id), ["result-0.png"]);
    let (status, task) = app.edit_task_as(&other, &their_id).await;
    assert_eq!(status, 200, "{task}");
    let their_url = task["results"][0]["url"].as_str().unwrap();
    assert_eq!(app.fetch(their_url).await.0, 200);

    // The unique key on (client, user, request key) holds erased rows of one user side by side;
    // the same key from the same client is a new task now.
    let (status, anew) = app
        .submit_edit_with_key(
            form(
                photo(),
                "description_edit",
                &[("prompt", "给小猫添加一副墨镜")],
            ),
            Some("erase-me-1"),
        )
        .await;
    assert_eq!(status, 202, "{anew}");
    assert_eq!(anew["created"], true, "{anew}");
}

#[tokio::test]
async fn a_user_whose_edit_still_runs_is_refused_and_nothing_changes() {
    let app = bound_app(Options::default(), "o_erase_busy").await;
    let system = &app.system;
    let user_id = system.user_id("o_erase_busy").await;
    let done_id = app
        .edit(form(
            photo(),
            "free_text",
            &[("prompt", "将背景更改为海滩")],
        ))
        .await;
    let done = app.wait_for_edit(&done_id, WITHIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let url = done["results"][0]["url"].as_str().unwrap().to_owned();

    // A wanx task the provider takes a while on: its credits are held, not yet settled.
    system.sandbox.set_edit_settings(EditSettings {
        pending_ms: 300,
        running_ms: 2500,
        ..EditSettings::default()
    });
    let running_id = app
        .edit(form(
            photo(),
            "stylization_all",
            &[("prompt", "转换成法国绘本风格")],
        ))
        .await;
    let refused = forget_user(system, user_id).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(
        platform::grpc::error_code(&refused),
        Some(ErrorCode::ErasureBlocked)
    );
    // Nothing changed: the finished task, its result and its row are as they were.
    let kept = row(system, &done_id).await;
    assert!(!kept.erased);
    assert_eq!(kept.prompt, "将背景更改为海滩");
    assert_eq!(stored_files(system, &done_id), ["result-0.png"]);
    assert_eq!(app.fetch(&url).await.0, 200);
    assert!(!row(system, &running_id).await.erased);

    // Once the edit has ended (and is paid), the erasure goes through.
    let ended = app.wait_for_edit(&running_id, WITHIN).await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    wait_until_inputs_gone(system, &running_id).await;
    let forgotten = forget_user(system, user_id).await.unwrap();
    assert_eq!(
        (forgotten.edit_tasks, forgotten.stored_objects),
        (2, 2),
        "two tasks, a result each"
    );
    assert_eq!(app.fetch(&url).await.0, 404);
    assert_eq!(app.credits().await, (8, 0));
}

#[tokio::test]
async fn forgetting_a_user_without_edits_answers_nothing_done() {
    let app = bound_app(Options::default(), "o_erase_none").await;
    let user_id = app.system.user_id("o_erase_none").await;
    let forgotten = forget_user(&app.system, user_id).await.unwrap();
    assert_eq!((forgotten.edit_tasks, forgotten.stored_objects), (0, 0));
    let refused = forget_user(&app.system, 0).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}
