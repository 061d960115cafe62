//! A balanced channel that tells discovery at once when a call fails in transport (a refused or
//! reset connection, a deadline): the instance behind it may have died. Between discovery's
//! rounds, tonic keeps a dead instance in the balancer, and its reconnecting endpoint answers
//! the next calls with the connection error at once, so the balancer, which prefers the least
//! busy instance, keeps sending calls to it; an early round takes it out within milliseconds
//! instead of up to a whole refresh period.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Notify;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::Service;

type Inner = Channel;
type ChannelResponse = <Inner as Service<http::Request<Body>>>::Response;
type ChannelError = <Inner as Service<http::Request<Body>>>::Error;

/// [`Channel`] plus the signal its discovery waits on (none for a channel without discovery).
#[derive(Clone, Debug)]
pub struct WatchedChannel {
    inner: Channel,
    call_failed: Arc<Notify>,
}

impl WatchedChannel {
    pub(super) fn new(inner: Channel, call_failed: Arc<Notify>) -> Self {
        Self { inner, call_failed }
    }
}

impl From<Channel> for WatchedChannel {
    fn from(inner: Channel) -> Self {
        Self::new(inner, Arc::new(Notify::new()))
    }
}

impl Service<http::Request<Body>> for WatchedChannel {
    type Response = ChannelResponse;
    type Error = ChannelError;
    type Future = Pin<Box<dyn Future<Output = Result<ChannelResponse, ChannelError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let answer = self.inner.call(request);
        let call_failed = self.call_failed.clone();
        Box::pin(async move {
            let answer = answer.await;
            if answer.is_err() {
                call_failed.notify_one();
            }
            answer
        })
    }
}
