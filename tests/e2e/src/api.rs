//! The gateway's API as the tests call it: the typed Rust client (`clients/rust`), so every
//! answer is read as the OpenAPI document describes it, and an error answer is a [`Refusal`].
//! Requests no typed client can send (a malformed body, a forged cookie) stay raw in the tests
//! that send them.

use std::fmt::Debug;

pub use xintu_client::{Client, Error, types};

/// What a call answers: the documented body, or the gateway's error answer.
pub type Answer<T> = Result<T, Error<types::ErrorBody>>;

/// Takes the body out of a typed call's answer.
pub async fn answer<T>(
    call: impl Future<Output = Result<xintu_client::ResponseValue<T>, Error<types::ErrorBody>>>,
) -> Answer<T> {
    call.await.map(xintu_client::ResponseValue::into_inner)
}

/// An error answer: its HTTP status and the gateway's stable code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Refusal {
    /// The status and the code, the pair a test usually asserts.
    pub fn status_and_code(&self) -> (u16, &str) {
        (self.status, &self.code)
    }
}

/// The refusal of an error answer; panics on any other outcome (a success, a transport error, or
/// an error body that is not the documented one).
#[track_caller]
pub fn refusal<T: Debug>(outcome: Result<T, Error<types::ErrorBody>>) -> Refusal {
    match outcome {
        Err(Error::ErrorResponse(answer)) => Refusal {
            status: answer.status().as_u16(),
            code: answer.error.code.clone(),
            message: answer.error.message.clone(),
        },
        other => panic!("not an error answer: {other:?}"),
    }
}

/// The body of a membership order.
pub fn member_order() -> types::CreateOrderIn {
    types::CreateOrderIn {
        order_type: "member".to_owned(),
        credits_amount: None,
    }
}

/// The body of an order of `credits` credits.
pub fn credits_order(credits: i32) -> types::CreateOrderIn {
    types::CreateOrderIn {
        order_type: "credits".to_owned(),
        credits_amount: Some(credits),
    }
}

/// The body of an operator's credit adjustment.
pub fn adjustment(openid: &str, delta: i64, reason: &str) -> types::AdjustIn {
    types::AdjustIn {
        openid: openid.to_owned(),
        delta,
        reason: reason.to_owned(),
    }
}

/// The body of an operator's refund of `fee` fen.
pub fn refund(fee: i64, reason: &str) -> types::RefundIn {
    types::RefundIn {
        refund_fee: fee,
        reason: reason.to_owned(),
    }
}

/// The parameters the member page hands to WeChat's JSAPI, under the names `paySign` is
/// computed over (everything but `paySign` itself).
pub fn pay_sign_fields(params: &types::PayParamsOut) -> [(&'static str, &str); 5] {
    [
        ("appId", &params.app_id),
        ("timeStamp", &params.time_stamp),
        ("nonceStr", &params.nonce_str),
        ("package", &params.package),
        ("signType", &params.sign_type),
    ]
}
