//! Edit tasks belong to the WeChat user as well as the app client: an app re-bound to another user
//! (a shared PC) shows that user none of the first one's tasks, results or idempotency keys; bound
//! to the first user again, it shows them again.

use std::time::Duration;

use e2e::{Options, System};

use super::support::{bound_app, form, photo};

const WITHIN: Duration = Duration::from_secs(20);

/// Binds the app's client to `openid` with the app's current token (a new QR code, then the
/// user's scan); returns the new token.
async fn rebind(system: &System, client_id: &str, token: &str, openid: &str) -> String {
    let response = system
        .http
        .post(format!("{}/api/v1/auth/wechat/qrcode", system.gateway()))
        .bearer_auth(token)
        .json(&serde_json::json!({ "client_id": client_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let qr: serde_json::Value = response.json().await.unwrap();
    let reply = system
        .sandbox
        .scan(&system.push_url(), qr["ticket"].as_str().unwrap(), openid)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    qr["client_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_client_bound_to_another_user_does_not_see_the_first_users_tasks() {
    let app = bound_app(Options::default(), "o_edit_first").await;
    let client_id = "pc-o_edit_first";
    let request = || form(photo(), "super_resolution", &[("upscale_factor", "2")]);
    let (status, accepted) = app.submit_edit_with_key(request(), Some("album-7")).await;
    assert_eq!(status, 202, "{accepted}");
    let task_id = accepted["task_id"].as_str().unwrap().to_owned();
    let task = app.wait_for_edit(&task_id, WITHIN).await;
    assert_eq!(task["status"], "succeeded", "{task}");
    let url = task["results"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(app.fetch(&url).await.0, 200);

    // Another WeChat user signs in on the same app.
    let second = rebind(&app.system, client_id, &app.token, "o_edit_second").await;
    let (status, body) = app.edit_task_as(&second, &task_id).await;
    assert_eq!(
        status, 404,
        "the second user sees the first one's task: {body}"
    );
    assert_eq!(body["error"]["code"], "edit_not_found");
    let (status, _, _) = app.fetch(&url).await;
    assert_eq!(status, 404, "the first user's result URL still works");
    // The same idempotency key is the second user's own request: a new task, held on their
    // credits, not the first user's answer.
    let (status, theirs) = app
        .submit_edit_as(&second, request(), Some("album-7"))
        .await;
    assert_eq!(status, 202, "{theirs}");
    assert_eq!(theirs["created"], true, "{theirs}");
    assert_ne!(theirs["task_id"], task_id.as_str());
    let their_id = theirs["task_id"].as_str().unwrap().to_owned();

    // The first user again on this app: their task, with working results, is theirs again; the
    // second user's is not.
    let back = rebind(&app.system, client_id, &second, "o_edit_first").await;
    let (status, mine) = app.edit_task_as(&back, &task_id).await;
    assert_eq!(status, 200, "{mine}");
    let fresh = mine["results"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(app.fetch(&fresh).await.0, 200);
    let (status, _) = app.edit_task_as(&back, &their_id).await;
    assert_eq!(status, 404);

    // Signed out, nobody's results are served through this app's URLs.
    let signed_out = app
        .system
        .http
        .post(format!(
            "{}/api/v1/auth/wechat/unbind",
            app.system.gateway()
        ))
        .bearer_auth(&back)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 200);
    assert_eq!(app.fetch(&fresh).await.0, 404);
}
