//! Server layer: runs each call inside [`request_id::scope`] with the caller's `x-request-id`, so
//! the calls a service makes while serving it (photo → membership for credits) carry the same id.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::request_id;

#[derive(Clone, Copy, Debug, Default)]
pub struct ScopeRequestIdLayer;

impl<S> Layer<S> for ScopeRequestIdLayer {
    type Service = ScopeRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeRequestId { inner }
    }
}

#[derive(Clone, Debug)]
pub struct ScopeRequestId<S> {
    inner: S,
}

type BoxedCall<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for ScopeRequestId<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxedCall<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(request_id::HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let call = self.inner.call(request);
        match id {
            Some(id) => Box::pin(request_id::scope(id, call)),
            None => Box::pin(call),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_sees_the_request_id_it_came_with() {
        let echo = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(request_id::current())
        });
        let mut service = ScopeRequestIdLayer.layer(echo);
        let with_id = http::Request::builder()
            .header(request_id::HEADER, "req-7")
            .body(())
            .expect("request");
        assert_eq!(
            service.call(with_id).await.expect("call"),
            Some("req-7".to_owned())
        );
        let without = http::Request::new(());
        assert_eq!(service.call(without).await.expect("call"), None);
    }
}
