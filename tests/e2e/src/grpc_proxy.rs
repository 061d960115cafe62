//! A counting gRPC (h2c) proxy in front of one service instance: the gateway sees the proxy as the
//! instance, and the test reads how many calls reached it. Stopping the proxy closes its listener
//! and connections, so to the gateway the instance is gone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tower::{Service, ServiceExt};

/// One proxied instance.
pub struct CountingProxy {
    /// What clients dial instead of the instance.
    pub url: String,
    calls: Arc<AtomicU64>,
    /// The paths of the calls the instance has answered (the answer maybe still held).
    answered: Arc<Mutex<HashSet<String>>>,
    stop: CancellationToken,
}

impl CountingProxy {
    /// Proxies to `target` (an `http://` gRPC URL) until `stop` is cancelled or [`Self::stop`].
    pub async fn start(target: &str, stop: CancellationToken) -> Self {
        Self::delaying(target, stop, Duration::ZERO).await
    }

    /// The same, holding each answer for `answer_delay` once the instance has given it: what
    /// the instance did is done, and its caller does not know yet.
    pub async fn delaying(target: &str, stop: CancellationToken, answer_delay: Duration) -> Self {
        let channel = Endpoint::from_shared(target.to_owned())
            .expect("proxy target")
            .connect_lazy();
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let answered = Arc::new(Mutex::new(HashSet::new()));
        let answers = answered.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let mut channel = channel.clone();
            let counter = counter.clone();
            let answers = answers.clone();
            async move {
                let path = request.uri().path().to_owned();
                // Health checks are not the calls under test.
                if !path.starts_with("/grpc.health") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let (parts, body) = request.into_parts();
                let request = http::Request::from_parts(parts, tonic::body::Body::new(body));
                let ready = match channel.ready().await {
                    Ok(ready) => ready,
                    Err(_) => return http::StatusCode::BAD_GATEWAY.into_response(),
                };
                match ready.call(request).await {
                    Ok(response) => {
                        answers.lock().expect("answers").insert(path);
                        if !answer_delay.is_zero() {
                            tokio::time::sleep(answer_delay).await;
                        }
                        response.map(axum::body::Body::new)
                    }
                    Err(_) => http::StatusCode::BAD_GATEWAY.into_response(),
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
        });
        Self {
            url,
            calls,
            answered,
            stop,
        }
    }

    /// Whether the instance has answered a call of `method` (`Reserve`), held or not.
    pub fn answered(&self, method: &str) -> bool {
        let suffix = format!("/{method}");
        self.answered
            .lock()
            .expect("answers")
            .iter()
            .any(|path| path.ends_with(&suffix))
    }

    /// Calls that reached this instance so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Stops the proxy (and whatever else `stop` ends, such as the instance behind it).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}
