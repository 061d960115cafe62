//! `membership.v1.CreditService`.

use proto::membership::v1 as pb;
use tonic::{Request, Response, Status};

use crate::credits::{Credits, GrantAudit, HoldView};
use crate::domain::hold::HoldStatus;
use crate::error::MembershipError;
use crate::store::ledger::Reason;
use crate::store::users::UserRow;

pub struct CreditGrpc {
    credits: Credits,
}

impl CreditGrpc {
    pub fn new(credits: Credits) -> Self {
        Self { credits }
    }
}

fn balance_to_pb(user: &UserRow) -> pb::Balance {
    let member_until = user.member_until();
    pb::Balance {
        user_id: user.id,
        remaining: user.remaining_credits,
        held: user.held_credits,
        available: user.remaining_credits - user.held_credits,
        total: user.total_credits,
        is_member: member_until.is_some_and(|until| until > chrono::Utc::now()),
        member_expire_at_unix: member_until.map_or(0, |until| until.timestamp()),
    }
}

fn hold_to_pb(view: &HoldView) -> pb::HoldResponse {
    let status = match view.hold.status {
        HoldStatus::Held => pb::HoldStatus::Held,
        HoldStatus::Captured => pb::HoldStatus::Captured,
        HoldStatus::Released => pb::HoldStatus::Released,
    };
    pb::HoldResponse {
        reference: view.hold.reference.clone(),
        status: status.into(),
        amount: view.hold.amount,
        captured: view.hold.captured,
        balance: Some(balance_to_pb(&view.balance)),
    }
}

#[tonic::async_trait]
impl pb::credit_service_server::CreditService for CreditGrpc {
    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::Balance>, Status> {
        let user = self.credits.balance(request.get_ref().user_id).await?;
        Ok(Response::new(balance_to_pb(&user)))
    }

    #[tracing::instrument(skip_all, fields(reference = %request.get_ref().reference))]
    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::HoldResponse>, Status> {
        let r = request.into_inner();
        let view = self
            .credits
            .reserve(r.user_id, r.amount, &r.reference, r.ttl_seconds)
            .await?;
        Ok(Response::new(hold_to_pb(&view)))
    }

    #[tracing::instrument(skip_all, fields(reference = %request.get_ref().reference))]
    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::HoldResponse>, Status> {
        let r = request.into_inner();
        let view = self.credits.commit(&r.reference, r.used).await?;
        Ok(Response::new(hold_to_pb(&view)))
    }

    #[tracing::instrument(skip_all, fields(reference = %request.get_ref().reference))]
    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::HoldResponse>, Status> {
        let view = self.credits.release(&request.get_ref().reference).await?;
        Ok(Response::new(hold_to_pb(&view)))
    }

    #[tracing::instrument(skip_all, fields(reference = %request.get_ref().reference))]
    async fn charge(
        &self,
        request: Request<pb::ChargeRequest>,
    ) -> Result<Response<pb::Balance>, Status> {
        let r = request.into_inner();
        let user = self
            .credits
            .charge(r.user_id, r.amount, &r.reference)
            .await?;
        Ok(Response::new(balance_to_pb(&user)))
    }

    #[tracing::instrument(skip_all, fields(reference = %request.get_ref().reference))]
    async fn grant(
        &self,
        request: Request<pb::GrantRequest>,
    ) -> Result<Response<pb::Balance>, Status> {
        let r = request.into_inner();
        let reason = Reason::grantable(&r.reason)
            .ok_or_else(|| MembershipError::invalid("reason", "not a grantable reason"))?;
        let user = self
            .credits
            .grant(
                r.user_id,
                r.amount,
                reason,
                &r.reference,
                &GrantAudit {
                    actor: &r.actor,
                    note: &r.note,
                },
            )
            .await?;
        Ok(Response::new(balance_to_pb(&user)))
    }
}
