//! The provider takes 2 submissions a second and 2 tasks in flight for the whole account: a
//! burst of 20 edits from two gateways and two photo instances waits in our queue, never
//! overruns the provider, and every edit finishes and is charged once.

use std::time::Duration;

use e2e::Options;
use sandbox::EditSettings;

use e2e::photo::PhotoOptions;

use super::support::{App, bound_app, form, photo};

#[tokio::test]
async fn a_burst_of_twenty_edits_all_finish_within_the_providers_limits() {
    // A submission answered past its timeout, or a step that outlasts its lease, is taken as
    // not made and sent again (the tests below): on a machine loaded by other work the
    // harness's short defaults would let that happen here, and this test counts submissions.
    let app = bound_app(
        Options {
            photos: 2,
            photo: PhotoOptions {
                edit_lease_secs: 30,
                edit_call_timeout_ms: 30_000,
                ..PhotoOptions::default()
            },
            ..Options::default()
        },
        "o_edit_burst",
    )
    .await;
    app.grant(10).await;
    app.system.sandbox.set_edit_settings(EditSettings {
        pending_ms: 100,
        running_ms: 300,
        submits_per_second: 2,
        max_in_flight: 2,
        ..EditSettings::default()
    });
    // Each request differs (its seed), so each is its own task.
    let submits = (0..20).map(|seed| {
        let seed = seed.to_string();
        let app = &app;
        async move {
            app.edit(form(
                photo(),
                "stylization_all",
                &[("prompt", "金箔艺术风格"), ("seed", &seed)],
            ))
            .await
        }
    });
    let ids = futures::future::join_all(submits).await;
    for id in &ids {
        let task = app.wait_for_edit(id, Duration::from_secs(60)).await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    let stats = app.system.sandbox.edit_stats();
    assert_eq!(stats.submits, 20, "{stats:?}");
    assert!(stats.max_in_flight <= 2, "{stats:?}");
    assert_eq!(
        stats.throttled, 0,
        "our queue kept within the limits: {stats:?}"
    );
    assert_eq!(app.edit_spending().await, (20, 20));
    assert_eq!(app.credits().await, (0, 0));
    app.system.assert_ledger_invariant().await;
}

/// A bound app with one credit whose provider holds each submission for `hold_ms`, and the
/// id of the wanx edit it submitted.
async fn slow_submission(options: Options, openid: &str, hold_ms: u64) -> (App, String) {
    let app = bound_app(options, openid).await;
    app.grant(1).await;
    app.system.sandbox.set_edit_settings(EditSettings {
        submit_delay_ms: hold_ms,
        ..EditSettings::default()
    });
    let id = app
        .edit(form(
            photo(),
            "stylization_all",
            &[("prompt", "金箔艺术风格")],
        ))
        .await;
    (app, id)
}

/// The edit succeeded, the provider was sent it once, and it was charged once.
async fn assert_sent_and_charged_once(app: &App, id: &str, within: Duration) {
    let task = app.wait_for_edit(id, within).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let stats = app.system.sandbox.edit_stats();
    assert_eq!(stats.submits, 1, "{stats:?}");
    assert_eq!(app.edit_spending().await, (1, 1));
    app.system.assert_ledger_invariant().await;
}

/// A submission the provider takes but answers slowly, past the step's lease: while the call is
/// within its timeout the task is still ours, so it is not taken as lost and sent again (the
/// provider would run, and bill, it twice).
#[tokio::test]
async fn a_submission_answered_after_the_lease_is_sent_once() {
    let options = Options {
        photo: PhotoOptions {
            edit_lease_secs: 1,
            ..PhotoOptions::default()
        },
        ..Options::default()
    };
    // Within the call's timeout (3 s in tests), well past the lease.
    let (app, id) = slow_submission(options, "o_edit_slow_submit", 2000).await;
    assert_sent_and_charged_once(&app, &id, Duration::from_secs(30)).await;
}

/// The primary cut while the provider takes a submission: the worker records the provider's
/// task once the primary answers again, rather than leaving the task to its lease, after which
/// it would be taken as lost and sent (and billed) a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_recorded_across_a_primary_outage_is_sent_once() {
    let options = Options {
        cuttable_primary: true,
        photo_through_cuttable_primary: true,
        photo: PhotoOptions {
            edit_lease_secs: 10,
            ..PhotoOptions::default()
        },
        ..Options::default()
    };
    let (app, id) = slow_submission(options, "o_edit_cut_submit", 1500).await;
    let primary = app.system.primary_proxy.as_ref().unwrap();
    // The worker takes the task within a tick (50 ms) and the provider holds the submission
    // for 1.5 s: the primary is cut while it does and stays cut well past the answer, so the
    // update after it fails, then comes back well within the submission's lease (13 s: the
    // lease and the call's timeout).
    tokio::time::sleep(Duration::from_millis(500)).await;
    primary.cut();
    tokio::time::sleep(Duration::from_millis(6000)).await;
    primary.restore();
    assert_sent_and_charged_once(&app, &id, Duration::from_secs(40)).await;
}

/// The primary cut once membership has answered photo's hold of the credits and before photo
/// has queued the task (the answer is held a second on its way back): the submission waits for
/// the primary and is accepted, rather than answering 503 and leaving the task and its hold to
/// the abandoned-request sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_queues_its_task_across_a_short_primary_outage() {
    let options = Options {
        cuttable_primary: true,
        photo_through_cuttable_primary: true,
        photo: PhotoOptions {
            membership_answer_delay_ms: Some(1000),
            ..PhotoOptions::default()
        },
        ..Options::default()
    };
    let app = bound_app(options, "o_edit_cut_queue").await;
    app.grant(1).await;
    let primary = app.system.primary_proxy.as_ref().unwrap();
    let submitting = app.submit_edit(form(
        photo(),
        "stylization_all",
        &[("prompt", "金箔艺术风格")],
    ));
    let cutting = async {
        let started = std::time::Instant::now();
        while !app.system.photo_to_membership[0].answered("Reserve") {
            assert!(started.elapsed() < Duration::from_secs(30), "no hold");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        primary.cut();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        primary.restore();
    };
    let ((status, body), ()) = tokio::join!(submitting, cutting);
    assert_eq!(status, 202, "{body}");
    let id = body["task_id"].as_str().unwrap();
    assert_sent_and_charged_once(&app, id, Duration::from_secs(40)).await;
}
