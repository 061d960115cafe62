//! Every provider call of an edit is recorded to the stats service under the gateway request that
//! submitted it: a wanx task when it ends at the provider, a synchronous edit when it answers, and
//! a refusal with its status and code.

use std::time::Duration;

use e2e::Options;
use sandbox::EditFaults;

use super::support::{App, bound_app, form, photo};

/// (endpoint, method, status, source, error code, client, openid) of the rows of a request.
type Row = (String, String, u16, String, String, String, String);

async fn rows_of(app: &App, request_id: &str, expected: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for _ in 0..400 {
        let pool = app.system.stats.db.primary().await;
        rows = sqlx::query_as(
            "SELECT endpoint, method, status, source, error_code, client_id, openid \
             FROM request_logs WHERE request_id = ? ORDER BY endpoint LIKE 'model:%', id",
        )
        .bind(request_id)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        if rows.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), expected, "{rows:#?}");
    rows
}

#[tokio::test]
async fn an_edits_provider_calls_are_recorded_under_its_request() {
    let app = bound_app(Options::default(), "o_edit_recorded").await;
    let client = "pc-o_edit_recorded";
    let (done, request_id) = app
        .edit_to_end(
            form(photo(), "expand", &[("top_scale", "1.5")]),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(done["status"], "succeeded");
    let rows = rows_of(&app, &request_id, 2).await;
    assert_eq!(rows[0].0, "/api/v1/photos/edit");
    assert_eq!(rows[0].2, 202);
    let model = &rows[1];
    assert_eq!(
        (model.0.as_str(), model.1.as_str(), model.2),
        ("model:wanx2.1-imageedit", "MODEL", 200)
    );
    assert_eq!(
        (model.3.as_str(), model.5.as_str(), model.6.as_str()),
        ("model", client, "o_edit_recorded")
    );

    // A refused synchronous edit: one model row with the provider's verdict.
    app.system.sandbox.set_edit_faults(EditFaults {
        sync_moderation: 1,
        ..EditFaults::default()
    });
    let (done, request_id) = app
        .edit_to_end(
            form(photo(), "free_text", &[("prompt", "换个发型")]),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(done["status"], "failed");
    let rows = rows_of(&app, &request_id, 2).await;
    let model = &rows[1];
    assert_eq!(
        (model.0.as_str(), model.2, model.4.as_str()),
        ("model:qwen-image-edit", 400, "moderation_rejected")
    );
}
