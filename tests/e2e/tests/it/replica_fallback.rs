//! Graceful operation: with their replica unreachable, membership and photo answer reads from
//! the primary instead of failing (stats: its own service-level test).

use e2e::{Options, System};
use platform::testing::Replica;

/// Membership and photo with their replica down from the start: an app binds and classifies
/// (its token and the classification cache are replica reads), a member signs in, orders, pays
/// and reads the order, and the admin site's overview and lists answer, all from the primary.
#[tokio::test]
async fn user_and_admin_reads_fall_back_to_the_primary_when_the_replica_is_unreachable() {
    let system = System::start(Options {
        replica: Replica::Unreachable,
        ..Options::default()
    })
    .await;
    let token = system
        .bind_client("pc-replica-down", "o_replica_down")
        .await;
    let photo = crate::classify::support::photo("coffee.png");
    // Twice: the second answer comes from the classification cache.
    for _ in 0..2 {
        let response = system
            .http
            .post(format!("{}/api/v1/photos/classify", system.gateway()))
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part(
                "image",
                reqwest::multipart::Part::bytes(photo.clone()).file_name("photo"),
            ))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "classify with the replica down: {body}");
    }
    let response = system
        .http
        .get(format!("{}/api/v1/auth/wechat/binding", system.gateway()))
        .query(&[("client_id", "pc-replica-down")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "binding status");

    let member = system.sign_in("o_replica_down").await;
    let before = member.profile().await.remaining_credits;
    let created = member.create_order(e2e::api::credits_order(5)).await;
    let order_no = created.order.order_no.as_str();
    system.sandbox.pay(order_no).await.unwrap();
    member.wait_for_order(order_no, "paid").await;
    let after = member.profile().await.remaining_credits;
    assert_eq!(after, before + 5);

    let admin = system.admin_sign_in().await;
    for path in [
        "/api/v1/admin/overview",
        "/api/v1/admin/users",
        "/api/v1/admin/orders?status=paid",
        "/api/v1/admin/bindings",
    ] {
        let (status, body) = admin.get(path).await;
        assert_eq!(status, 200, "{path} with the replica down: {body}");
    }
    let orders = e2e::api::answer(admin.api().admin_orders().status("paid").send()).await;
    assert_eq!(orders.expect("the paid orders").total, 1);
}
