//! Only our own processes may call the services: every internal gRPC call carries the shared
//! `SERVICE_TOKEN`, and a call without it, or with another one, is refused as Unauthenticated.
//! (The harness gives every process of a system one random token; the other e2e tests show the
//! services' own calls carry it.)

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use e2e::{Options, System};
use gateway::config::GatewayConfig;
use platform::grpc::ServiceToken;
use proto::membership::v1::SummaryRequest;
use proto::membership::v1::admin_service_client::AdminServiceClient;
use proto::photo::v1::LocateRequest;
use proto::photo::v1::location_service_client::LocationServiceClient;
use proto::stats::v1::stats_service_client::StatsServiceClient;
use proto::stats::v1::{OverviewRequest, TimeRange};

/// `message` as a call, with `Authorization: Bearer <token>` when a token is given.
fn call<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = MetadataValue::try_from(format!("Bearer {token}")).unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn plain(url: &str) -> Channel {
    Channel::from_shared(url.to_owned()).unwrap().connect_lazy()
}

/// One cheap read of each service (membership's admin summary, photo's location, stats'
/// overview) over plain channels, with `token` as the bearer token if any.
async fn read_each(
    system: &System,
    token: Option<&str>,
) -> Vec<(&'static str, Result<(), Status>)> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut membership = AdminServiceClient::new(plain(&system.membership_urls[0]));
    let summary = SummaryRequest {
        from_unix_ms: now - 3_600_000,
        to_unix_ms: now,
    };
    let mut photo = LocationServiceClient::new(plain(system.photo_url()));
    let point = LocateRequest {
        lat: 39.9042,
        lng: 116.4074,
    };
    let mut stats = StatsServiceClient::new(plain(&system.stats.url()));
    let overview = OverviewRequest {
        range: Some(TimeRange {
            from_unix_ms: now - 3_600_000,
            to_unix_ms: now,
        }),
    };
    vec![
        (
            "membership",
            membership.summary(call(summary, token)).await.map(drop),
        ),
        ("photo", photo.locate(call(point, token)).await.map(drop)),
        (
            "stats",
            stats.overview(call(overview, token)).await.map(drop),
        ),
    ]
}

#[tokio::test]
async fn calls_without_the_service_token_or_with_another_are_refused() {
    let system = System::start(Options::default()).await;
    for token in [None, Some("not-our-service-token-0123456789abcdef")] {
        for (service, answer) in read_each(&system, token).await {
            let status = answer.expect_err(&format!("{service} answered a call with {token:?}"));
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{service}: {status:?}"
            );
        }
    }
    let token = system.service_token.configured().next().unwrap().to_owned();
    for (service, answer) in read_each(&system, Some(&token)).await {
        answer.unwrap_or_else(|status| panic!("{service} refused the system's token: {status:?}"));
    }
}

/// A gateway configured with another token than the services': the services refuse it, so it
/// reports itself not ready (its readiness check carries its token) and its callers get an
/// internal error, not a 401 that would blame their own credentials.
#[tokio::test]
async fn a_gateway_with_another_token_is_not_ready_and_fails_as_internal() {
    let system = System::start(Options::default()).await;
    let mut cfg = GatewayConfig::defaults().unwrap();
    cfg.service.service_token =
        ServiceToken::parse("not-this-systems-service-token-0123456789").unwrap();
    cfg.membership_grpc_url = system.membership_urls[0].clone();
    cfg.photo_grpc_url = system.photo_url().to_owned();
    cfg.stats_grpc_url = system.stats.url();
    cfg.redis.redis_url = platform::testing::redis_url();
    cfg.redis.redis_key_prefix = platform::testing::redis_prefix();
    let state = gateway::AppState::new(cfg).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    tokio::spawn(gateway::run(state, listener, stop));

    let ready = system
        .http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["membership"], false, "{body}");
    assert_eq!(body["photo"], false, "{body}");

    let answer = system
        .http
        .post(format!("{url}/api/v1/auth/wechat/qrcode"))
        .json(&serde_json::json!({ "client_id": "wrong-token-gateway" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal", "{body}");
    // The system's own gateway, with the right token, is ready.
    let ready = system
        .http
        .get(format!("{}/readyz", system.gateway()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
