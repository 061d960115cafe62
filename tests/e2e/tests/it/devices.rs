//! The member page's devices: a WeChat user sees the apps bound to them and signs one out
//! without that app's token; nobody else's apps are listed or reachable.

use e2e::api::{Answer, answer, refusal, types};
use e2e::{MemberBrowser, Options, System};

fn client_ids(list: &types::DevicesOut) -> Vec<&str> {
    list.devices
        .iter()
        .map(|device| device.client_id.as_str())
        .collect()
}

async fn devices(browser: &MemberBrowser) -> types::DevicesOut {
    answer(browser.api().list_devices().send())
        .await
        .expect("the member's devices")
}

async fn sign_out(browser: &MemberBrowser, client_id: &str) -> Answer<types::DeviceSignedOutOut> {
    answer(browser.api().sign_out_device().client_id(client_id).send()).await
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

    let list = devices(&browser).await;
    assert_eq!(client_ids(&list), ["devices-phone", "devices-laptop"]);
    let bound_at = chrono::DateTime::parse_from_rfc3339(&list.devices[0].bound_at).unwrap();
    assert!((chrono::Utc::now() - bound_at.to_utc()).num_seconds().abs() < 60);

    // Another user's app is not this user's to sign out: nothing changes.
    assert_eq!(
        refusal(sign_out(&browser, "devices-stranger").await).status_and_code(),
        (404, "not_found")
    );
    system
        .account(&stranger)
        .await
        .expect("its token still works");

    let signed_out = sign_out(&browser, "devices-laptop")
        .await
        .expect("signed out");
    assert_eq!(signed_out.client_id, "devices-laptop");
    assert_eq!(signed_out.status, "signed_out");
    system.wait_until_token_refused(&laptop).await;
    system.account(&phone).await.expect("its token still works");
    assert_eq!(client_ids(&devices(&browser).await), ["devices-phone"]);

    // Signed out once; again finds nothing to sign out.
    assert_eq!(
        refusal(sign_out(&browser, "devices-laptop").await).status,
        404
    );
    // The laptop is no longer bound: its next QR code needs no token, and a scan binds it again.
    let again = system.bind_client("devices-laptop", "o_devices").await;
    system.account(&again).await.expect("its token still works");
    assert_eq!(
        client_ids(&devices(&browser).await),
        ["devices-laptop", "devices-phone"]
    );
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
    assert!(devices(&browser).await.devices.is_empty());
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
