//! `membership.v1.MemberService` and `membership.v1.OrderService`.

use proto::membership::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::order::{OrderStatus, OrderType};
use crate::domain::pricing::{PriceList, Product};
use crate::error::MembershipError;
use crate::members::Members;
use crate::orders::Orders;
use crate::store::orders::OrderRow;

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
        if openid.is_empty() {
            return Err(MembershipError::invalid("openid", "missing").into());
        }
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
        }))
    }
}

pub struct OrderGrpc {
    orders: Orders,
}

impl OrderGrpc {
    pub fn new(orders: Orders) -> Self {
        Self { orders }
    }
}

fn order_to_pb(order: &OrderRow) -> pb::Order {
    let status = match order.status {
        OrderStatus::NotPay => pb::OrderStatus::Notpay,
        OrderStatus::Paid => pb::OrderStatus::Paid,
        OrderStatus::Closed => pb::OrderStatus::Closed,
        OrderStatus::Failed => pb::OrderStatus::Failed,
    };
    let order_type = match order.order_type {
        OrderType::Member => pb::OrderType::Member,
        OrderType::Credits => pb::OrderType::Credits,
    };
    pb::Order {
        order_no: order.out_trade_no.clone(),
        order_type: order_type.into(),
        credits_amount: u32::try_from(order.credits_amount).unwrap_or(0),
        membership_days: u32::try_from(order.membership_days).unwrap_or(0),
        total_fee: order.total_fee,
        status: status.into(),
        created_at_unix: order.created_at.timestamp(),
        paid_at_unix: order.paid_at.map_or(0, |at| at.timestamp()),
        expire_at_unix: order.expire_at.timestamp(),
    }
}

#[tonic::async_trait]
impl pb::order_service_server::OrderService for OrderGrpc {
    #[tracing::instrument(skip_all, fields(order_type = request.get_ref().order_type))]
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let request = request.into_inner();
        let product = match pb::OrderType::try_from(request.order_type) {
            Ok(pb::OrderType::Member) => Product::Membership,
            Ok(pb::OrderType::Credits) => Product::Credits(request.credits_amount),
            _ => {
                return Err(
                    MembershipError::invalid("order_type", "must be member or credits").into(),
                );
            }
        };
        let (order, params) = self
            .orders
            .create(&request.openid, product, &request.client_ip)
            .await?;
        tracing::info!(order_no = %order.out_trade_no, total_fee = order.total_fee, "order created");
        Ok(Response::new(pb::CreateOrderResponse {
            order: Some(order_to_pb(&order)),
            pay_params: Some(pb::JsapiPayParams {
                app_id: params.app_id,
                time_stamp: params.time_stamp,
                nonce_str: params.nonce_str,
                package: params.package,
                sign_type: params.sign_type,
                pay_sign: params.pay_sign,
            }),
        }))
    }

    #[tracing::instrument(skip_all, fields(order_no = %request.get_ref().order_no))]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let request = request.into_inner();
        let order = self.orders.get(&request.openid, &request.order_no).await?;
        Ok(Response::new(order_to_pb(&order)))
    }

    #[tracing::instrument(skip_all)]
    async fn handle_pay_notify(
        &self,
        request: Request<pb::HandlePayNotifyRequest>,
    ) -> Result<Response<pb::HandlePayNotifyResponse>, Status> {
        let (success, message) = self.orders.handle_notify(&request.get_ref().body).await?;
        Ok(Response::new(pb::HandlePayNotifyResponse {
            success,
            message: message.to_owned(),
        }))
    }
}
