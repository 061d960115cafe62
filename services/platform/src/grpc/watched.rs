//! A balanced channel that routes around an instance that has just died.
//!
//! Between discovery's rounds, tonic keeps a dead instance in the balancer, and its reconnecting
//! endpoint answers the next call with the connection error at once; being idle, it is the
//! balancer's favourite. Two things follow a call that fails in transport:
//! - discovery is told at once, and an early round takes the instance out within milliseconds
//!   instead of up to a whole refresh period;
//! - if not a byte of the request's body was handed to the connection (refused, or cancelled
//!   before it was sent), no instance can have acted on it, so it is sent again, whatever the
//!   method, after a pause that lets that early round finish. A call that failed once its body
//!   was on its way is not repeated: the instance may have carried it out.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::transport::Channel;
use tower::{Service, ServiceExt};

type Inner = Channel;
type ChannelResponse = <Inner as Service<http::Request<Body>>>::Response;
type ChannelError = <Inner as Service<http::Request<Body>>>::Error;

/// The pauses before each new try of a call no instance received: the first lets another
/// instance take it, the later ones outlast discovery's early round (at most 200 ms apart, plus
/// a connect probe), after which the dead instance is no longer offered.
const RESEND_PAUSES: [Duration; 3] = [
    Duration::from_millis(0),
    Duration::from_millis(250),
    Duration::from_millis(500),
];

/// A call that failed later than this after it was first sent is not sent again: that was a
/// deadline, not a refusal (refusals come at once), and another try would wait as long again.
const RESEND_ONLY_WITHIN: Duration = Duration::from_secs(1);

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
        let (parts, body) = request.into_parts();
        let unsent = Arc::new(Mutex::new(Some(body)));
        let copy = RequestHead::of(&parts);
        let first = self.inner.call(http::Request::from_parts(
            parts,
            Body::new(HandedOver::new(unsent.clone())),
        ));
        let mut channel = self.inner.clone();
        let call_failed = self.call_failed.clone();
        let sent = std::time::Instant::now();
        Box::pin(async move {
            let mut answer = first.await;
            for pause in RESEND_PAUSES {
                if answer.is_ok() {
                    break;
                }
                call_failed.notify_one();
                if lock(&unsent).is_none() {
                    break; // the body went out: the instance may have acted on it
                }
                if sent.elapsed() > RESEND_ONLY_WITHIN {
                    break;
                }
                tokio::time::sleep(pause).await;
                let request = copy.with_body(Body::new(HandedOver::new(unsent.clone())));
                answer = match channel.ready().await {
                    Ok(ready) => ready.call(request).await,
                    Err(err) => Err(err),
                };
            }
            if answer.is_err() {
                call_failed.notify_one();
            }
            answer
        })
    }
}

fn lock(slot: &Mutex<Option<Body>>) -> std::sync::MutexGuard<'_, Option<Body>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take(slot: &Mutex<Option<Body>>) -> Option<Body> {
    lock(slot).take()
}

/// What a request needs to be sent again: everything but its body.
struct RequestHead {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    extensions: http::Extensions,
}

impl RequestHead {
    fn of(parts: &http::request::Parts) -> Self {
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
        }
    }

    fn with_body(&self, body: Body) -> http::Request<Body> {
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        request
    }
}

/// A request body that stays with the caller until the connection first asks for a frame: if
/// the call fails before that, the caller still holds the body and knows nothing was sent.
struct HandedOver {
    unsent: Arc<Mutex<Option<Body>>>,
    sending: Option<Body>,
}

impl HandedOver {
    fn new(unsent: Arc<Mutex<Option<Body>>>) -> Self {
        Self {
            unsent,
            sending: None,
        }
    }
}

impl http_body::Body for HandedOver {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        if this.sending.is_none() {
            this.sending = take(&this.unsent);
        }
        match this.sending.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.sending {
            Some(body) => body.is_end_stream(),
            None => lock(&self.unsent).as_ref().is_none_or(Body::is_end_stream),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.sending {
            Some(body) => body.size_hint(),
            None => lock(&self.unsent)
                .as_ref()
                .map(Body::size_hint)
                .unwrap_or_default(),
        }
    }
}
