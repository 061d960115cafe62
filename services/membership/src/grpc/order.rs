//! `membership.v1.OrderService`.

use proto::membership::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::order::{OrderStatus, OrderType};
use crate::domain::pricing::Product;
use crate::error::MembershipError;
use crate::orders::Orders;
use crate::store::orders::OrderRow;

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

    #[tracing::instrument(skip_all)]
    async fn handle_pay_notify_v3(
        &self,
        request: Request<pb::HandlePayNotifyV3Request>,
    ) -> Result<Response<pb::HandlePayNotifyResponse>, Status> {
        let request = request.get_ref();
        let signature = wechat_protocol::pay_v3::SignedHeaders {
            timestamp: &request.timestamp,
            nonce: &request.nonce,
            signature: &request.signature,
            serial: &request.serial,
        };
        let (success, message) = self
            .orders
            .handle_notify_v3(signature, &request.body)
            .await?;
        Ok(Response::new(pb::HandlePayNotifyResponse {
            success,
            message: message.to_owned(),
        }))
    }

    async fn handle_refund_notify(
        &self,
        request: Request<pb::HandlePayNotifyRequest>,
    ) -> Result<Response<pb::HandlePayNotifyResponse>, Status> {
        let (success, message) = self
            .orders
            .handle_refund_notify(&request.get_ref().body)
            .await?;
        Ok(Response::new(pb::HandlePayNotifyResponse {
            success,
            message: message.to_owned(),
        }))
    }
}
