//! `membership.v1.MemberService`.

use proto::membership::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::pricing::PriceList;
use crate::members::Members;

use super::required_openid;

pub struct MemberGrpc {
    members: Members,
}

impl MemberGrpc {
    pub fn new(members: Members) -> Self {
        Self { members }
    }
}

pub fn prices_to_pb(prices: &PriceList) -> pb::Prices {
    pb::Prices {
        member_price_fen: prices.member_price_fen,
        member_days: prices.member_days,
        member_bonus_credits: prices.member_bonus_credits,
        credit_unit_fen: prices.credit_unit_fen,
        credits_min: prices.credits_min,
        credits_max: prices.credits_max,
        member_renew_window_days: prices.member_renew_window_days,
    }
}

#[tonic::async_trait]
impl pb::member_service_server::MemberService for MemberGrpc {
    #[tracing::instrument(skip_all)]
    async fn exchange_o_auth_code(
        &self,
        request: Request<pb::ExchangeOAuthCodeRequest>,
    ) -> Result<Response<pb::ExchangeOAuthCodeResponse>, Status> {
        let openid = self.members.exchange_code(&request.get_ref().code).await?;
        Ok(Response::new(pb::ExchangeOAuthCodeResponse { openid }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::Profile>, Status> {
        let openid = request.into_inner().openid;
        required_openid(&openid)?;
        self.profile(openid).await
    }

    #[tracing::instrument(skip_all)]
    async fn set_expiry_reminders(
        &self,
        request: Request<pb::SetExpiryRemindersRequest>,
    ) -> Result<Response<pb::Profile>, Status> {
        let r = request.into_inner();
        required_openid(&r.openid)?;
        self.members
            .set_expiry_reminders(&r.openid, r.enabled)
            .await?;
        self.profile(r.openid).await
    }
}

impl MemberGrpc {
    async fn profile(&self, openid: String) -> Result<Response<pb::Profile>, Status> {
        let view = self.members.profile(&openid).await?;
        let user = view.user.as_ref();
        let member_until = user.and_then(|u| u.member_until());
        Ok(Response::new(pb::Profile {
            openid,
            following: user.is_some_and(|u| u.subscribed),
            available_credits: user.map_or(0, |u| u.remaining_credits - u.held_credits),
            remaining_credits: user.map_or(0, |u| u.remaining_credits),
            total_credits: user.map_or(0, |u| u.total_credits),
            is_member: member_until.is_some_and(|until| until > chrono::Utc::now()),
            member_expire_at_unix: member_until.map_or(0, |until| until.timestamp()),
            can_buy_membership: view.can_buy_membership,
            prices: Some(prices_to_pb(&view.prices)),
            expiry_reminders: user.is_some_and(|u| u.expiry_reminders),
        }))
    }
}
