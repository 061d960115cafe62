//! Request extractors that fail with our JSON errors.

use proto::ErrorCode;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::AppState;
use crate::client_cache::{CachedClient, token_key};
use crate::error::ApiError;

/// A JSON body; malformed or oversized bodies get our error format.
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection, state.cfg.max_body_bytes)),
        }
    }
}

fn json_rejection(rejection: JsonRejection, limit: usize) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(limit),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        _ => ApiError::new(ErrorCode::InvalidJson, rejection.body_text()),
    }
}

/// The app's bearer token (`Authorization: Bearer <client_token>`).
pub struct ClientBearer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty());
        match token {
            Some(token) => Ok(Self(token.to_owned())),
            None => Err(ApiError::new(
                ErrorCode::MissingClientToken,
                "send Authorization: Bearer <client_token>",
            )),
        }
    }
}

/// Optional where a route serves callers with and without a token (a new client's first QR code).
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for ClientBearer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The caller's address: the TCP peer, or X-Real-IP when the gateway sits behind our own edge
/// (`trust_proxy_headers`), which overwrites that header.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.cfg.trust_proxy_headers {
            let forwarded = parts
                .headers
                .get("x-real-ip")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse().ok());
            if forwarded.is_some() {
                return Ok(Self(forwarded));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(Self(peer))
    }
}

/// An app call's caller: the client its bearer token belongs to, and the WeChat user bound to it
/// (None while the client is not bound). Resolved by the membership service, or by this
/// gateway's cache of bound tokens.
pub struct AuthenticatedClient {
    pub client_id: String,
    pub openid: Option<String>,
    pub user_id: Option<i64>,
}

impl AuthenticatedClient {
    /// The bound WeChat user, or 403 for a client that has not completed binding.
    pub fn bound_user(&self) -> Result<(i64, &str), ApiError> {
        match (self.user_id, self.openid.as_deref()) {
            (Some(user_id), Some(openid)) => Ok((user_id, openid)),
            _ => Err(ApiError::new(
                ErrorCode::ClientNotBound,
                "bind this client to WeChat first",
            )),
        }
    }
}

impl FromRequestParts<AppState> for AuthenticatedClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientBearer(token) = ClientBearer::from_request_parts(parts, state).await?;
        let key = token_key(&token);
        let client = match state.client_cache.get(&key) {
            Some(cached) => Self {
                client_id: cached.client_id.clone(),
                openid: Some(cached.openid.clone()),
                user_id: Some(cached.user_id),
            },
            None => {
                let epoch = state.client_cache.epoch();
                let mut binding = state.clients.binding.clone();
                let identity = binding
                    .authenticate_client(proto::membership::v1::AuthenticateClientRequest {
                        client_token: token,
                    })
                    .await?
                    .into_inner();
                if identity.user_id > 0 && !identity.openid.is_empty() {
                    let cached = CachedClient {
                        client_id: identity.client_id.clone(),
                        openid: identity.openid.clone(),
                        user_id: identity.user_id,
                        completed_at_unix: identity.completed_at_unix,
                        expires_at_unix: identity.expires_at_unix,
                    };
                    state.client_cache.insert(key, cached, epoch);
                }
                Self {
                    client_id: identity.client_id,
                    openid: crate::routes::text_if_set(identity.openid),
                    user_id: Some(identity.user_id).filter(|id| *id > 0),
                }
            }
        };
        if let Some(fields) = parts.extensions.get::<crate::recording::RecordFields>() {
            fields.set_caller(&client.client_id, client.openid.as_deref());
        }
        Ok(client)
    }
}
