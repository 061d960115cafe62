//! `membership.v1.PersonalDataService`.

use proto::membership::v1 as pb;
use tonic::{Request, Response, Status};

use crate::personal_data::{ErasureDone, PersonalData};

use super::required_openid;

pub struct PersonalDataGrpc {
    personal_data: PersonalData,
}

impl PersonalDataGrpc {
    pub fn new(personal_data: PersonalData) -> Self {
        Self { personal_data }
    }
}

fn done_to_pb(done: ErasureDone) -> pb::Erasure {
    pb::Erasure {
        id: done.id,
        user_id: done.user_id,
        pseudonym: done.pseudonym,
        openid: done.openid,
        client_ids: done.client_ids,
        credits_forfeited: done.credits_forfeited,
    }
}

#[tonic::async_trait]
impl pb::personal_data_service_server::PersonalDataService for PersonalDataGrpc {
    #[tracing::instrument(skip_all)]
    async fn export_personal_data(
        &self,
        request: Request<pb::ExportPersonalDataRequest>,
    ) -> Result<Response<pb::PersonalDataDocument>, Status> {
        let openid = request.into_inner().openid;
        let exported = self.personal_data.export(required_openid(&openid)?).await?;
        Ok(Response::new(pb::PersonalDataDocument {
            json: exported.json,
            user_id: exported.user_id,
            client_ids: exported.client_ids,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn erase_user(
        &self,
        request: Request<pb::EraseUserRequest>,
    ) -> Result<Response<pb::Erasure>, Status> {
        let r = request.into_inner();
        let done = self
            .personal_data
            .erase(required_openid(&r.openid)?, &r.actor, &r.reason)
            .await?;
        Ok(Response::new(done_to_pb(done)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_pending_erasures(
        &self,
        request: Request<pb::ListPendingErasuresRequest>,
    ) -> Result<Response<pb::ListPendingErasuresResponse>, Status> {
        let r = request.into_inner();
        let pending = self
            .personal_data
            .pending(
                chrono::Duration::seconds(i64::from(r.older_than_seconds)),
                r.limit,
            )
            .await?;
        Ok(Response::new(pb::ListPendingErasuresResponse {
            erasures: pending.into_iter().map(done_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn complete_erasure(
        &self,
        request: Request<pb::CompleteErasureRequest>,
    ) -> Result<Response<pb::CompleteErasureResponse>, Status> {
        let completed = self.personal_data.complete(request.get_ref().id).await?;
        Ok(Response::new(pb::CompleteErasureResponse { completed }))
    }
}
