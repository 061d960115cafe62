//! Edits that work: a wanx function and a free-text edit end to end, results served from our
//! storage after the provider's URL expired, a restart mid-task, retried requests.

use std::time::Duration;

use e2e::Options;
use sandbox::EditSettings;

use super::support::{assert_inverted_photo, bind, bound_app, form, photo, turned_phone_photo};

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_wanx_edit_is_charged_per_output_and_served_from_our_storage() {
    let app = bound_app(Options::default(), "o_edit_wanx").await;
    let (status, accepted) = app
        .submit_edit(form(
            photo(),
            "description_edit",
            &[
                ("prompt", "给小猫添加一副墨镜"),
                ("outputs", "2"),
                ("strength", "0.6"),
            ],
        ))
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "pending", "{accepted}");
    assert_eq!(accepted["model"], "wanx2.1-imageedit");
    assert_eq!(accepted["credits_reserved"], 2);
    assert_eq!(accepted["created"], true);
    let task_id = accepted["task_id"].as_str().unwrap().to_owned();
    // Held, not spent, while the provider works.
    assert_eq!(app.credits().await, (10, 2));

    let task = app.wait_for_edit(&task_id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["credits_charged"], 2);
    let results = task["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(app.credits().await, (8, 0));
    assert_eq!(app.edit_spending().await, (1, 2));
    assert_eq!(app.hold_status(&task_id).await.as_deref(), Some("captured"));
    app.system.assert_ledger_invariant().await;

    // The provider's URLs expire; ours keep working (the results were copied at once).
    app.system.sandbox.expire_edit_results();
    for result in results {
        let url = result["url"].as_str().unwrap();
        assert!(url.starts_with("/api/v1/photos/edit/results/"), "{url}");
        let (status, bytes, content_type) = app.fetch(url).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "image/png");
        assert_eq!(bytes.len() as u64, result["bytes"].as_u64().unwrap());
        assert_inverted_photo(&bytes);
        // An altered URL is nothing.
        let (status, _, _) = app.fetch(&format!("{}x", &url[..url.len() - 1])).await;
        assert_eq!(status, 404);
    }
    // The input is gone once the task no longer needs it; the results stay.
    let dir = e2e::photo::edit_storage_dir(app.system.photo_db())
        .join("edits")
        .join(&task_id);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["result-0.png", "result-1.png"]);
    let stats = app.system.sandbox.edit_stats();
    assert_eq!(stats.submits, 1);
}

#[tokio::test]
async fn a_free_text_edit_runs_on_qwen_image_edit() {
    let app = bound_app(Options::default(), "o_edit_free").await;
    let task_id = app
        .edit(form(
            photo(),
            "free_text",
            &[("prompt", "将背景更改为海滩"), ("negative_prompt", "模糊")],
        ))
        .await;
    let task = app.wait_for_edit(&task_id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["model"], "qwen-image-edit");
    assert_eq!(task["credits_charged"], 1);
    let url = task["results"][0]["url"].as_str().unwrap();
    let (status, bytes, _) = app.fetch(url).await;
    assert_eq!(status, 200);
    assert_inverted_photo(&bytes);
    assert_eq!(app.credits().await, (9, 0));
    assert_eq!(app.system.sandbox.edit_stats().sync_calls, 1);
}

#[tokio::test]
async fn a_turned_phone_photo_is_edited_as_it_is_shown() {
    let app = bound_app(Options::default(), "o_edit_turned").await;
    let task_id = app
        .edit(form(
            turned_phone_photo(),
            "free_text",
            &[("prompt", "反色")],
        ))
        .await;
    let task = app.wait_for_edit(&task_id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let (status, bytes, _) = app.fetch(task["results"][0]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    // The provider was given the photo upright: its (inverted) result is the portrait the user
    // saw, red turned cyan at the top right, blue turned yellow elsewhere.
    let result = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(result.dimensions(), (600, 800));
    let top_right = result.get_pixel(520, 80);
    let top_left = result.get_pixel(80, 80);
    assert!(
        top_right[0] < 60 && top_right[1] > 200 && top_right[2] > 200,
        "{top_right:?}"
    );
    assert!(
        top_left[0] > 200 && top_left[1] > 200 && top_left[2] < 60,
        "{top_left:?}"
    );
}

#[tokio::test]
async fn results_are_deleted_after_their_retention_and_the_request_can_be_made_again() {
    let mut options = Options::default();
    options.photo.edit_result_retention_secs = 3;
    let app = bound_app(options, "o_edit_retention").await;
    let request = || form(photo(), "free_text", &[("prompt", "将背景更改为海滩")]);
    let (status, task) = app
        .submit_edit_with_key(request(), Some("retained-1"))
        .await;
    assert_eq!(status, 202, "{task}");
    let task_id = task["task_id"].as_str().unwrap().to_owned();
    let done = app.wait_for_edit(&task_id, WITHIN).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["results_purged"], false);
    let url = done["results"][0]["url"].as_str().unwrap().to_owned();
    let (status, bytes, _) = app.fetch(&url).await;
    assert_eq!(status, 200);
    assert_inverted_photo(&bytes);
    let task_dir = e2e::photo::edit_storage_dir(app.system.photo_db())
        .join("edits")
        .join(&task_id);
    let files = || {
        std::fs::read_dir(&task_dir)
            .map(|dir| dir.count())
            .unwrap_or(0)
    };
    assert_eq!(
        files(),
        1,
        "the result (the input went when the task ended)"
    );

    // Past the retention: the task says its results are gone, and they are.
    let started = std::time::Instant::now();
    let purged = loop {
        let (status, task) = app.edit_task_as(&app.token, &task_id).await;
        assert_eq!(status, 200, "{task}");
        if task["results_purged"] == true {
            break task;
        }
        assert!(started.elapsed() < WITHIN, "results never purged: {task}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(purged["status"], "succeeded");
    assert_eq!(purged["results"], serde_json::json!([]));
    assert_eq!(purged["credits_charged"], 1, "what was paid stays paid");
    assert_eq!(app.fetch(&url).await.0, 404, "a URL handed out earlier");
    assert_eq!(files(), 0);
    assert_eq!(app.credits().await, (9, 0));

    // The same request (same key) now makes a new task rather than showing the emptied one.
    let (status, again) = app
        .submit_edit_with_key(request(), Some("retained-1"))
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["created"], true);
    assert_ne!(again["task_id"], task_id.as_str());
}

#[tokio::test]
async fn a_task_survives_a_restart_of_the_photo_service_and_is_charged_once() {
    let app = bound_app(Options::default(), "o_edit_restart").await;
    // The provider takes long enough for the restart to fall inside the task.
    app.system.sandbox.set_edit_settings(EditSettings {
        pending_ms: 300,
        running_ms: 1500,
        ..EditSettings::default()
    });
    let task_id = app
        .edit(form(
            photo(),
            "stylization_all",
            &[("prompt", "转换成法国绘本风格")],
        ))
        .await;
    // Wait until the provider has the task, then stop the only instance.
    for _ in 0..200 {
        if app.edit_state(&task_id).await == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.edit_state(&task_id).await, "running");
    app.system.stop_photo();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Nobody carried it on while the service was down.
    assert_eq!(app.edit_state(&task_id).await, "running");
    app.system.start_photo_again().await;

    let task = app.wait_for_edit(&task_id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["credits_charged"], 1);
    assert_eq!(app.edit_spending().await, (1, 1));
    assert_eq!(app.credits().await, (9, 0));
    // One provider task: the new instance polled the old one's task, it did not submit again.
    assert_eq!(app.system.sandbox.edit_stats().submits, 1);
    app.system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_retried_request_is_one_task_and_one_charge() {
    let app = bound_app(Options::default(), "o_edit_retry").await;
    let image = photo();
    // Five copies of one request at once (a client retrying on timeouts).
    let submits = (0..5).map(|_| {
        app.submit_edit(form(
            image.clone(),
            "colorization",
            &[("prompt", "蓝色背景，黄色的叶子")],
        ))
    });
    let answers = futures::future::join_all(submits).await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 202, "{body}");
            body["task_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        answers
            .iter()
            .filter(|(_, body)| body["created"] == true)
            .count(),
        1
    );
    ids.dedup();
    assert_eq!(ids.len(), 1, "one task for one request: {ids:?}");
    let task = app.wait_for_edit(&ids[0], WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task}");

    // After the fact, the same request is still the same task, charged once.
    let (status, again) = app
        .submit_edit(form(
            image.clone(),
            "colorization",
            &[("prompt", "蓝色背景，黄色的叶子")],
        ))
        .await;
    assert_eq!(status, 202);
    assert_eq!(again["task_id"], ids[0].as_str());
    assert_eq!(again["status"], "succeeded");
    // An explicit idempotency key: the same key is the same task; another key a new one.
    let keyed = |key: &'static str| {
        app.submit_edit_with_key(
            form(image.clone(), "colorization", &[("seed", "7")]),
            Some(key),
        )
    };
    let (_, first) = keyed("retry-key-1").await;
    let (_, second) = keyed("retry-key-1").await;
    let (_, third) = keyed("retry-key-2").await;
    assert_eq!(first["task_id"], second["task_id"]);
    assert_ne!(first["task_id"], third["task_id"]);
    for id in [&first["task_id"], &third["task_id"]] {
        let task = app.wait_for_edit(id.as_str().unwrap(), WITHIN).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    assert_eq!(app.edit_spending().await, (3, 3));
    assert_eq!(app.credits().await, (7, 0));
    assert_eq!(app.system.sandbox.edit_stats().submits, 3);
}

#[tokio::test]
async fn another_client_cannot_read_a_task() {
    let app = bound_app(Options::default(), "o_edit_owner").await;
    let task_id = app
        .edit(form(
            photo(),
            "super_resolution",
            &[("upscale_factor", "2")],
        ))
        .await;
    let task = app.wait_for_edit(&task_id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    // Another install, even of the same WeChat user, and another user: both 404.
    let same_user = bind(&app.system, "pc-o_edit_owner-2", "o_edit_owner").await;
    let other_user = bind(&app.system, "pc-o_edit_other", "o_edit_other").await;
    for token in [&same_user, &other_user] {
        let (status, body) = app.edit_task_as(token, &task_id).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "edit_not_found");
    }
    let (status, _) = app
        .edit_task_as(&app.token, "0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.edit_task_as("not-a-token", &task_id).await;
    assert_eq!(status, 401);
}
