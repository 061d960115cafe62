//! Edits that fail are never charged: a failed provider task, a deadline passed, moderation at
//! submit and in the task. A partly successful task is charged only for the images it made, and
//! a busy provider (429) delays a task without failing it.

use std::time::Duration;

use e2e::Options;
use sandbox::{EditFaults, EditSettings};

use super::support::{App, bound_app, form, photo};

const WITHIN: Duration = Duration::from_secs(20);

/// Submits one described edit and waits for its end.
async fn edit_once(app: &App, outputs: &str) -> serde_json::Value {
    let task_id = app
        .edit(form(
            photo(),
            "description_edit",
            &[("prompt", "给小猫添加一副墨镜"), ("outputs", outputs)],
        ))
        .await;
    app.wait_for_edit(&task_id, WITHIN).await
}

async fn assert_nothing_charged(app: &App, task: &serde_json::Value, code: &str) {
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["code"], code, "{task}");
    assert_eq!(task["credits_charged"], 0);
    assert!(task["results"].as_array().unwrap().is_empty());
    assert_eq!(
        app.credits().await,
        (10, 0),
        "balance and holds back as they were"
    );
    assert_eq!(app.edit_spending().await, (0, 0));
    let task_id = task["task_id"].as_str().unwrap();
    assert_eq!(app.hold_status(task_id).await.as_deref(), Some("released"));
    app.system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_failed_provider_task_releases_the_credits() {
    let app = bound_app(Options::default(), "o_edit_failed").await;
    app.system.sandbox.set_edit_faults(EditFaults {
        fail_tasks: 1,
        ..EditFaults::default()
    });
    let task = edit_once(&app, "2").await;
    assert_nothing_charged(&app, &task, "provider_failed").await;
}

#[tokio::test]
async fn moderation_at_submit_and_in_the_task_releases_the_credits() {
    let app = bound_app(Options::default(), "o_edit_moderated").await;
    app.system.sandbox.set_edit_faults(EditFaults {
        submit_moderation: 1,
        ..EditFaults::default()
    });
    let task = edit_once(&app, "1").await;
    assert_nothing_charged(&app, &task, "moderation_rejected").await;
    app.system.sandbox.set_edit_faults(EditFaults {
        moderate_tasks: 1,
        ..EditFaults::default()
    });
    let task = edit_once(&app, "3").await;
    assert_nothing_charged(&app, &task, "moderation_rejected").await;
    app.system.sandbox.set_edit_faults(EditFaults {
        sync_moderation: 1,
        ..EditFaults::default()
    });
    let task_id = app
        .edit(form(photo(), "free_text", &[("prompt", "换成泳装")]))
        .await;
    let task = app.wait_for_edit(&task_id, WITHIN).await;
    assert_nothing_charged(&app, &task, "moderation_rejected").await;
}

#[tokio::test]
async fn a_task_past_its_deadline_fails_and_releases_the_credits() {
    let mut options = Options::default();
    options.photo.edit_deadline_secs = 10;
    let app = bound_app(options, "o_edit_timeout").await;
    app.system.sandbox.set_edit_faults(EditFaults {
        stuck_tasks: 1,
        ..EditFaults::default()
    });
    let started = std::time::Instant::now();
    let task = edit_once(&app, "1").await;
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "failed before its deadline"
    );
    assert_nothing_charged(&app, &task, "timeout").await;
}

#[tokio::test]
async fn a_partly_successful_task_is_charged_for_the_images_made() {
    let app = bound_app(Options::default(), "o_edit_partial").await;
    app.system.sandbox.set_edit_faults(EditFaults {
        partial_tasks: 1,
        ..EditFaults::default()
    });
    let task = edit_once(&app, "3").await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["results"].as_array().unwrap().len(), 2);
    assert_eq!(task["credits_reserved"], 3);
    assert_eq!(task["credits_charged"], 2);
    assert_eq!(app.credits().await, (8, 0));
    assert_eq!(app.edit_spending().await, (1, 2));
    app.system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn a_busy_provider_delays_a_task_without_failing_it() {
    let app = bound_app(Options::default(), "o_edit_busy").await;
    app.system.sandbox.set_edit_faults(EditFaults {
        submit_rate_limited: 3,
        sync_rate_limited: 2,
        sync_server_errors: 1,
        ..EditFaults::default()
    });
    let task = edit_once(&app, "1").await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let free = app
        .edit(form(photo(), "free_text", &[("prompt", "去掉路人")]))
        .await;
    let free = app.wait_for_edit(&free, WITHIN).await;
    assert_eq!(free["status"], "succeeded", "{free}");
    let stats = app.system.sandbox.edit_stats();
    assert!(stats.throttled >= 3, "{stats:?}");
    assert_eq!(stats.submits, 1, "{stats:?}");
    assert_eq!(app.credits().await, (8, 0));
}

#[tokio::test]
async fn a_slow_provider_is_polled_until_it_finishes() {
    let app = bound_app(Options::default(), "o_edit_slow").await;
    app.system.sandbox.set_edit_settings(EditSettings {
        pending_ms: 400,
        running_ms: 800,
        ..EditSettings::default()
    });
    let task = edit_once(&app, "1").await;
    assert_eq!(task["status"], "succeeded", "{task}");
    assert!(
        app.system.sandbox.edit_stats().polls >= 5,
        "polled as it ran"
    );
}
