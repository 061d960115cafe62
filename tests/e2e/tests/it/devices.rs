//! The member page's devices: a WeChat user sees the apps bound to them and signs one out
//! without that app's token; nobody else's apps are listed or reachable.

use e2e::{Options, System};

fn client_ids(list: &serde_json::Value) -> Vec<&str> {
    list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["client_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_member_lists_their_apps_and_signs_one_out() {
    let system = System::start(Options::membership_flows()).await;
    let laptop = system.bind_client("devices-laptop", "o_devices").await;
    let phone = system.bind_client("devices-phone", "o_devices").await;
    let stranger = system
        .bind_client("devices-stranger", "o_devices_other")
        .await;
    let browser = system.sign_in("o_devices").await;

    let (status, list) = browser.get("/api/v1/member/devices").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(client_ids(&list), ["devices-phone", "devices-laptop"]);
    let bound_at = list["devices"][0]["bound_at"].as_str().unwrap();
    let bound_at = chrono::DateTime::parse_from_rfc3339(bound_at).unwrap();
    assert!((chrono::Utc::now() - bound_at.to_utc()).num_seconds().abs() < 60);

    // Another user's app is not this user's to sign out: nothing changes.
    let (status, body) = browser
        .post(
            "/api/v1/member/devices/devices-stranger/sign-out",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    system
        .account(&stranger)
        .await
        .expect("its token still works");

    let (status, body) = browser
        .post(
            "/api/v1/member/devices/devices-laptop/sign-out",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], "devices-laptop");
    assert_eq!(body["status"], "signed_out");
    system.wait_until_token_refused(&laptop).await;
    system.account(&phone).await.expect("its token still works");
    let (_, list) = browser.get("/api/v1/member/devices").await;
    assert_eq!(client_ids(&list), ["devices-phone"]);

    // Signed out once; again finds nothing to sign out.
    let (status, _) = browser
        .post(
            "/api/v1/member/devices/devices-laptop/sign-out",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 404);
    // The laptop is no longer bound: its next QR code needs no token, and a scan binds it again.
    let again = system.bind_client("devices-laptop", "o_devices").await;
    system.account(&again).await.expect("its token still works");
    let (_, list) = browser.get("/api/v1/member/devices").await;
    assert_eq!(client_ids(&list), ["devices-laptop", "devices-phone"]);
}

#[tokio::test]
async fn devices_need_a_member_session_and_a_valid_client_id() {
    let system = System::start(Options::membership_flows()).await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/member/devices"),
        (
            reqwest::Method::POST,
            "/api/v1/member/devices/any-pc/sign-out",
        ),
    ] {
        let response = system
            .http
            .request(method, format!("{}{path}", system.gateway()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let browser = system.sign_in("o_devices_none").await;
    let (status, list) = browser.get("/api/v1/member/devices").await;
    assert_eq!((status, client_ids(&list).len()), (200, 0));
    let (status, body) = browser
        .post(
            "/api/v1/member/devices/not%20a%20client/sign-out",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_argument"))
    );
}
