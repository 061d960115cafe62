//! The orders WeChat Pay holds for the merchant, with the trade states `pay/orderquery` reports.

use serde::{Deserialize, Serialize};
use wechat_protocol::pay::SignType;

use crate::{Sandbox, lock};

/// `trade_state` of `pay/orderquery`, with the `trade_state_desc` texts WeChat Pay documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeState {
    NotPay,
    Success,
    /// Paid, then refunded (in part or whole): the payment stands, money went back.
    Refund,
    Closed,
    /// Cancelled at the till (micropay); a JSAPI order should never show it.
    Revoked,
    /// The user is still entering a password or the bank is still answering.
    UserPaying,
    /// The bank refused the payment.
    PayError,
}

impl TradeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotPay => "NOTPAY",
            Self::Success => "SUCCESS",
            Self::Refund => "REFUND",
            Self::Closed => "CLOSED",
            Self::Revoked => "REVOKED",
            Self::UserPaying => "USERPAYING",
            Self::PayError => "PAYERROR",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::NotPay => "订单未支付",
            Self::Success => "支付成功",
            Self::Refund => "订单发生过退款，退款详情请查询退款单",
            Self::Closed => "已关闭",
            Self::Revoked => "已撤销（刷卡支付）",
            Self::UserPaying => "用户支付中",
            Self::PayError => "支付失败(其他原因，如银行返回失败)",
        }
    }

    /// States in which money was taken: the order carries a transaction id and amounts.
    pub fn was_paid(self) -> bool {
        matches!(self, Self::Success | Self::Refund)
    }
}

#[derive(Clone, Debug)]
pub struct PayOrder {
    pub out_trade_no: String,
    pub prepay_id: String,
    pub total_fee: i64,
    pub openid: String,
    pub notify_url: String,
    pub body: String,
    /// Merchant data, given back unchanged in the notify and the query.
    pub attach: String,
    pub device_info: String,
    pub state: TradeState,
    pub transaction_id: Option<String>,
    pub time_end: Option<String>,
    /// Part of the amount paid with a coupon (`coupon_fee`), 0 without one.
    pub coupon_fee: i64,
    pub created_at: i64,
    /// The algorithm of the merchant's unified order: notifies are signed with it.
    pub sign_type: SignType,
    /// Placed through API v3: its notification is v3's (JSON, RSA-signed, encrypted).
    pub v3: bool,
}

impl PayOrder {
    /// A new unpaid order with what every order has; the request's other fields are set by the
    /// API that placed it.
    pub(super) fn unpaid(
        out_trade_no: String,
        total_fee: i64,
        openid: String,
        body: String,
        notify_url: String,
    ) -> Self {
        Self {
            out_trade_no,
            prepay_id: String::new(),
            total_fee,
            openid,
            notify_url,
            body,
            attach: String::new(),
            device_info: String::new(),
            state: TradeState::NotPay,
            transaction_id: None,
            time_end: None,
            coupon_fee: 0,
            created_at: chrono::Utc::now().timestamp(),
            sign_type: SignType::HmacSha256,
            v3: false,
        }
    }
}

/// What placing an order comes to; each API names the refusals its own way.
pub(super) enum Placement {
    /// Placed now, or the same order placed again with the same parameters: its prepay id.
    Placed(String),
    AlreadyPaid,
    AlreadyClosed,
    /// The number is another order's.
    NumberUsed,
}

impl Sandbox {
    /// Places an order, or answers for the one already placed under its number.
    pub(super) fn place_order(&self, mut order: PayOrder) -> Placement {
        let mut accounts = lock(&self.state.accounts);
        if let Some(existing) = accounts.pay_orders.get(&order.out_trade_no) {
            return match existing.state {
                TradeState::Success | TradeState::Refund => Placement::AlreadyPaid,
                TradeState::Closed | TradeState::Revoked => Placement::AlreadyClosed,
                _ if existing.total_fee == order.total_fee
                    && existing.openid == order.openid
                    && existing.body == order.body =>
                {
                    Placement::Placed(existing.prepay_id.clone())
                }
                _ => Placement::NumberUsed,
            };
        }
        order.prepay_id = format!(
            "wx{}{:016x}",
            chrono::Utc::now().format("%d%H%M%S"),
            rand::random::<u64>()
        );
        let prepay_id = order.prepay_id.clone();
        accounts
            .pay_orders
            .insert(order.out_trade_no.clone(), order);
        Placement::Placed(prepay_id)
    }
}

/// How the notify of a paid order looks, beyond what the order decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyStyle {
    /// Notifies carry an optional `sign_type` field; with `false` it is left out (the
    /// merchant's configured type applies), with `true` it names the order's type.
    #[serde(default)]
    pub name_sign_type: bool,
    /// The user pays this many fen with a non-cash coupon: the notify then carries
    /// `coupon_fee`, `coupon_count`, `coupon_type_0`, `coupon_id_0`, `coupon_fee_0`, a smaller
    /// `cash_fee` and a `settlement_total_fee`; `total_fee` stays the order's amount.
    #[serde(default)]
    pub coupon_fee: i64,
}
