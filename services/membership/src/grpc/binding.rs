//! `membership.v1.BindingService`.

use proto::membership::v1 as pb;
use tonic::{Request, Response, Status};

use crate::binding::Bindings;
use crate::domain::binding::{BindingState, ClientId, ClientToken};
use crate::domain::event::{EventKind, EventOutcome, OfficialAccountEvent, SceneNote};
use crate::error::MembershipError;

use super::required_openid;

pub struct BindingGrpc {
    bindings: Bindings,
}

impl BindingGrpc {
    pub fn new(bindings: Bindings) -> Self {
        Self { bindings }
    }
}

#[tonic::async_trait]
impl pb::binding_service_server::BindingService for BindingGrpc {
    #[tracing::instrument(skip_all, fields(client_id = %request.get_ref().client_id))]
    async fn create_qr_code(
        &self,
        request: Request<pb::CreateQrCodeRequest>,
    ) -> Result<Response<pb::CreateQrCodeResponse>, Status> {
        let request = request.into_inner();
        let client_id = ClientId::parse(&request.client_id)?;
        let presented = Some(request.client_token.as_str())
            .filter(|token| !token.is_empty())
            .map(ClientToken::from_presented);
        let issued = self
            .bindings
            .create_qrcode(&client_id, presented.as_ref())
            .await?;
        Ok(Response::new(pb::CreateQrCodeResponse {
            scene_id: issued.scene_id,
            ticket: issued.ticket,
            qr_url: issued.qr_url,
            qrcode_image_url: issued.image_url,
            expires_at_unix: issued.expires_at.timestamp(),
            expire_seconds: issued.expire_seconds,
            client_token: issued.client_token.expose().to_owned(),
        }))
    }

    #[tracing::instrument(skip_all, fields(client_id = %request.get_ref().client_id))]
    async fn get_binding_status(
        &self,
        request: Request<pb::GetBindingStatusRequest>,
    ) -> Result<Response<pb::GetBindingStatusResponse>, Status> {
        let request = request.into_inner();
        let client_id = ClientId::parse(&request.client_id)?;
        let token = ClientToken::from_presented(&request.client_token);
        let view = self.bindings.status(&client_id, &token).await?;
        let status = match view.state {
            BindingState::Pending => pb::BindingStatus::Pending,
            BindingState::Completed => pb::BindingStatus::Completed,
            BindingState::Expired => pb::BindingStatus::Expired,
        };
        Ok(Response::new(pb::GetBindingStatusResponse {
            status: status.into(),
            openid: view.openid.unwrap_or_default(),
            completed_at_unix: view.completed_at.map(|at| at.timestamp()).unwrap_or(0),
            expires_at_unix: view.expires_at.timestamp(),
            user_id: view.user_id.unwrap_or(0),
        }))
    }

    #[tracing::instrument(skip_all, fields(kind = request.get_ref().kind))]
    async fn handle_official_account_event(
        &self,
        request: Request<pb::OfficialAccountEvent>,
    ) -> Result<Response<pb::OfficialAccountEventResult>, Status> {
        let request = request.into_inner();
        let kind = match pb::EventKind::try_from(request.kind) {
            Ok(pb::EventKind::Subscribe) => EventKind::Subscribe,
            Ok(pb::EventKind::Scan) => EventKind::Scan,
            Ok(pb::EventKind::Unsubscribe) => EventKind::Unsubscribe,
            _ => return Err(MembershipError::invalid("kind", "unknown event kind").into()),
        };
        let event = OfficialAccountEvent {
            openid: request.openid,
            create_time: request.create_time,
            kind,
            event_key: request.event_key,
            ticket: request.ticket,
        };
        let result = self.bindings.handle_event(&event).await?;
        tracing::info!(
            outcome = result.outcome.as_str(),
            scene_note = result.scene_note.map(SceneNote::as_str),
            "event applied"
        );
        let outcome = match result.outcome {
            EventOutcome::Bound => pb::EventOutcome::Bound,
            EventOutcome::Followed => pb::EventOutcome::Followed,
            EventOutcome::Unfollowed => pb::EventOutcome::Unfollowed,
            EventOutcome::Duplicate => pb::EventOutcome::Duplicate,
        };
        Ok(Response::new(pb::OfficialAccountEventResult {
            outcome: outcome.into(),
            new_user: result.new_user,
            granted_credits: result.granted_credits,
            remaining_credits: result.remaining_credits,
            detail: result.scene_note.map_or("", SceneNote::as_str).to_owned(),
            scene_note: match result.scene_note {
                None => pb::SceneNote::Unspecified,
                Some(SceneNote::NoScene) => pb::SceneNote::NoScene,
                Some(SceneNote::Unknown) => pb::SceneNote::Unknown,
                Some(SceneNote::Expired) => pb::SceneNote::Expired,
                Some(SceneNote::AlreadyBound) => pb::SceneNote::AlreadyBound,
                Some(SceneNote::Taken) => pb::SceneNote::Taken,
                Some(SceneNote::Stale) => pb::SceneNote::Stale,
            }
            .into(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn authenticate_client(
        &self,
        request: Request<pb::AuthenticateClientRequest>,
    ) -> Result<Response<pb::AuthenticateClientResponse>, Status> {
        let token = ClientToken::from_presented(&request.get_ref().client_token);
        let identity = self.bindings.authenticate(&token).await?;
        Ok(Response::new(pb::AuthenticateClientResponse {
            client_id: identity.client_id,
            openid: identity.openid.unwrap_or_default(),
            user_id: identity.user_id.unwrap_or(0),
            completed_at_unix: identity.completed_at.map_or(0, |at| at.timestamp()),
            expires_at_unix: identity.expires_at.timestamp(),
        }))
    }

    #[tracing::instrument(skip_all, fields(client_id = %request.get_ref().client_id))]
    async fn get_client_user(
        &self,
        request: Request<pb::GetClientUserRequest>,
    ) -> Result<Response<pb::GetClientUserResponse>, Status> {
        let client_id = ClientId::parse(&request.get_ref().client_id)?;
        let user_id = self.bindings.current_user(&client_id).await?;
        Ok(Response::new(pb::GetClientUserResponse {
            user_id: user_id.unwrap_or(0),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn unbind(
        &self,
        request: Request<pb::UnbindRequest>,
    ) -> Result<Response<pb::UnbindResponse>, Status> {
        let token = ClientToken::from_presented(&request.get_ref().client_token);
        let client_id = self.bindings.unbind(&token).await?;
        Ok(Response::new(pb::UnbindResponse { client_id }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_user_clients(
        &self,
        request: Request<pb::ListUserClientsRequest>,
    ) -> Result<Response<pb::ListUserClientsResponse>, Status> {
        let openid = required_openid(&request.get_ref().openid)?;
        let clients = self.bindings.user_clients(openid).await?;
        Ok(Response::new(pb::ListUserClientsResponse {
            clients: clients
                .into_iter()
                .map(|row| pb::UserClient {
                    client_id: row.client_id,
                    bound_at_unix: row.completed_at.timestamp(),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(client_id = %request.get_ref().client_id))]
    async fn sign_out_user_client(
        &self,
        request: Request<pb::SignOutUserClientRequest>,
    ) -> Result<Response<pb::UnbindResponse>, Status> {
        let request = request.get_ref();
        let openid = required_openid(&request.openid)?;
        let client_id = ClientId::parse(&request.client_id)?;
        self.bindings
            .sign_out_user_client(openid, &client_id)
            .await?;
        Ok(Response::new(pb::UnbindResponse {
            client_id: client_id.as_str().to_owned(),
        }))
    }
}
