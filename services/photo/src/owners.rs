//! Whom an app client belongs to now, asked of the membership service (never taken from the
//! caller). An edit task belongs to the WeChat user on the client that asked for it; its result
//! URLs work only while that client is still bound to that user, so an app re-bound to another
//! user (a shared PC) or signed out serves none of the first user's results.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;

use platform::grpc::{PropagateContext, ServiceChannel, ServiceToken};
use proto::membership::v1 as pb;
use proto::membership::v1::binding_service_client::BindingServiceClient;

use crate::error::PhotoError;

type Client = BindingServiceClient<InterceptedService<ServiceChannel, PropagateContext>>;

#[derive(Clone)]
pub struct ClientOwners {
    client: Client,
}

impl ClientOwners {
    pub fn new(
        membership_urls: &str,
        timeout: Duration,
        token: &ServiceToken,
    ) -> anyhow::Result<Self> {
        let channel = platform::grpc::channel(membership_urls, timeout, token)?;
        Ok(Self {
            client: BindingServiceClient::with_interceptor(channel, PropagateContext),
        })
    }

    /// The user `client_id` is bound to now; None when it is not bound. Fails closed: without
    /// membership's answer nothing is handed out.
    pub async fn current_user(&self, client_id: &str) -> Result<Option<i64>, PhotoError> {
        let answer = self
            .client
            .clone()
            .get_client_user(pb::GetClientUserRequest {
                client_id: client_id.to_owned(),
            })
            .await
            .map_err(|status| {
                tracing::warn!(error = %status, "the client's user could not be checked");
                PhotoError::MembershipUnavailable
            })?
            .into_inner();
        Ok(Some(answer.user_id).filter(|id| *id > 0))
    }
}
