//! Scaling: the gateway spreads gRPC calls over every instance of a service and routes around one
//! that stops, without a restart.

use std::time::{Duration, Instant};

use e2e::{Options, System};

/// One location lookup through the gateway (served by whichever photo instance it picks).
async fn locate(system: &System, token: &str) -> reqwest::Result<u16> {
    let response = system
        .http
        .get(format!("{}/api/v1/location", system.gateway()))
        .query(&[("lat", "39.9087"), ("lng", "116.3975")])
        .bearer_auth(token)
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn calls_spread_over_every_photo_instance_and_avoid_a_stopped_one() {
    let system = System::start(Options {
        photos: 3,
        ..Options::default()
    })
    .await;
    let token = system.bind_client("scaling-client", "o_scaling_user").await;
    let instances = &system.photo_instances;
    assert_eq!(instances.len(), 3);

    // Every instance gets calls. p2c picks two at random per call, so 60 calls miss one of three
    // instances with negligible probability; a pinned connection would send all to one.
    for _ in 0..60 {
        assert_eq!(locate(&system, &token).await.unwrap(), 200);
    }
    let counts: Vec<u64> = instances.iter().map(|i| i.calls()).collect();
    assert!(
        counts.iter().all(|&c| c > 0),
        "calls per instance: {counts:?}"
    );
    assert_eq!(
        counts.iter().sum::<u64>(),
        60,
        "calls per instance: {counts:?}"
    );

    // Stop one instance. Calls in flight to it may fail until discovery notices (one refresh);
    // after that every call succeeds and reaches the other two.
    instances[1].stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut consecutive = 0;
    while consecutive < 30 {
        assert!(
            Instant::now() < deadline,
            "calls kept failing after an instance stopped"
        );
        match locate(&system, &token).await {
            Ok(200) => consecutive += 1,
            _ => {
                consecutive = 0;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let before: Vec<u64> = instances.iter().map(|i| i.calls()).collect();
    for _ in 0..40 {
        assert_eq!(locate(&system, &token).await.unwrap(), 200);
    }
    let after: Vec<u64> = instances.iter().map(|i| i.calls()).collect();
    assert_eq!(after[1], before[1], "the stopped instance still got calls");
    assert!(
        after[0] > before[0] && after[2] > before[2],
        "both live instances share the calls: {before:?} -> {after:?}"
    );
}
