//! Steady user traffic while instances are killed: every worker repeats an app's location lookup
//! and binding poll through nginx and a member's profile through lighttpd, one request at a time,
//! so at most `workers` requests are in flight when an instance dies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use e2e::MemberBrowser;
use tokio::sync::Mutex;

use e2e::compose::edge::{App, Edge};

/// A request that did not succeed: when it was sent and when it failed, from the start of the
/// load.
#[derive(Debug)]
pub struct Failure {
    pub sent: Duration,
    pub at: Duration,
    pub what: String,
    /// The HTTP status, where an answer came.
    pub status: Option<u16>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub failures: Vec<Failure>,
}

async fn profile(member: &MemberBrowser) -> anyhow::Result<u16> {
    let url = format!("{}/api/v1/member/profile", member.gateway);
    Ok(member.http.get(url).send().await?.status().as_u16())
}

/// Runs `workers` loops from `started` until `stop` is cancelled; returns what they saw.
pub async fn run(
    edge: Arc<Edge>,
    app: Arc<App>,
    member: Arc<MemberBrowser>,
    workers: usize,
    started: Instant,
    stop: CancellationToken,
) -> Outcome {
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (edge, app, member, outcome, stop) = (
            edge.clone(),
            app.clone(),
            member.clone(),
            outcome.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut turn = worker;
            while !stop.is_cancelled() {
                let sent = started.elapsed();
                let (what, result) = match turn % 3 {
                    0 => ("location", edge.locate(&app).await.map(|(s, _)| s)),
                    1 => ("binding", edge.binding(&app).await.map(|(s, _)| s)),
                    _ => ("profile", profile(&member).await),
                };
                turn += 1;
                let mut outcome = outcome.lock().await;
                outcome.requests += 1;
                match result {
                    Ok(200) => {}
                    Ok(status) => outcome.failures.push(Failure {
                        sent,
                        at: started.elapsed(),
                        what: format!("{what}: {status}"),
                        status: Some(status),
                    }),
                    Err(err) => outcome.failures.push(Failure {
                        sent,
                        at: started.elapsed(),
                        what: format!("{what}: {err:#}"),
                        status: None,
                    }),
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut outcome = outcome.lock().await;
    std::mem::take(&mut *outcome)
}
