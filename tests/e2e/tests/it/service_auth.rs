//! Only our own processes may call the services: every internal gRPC call carries the shared
//! `SERVICE_TOKEN`, and a call without it, or with another one, is refused as Unauthenticated.

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use e2e::{Options, System};
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
async fn read_each(system: &System, token: Option<&str>) -> Vec<(&'static str, Result<(), Status>)> {
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
        ("membership", membership.summary(call(summary, token)).await.map(drop)),
        ("photo", photo.locate(call(point, token)).await.map(drop)),
        ("stats", stats.overview(call(overview, token)).await.map(drop)),
    ]
}

#[tokio::test]
async fn calls_without_the_service_token_or_with_another_are_refused() {
    let system = System::start(Options::default()).await;
    for token in [None, Some("not-our-service-token-0123456789abcdef")] {
        for (service, answer) in read_each(&system, token).await {
            let status = answer.expect_err(&format!("{service} answered a call with {token:?}"));
            assert_eq!(status.code(), Code::Unauthenticated, "{service}: {status:?}");
        }
    }
}
