//! Service-to-service authentication: the gRPC ports are reachable from inside the network, so
//! every call between our processes carries a shared secret (`SERVICE_TOKEN`) as
//! `authorization: Bearer <token>`, and every server refuses a call without it.
//!
//! `SERVICE_TOKEN` is one token, or a comma-separated list while a new one is rolled out: a
//! process sends the first and accepts each of them. Health checks stay open to callers that
//! present no token, so the orchestrator's probes (the binaries' `healthcheck`) need no secret;
//! a caller that presents a wrong token is refused even there, so a gateway configured with the
//! wrong token reports itself not ready instead of failing every request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::WatchedChannel;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};
use tower_http::set_header::SetRequestHeader;

/// Calls under this path prefix answer callers without a token (orchestrator probes).
const OPEN_PREFIX: &str = "/grpc.health.v1.Health/";

/// A channel whose every call carries this process's service token.
pub type ServiceChannel = SetRequestHeader<WatchedChannel, HeaderValue>;

/// The configured service token(s): the one this process sends and every one it accepts.
#[derive(Clone)]
pub struct ServiceToken {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Bearer <first token>`, marked sensitive so no header dump shows it.
    sent: HeaderValue,
    /// SHA-256 of each accepted `Bearer <token>` value: equal lengths, compared in constant time.
    accepted: Vec<[u8; 32]>,
    /// The tokens as configured, for the production rules.
    configured: Vec<SecretString>,
}

/// A `SERVICE_TOKEN` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidServiceToken(&'static str);

impl ServiceToken {
    /// Reads `SERVICE_TOKEN`: comma-separated tokens, each non-empty printable ASCII without
    /// spaces (what an HTTP/2 header carries as is).
    pub fn parse(configured: &str) -> Result<Self, InvalidServiceToken> {
        let tokens: Vec<&str> = configured.split(',').map(str::trim).collect();
        if tokens.iter().any(|token| token.is_empty()) {
            return Err(InvalidServiceToken(
                "is empty, or has an empty entry in its comma-separated list",
            ));
        }
        if !tokens
            .iter()
            .all(|token| token.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(InvalidServiceToken(
                "may hold printable ASCII only, without spaces",
            ));
        }
        let bearer = |token: &str| format!("Bearer {token}");
        let mut sent = HeaderValue::try_from(bearer(tokens[0]))
            .map_err(|_| InvalidServiceToken("is not a valid header value"))?;
        sent.set_sensitive(true);
        Ok(Self {
            inner: Arc::new(Inner {
                sent,
                accepted: tokens
                    .iter()
                    .map(|token| Sha256::digest(bearer(token)).into())
                    .collect(),
                configured: tokens
                    .iter()
                    .map(|token| SecretString::from((*token).to_owned()))
                    .collect(),
            }),
        })
    }

    /// Whether `presented` (an `authorization` value) names one of the accepted tokens. Every
    /// accepted token is compared, each in constant time, so the answer's timing tells nothing.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.inner
            .accepted
            .iter()
            .fold(subtle::Choice::from(0), |found, accepted| {
                found | accepted[..].ct_eq(&presented[..])
            })
            .into()
    }

    /// The configured tokens, for the production rules (length, placeholders).
    pub fn configured(&self) -> impl Iterator<Item = &str> {
        self.inner
            .configured
            .iter()
            .map(|token| token.expose_secret())
    }

    /// `channel` with this process's token on every call.
    pub fn attach(&self, channel: impl Into<WatchedChannel>) -> ServiceChannel {
        SetRequestHeader::overriding(channel.into(), AUTHORIZATION, self.inner.sent.clone())
    }
}

impl fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceToken([REDACTED])")
    }
}

impl<'de> serde::Deserialize<'de> for ServiceToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let configured = SecretString::deserialize(deserializer)?;
        Self::parse(configured.expose_secret()).map_err(serde::de::Error::custom)
    }
}

/// Server layer: refuses every call that does not carry an accepted service token.
#[derive(Clone, Debug)]
pub struct RequireServiceTokenLayer {
    token: ServiceToken,
}

impl RequireServiceTokenLayer {
    pub fn new(token: ServiceToken) -> Self {
        Self { token }
    }
}

impl<S> Layer<S> for RequireServiceTokenLayer {
    type Service = RequireServiceToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireServiceToken {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequireServiceToken<S> {
    inner: S,
    token: ServiceToken,
}

impl<S> RequireServiceToken<S> {
    fn allows<B>(&self, request: &http::Request<B>) -> bool {
        match request.headers().get(AUTHORIZATION) {
            Some(presented) => self.token.accepts(presented.as_bytes()),
            None => request.uri().path().starts_with(OPEN_PREFIX),
        }
    }
}

type BoxedCall<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, ResBody> Service<http::Request<B>> for RequireServiceToken<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxedCall<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if self.allows(&request) {
            return Box::pin(self.inner.call(request));
        }
        tracing::warn!(rpc = %request.uri().path(), "call refused: no valid service token");
        let refused = super::status(
            tonic::Code::Unauthenticated,
            proto::ErrorCode::ServiceTokenRefused,
            "this service answers only callers with the service token",
        );
        Box::pin(std::future::ready(Ok(refused.into_http())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_token_is_sent_and_every_one_is_accepted() {
        let token = ServiceToken::parse("new-token-0123, old-token-4567").unwrap();
        let sent = &token.inner.sent;
        assert_eq!(sent, "Bearer new-token-0123");
        assert!(sent.is_sensitive());
        assert!(token.accepts(b"Bearer new-token-0123"));
        assert!(token.accepts(b"Bearer old-token-4567"));
        assert!(!token.accepts(b"Bearer new-token-012"));
        assert!(!token.accepts(b"new-token-0123"));
        assert!(!token.accepts(b""));
    }

    #[test]
    fn unusable_tokens_are_refused_and_none_prints() {
        for bad in ["", " ", "a,,b", "a,", "with space", "tab\there", "ünï"] {
            assert!(ServiceToken::parse(bad).is_err(), "{bad:?}");
        }
        let token = ServiceToken::parse("1900009191").unwrap();
        assert_eq!(format!("{token:?}"), "ServiceToken([REDACTED])");
        assert_eq!(token.configured().collect::<Vec<_>>(), ["1900009191"]);
    }
}
