//! The membership service's one error type, mapped to gRPC status in one place.

use platform::grpc::status;
use proto::ErrorCode;
use tonic::Code;

use crate::wechat::WechatError;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("invalid client token")]
    InvalidClientToken,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("membership is active for more than {renew_window_days} more days")]
    MembershipActive { renew_window_days: u32 },
    #[error("not enough credits")]
    InsufficientCredits,
    #[error("the hold {reference} is {status}")]
    HoldSettled { reference: String, status: String },
    #[error("reference {0} was used for a different request")]
    ReferenceConflict(String),
    #[error("invalid oauth code")]
    InvalidOAuthCode,
    #[error("the client is bound; refresh it with its current token, or sign it out first")]
    ClientBound,
    #[error("only a paid order can be refunded; this one is {0}")]
    NotRefundable(&'static str),
    #[error(
        "the user has spent credits this refund would take back: at most {refundable_fen} fen can be refunded now"
    )]
    CreditsSpent { refundable_fen: i64 },
    #[error("personal data cannot be erased yet: {0}; ask again once it has settled")]
    ErasureBlocked(&'static str),
    #[error(transparent)]
    WechatPay(#[from] crate::wechatpay::PayError),
    #[error(transparent)]
    Wechat(#[from] WechatError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("could not read or write JSON")]
    Json(#[from] serde_json::Error),
}

impl MembershipError {
    /// A short snake_case word for metrics (never a message: attribute values stay few).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "invalid_argument",
            Self::InvalidClientToken => "invalid_client_token",
            Self::NotFound(_) => "not_found",
            Self::MembershipActive { .. } => "membership_active",
            Self::InsufficientCredits => "insufficient_credits",
            Self::HoldSettled { .. } => "hold_settled",
            Self::ReferenceConflict(_) => "reference_conflict",
            Self::InvalidOAuthCode => "invalid_oauth_code",
            Self::ClientBound => "client_bound",
            Self::NotRefundable(_) => "not_refundable",
            Self::CreditsSpent { .. } => "credits_spent",
            Self::ErasureBlocked(_) => "erasure_blocked",
            Self::WechatPay(_) => "wechatpay_unavailable",
            Self::Wechat(_) => "wechat_unavailable",
            Self::Database(db) if platform::db::is_unavailable(db) => "database_unavailable",
            Self::Database(_) => "database_error",
            Self::Json(_) => "json_error",
        }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl From<MembershipError> for tonic::Status {
    fn from(err: MembershipError) -> Self {
        match &err {
            MembershipError::InvalidArgument { .. } => status(
                Code::InvalidArgument,
                ErrorCode::InvalidArgument,
                err.to_string(),
            ),
            MembershipError::InvalidClientToken => status(
                Code::Unauthenticated,
                ErrorCode::InvalidClientToken,
                err.to_string(),
            ),
            MembershipError::NotFound(_) => {
                status(Code::NotFound, ErrorCode::NotFound, err.to_string())
            }
            MembershipError::MembershipActive { .. } => status(
                Code::AlreadyExists,
                ErrorCode::MembershipActive,
                err.to_string(),
            ),
            MembershipError::InsufficientCredits => status(
                Code::FailedPrecondition,
                ErrorCode::InsufficientCredits,
                err.to_string(),
            ),
            MembershipError::HoldSettled { .. } => status(
                Code::FailedPrecondition,
                ErrorCode::HoldSettled,
                err.to_string(),
            ),
            MembershipError::ReferenceConflict(_) => status(
                Code::AlreadyExists,
                ErrorCode::ReferenceConflict,
                err.to_string(),
            ),
            MembershipError::ClientBound => {
                status(Code::AlreadyExists, ErrorCode::ClientBound, err.to_string())
            }
            MembershipError::InvalidOAuthCode => status(
                Code::Unauthenticated,
                ErrorCode::InvalidOauthCode,
                err.to_string(),
            ),
            MembershipError::NotRefundable(_) => status(
                Code::FailedPrecondition,
                ErrorCode::NotRefundable,
                err.to_string(),
            ),
            MembershipError::CreditsSpent { .. } => status(
                Code::FailedPrecondition,
                ErrorCode::CreditsSpent,
                err.to_string(),
            ),
            MembershipError::ErasureBlocked(_) => status(
                Code::FailedPrecondition,
                ErrorCode::ErasureBlocked,
                err.to_string(),
            ),
            MembershipError::WechatPay(crate::wechatpay::PayError::NoCertificate) => status(
                Code::FailedPrecondition,
                ErrorCode::RefundsNotConfigured,
                err.to_string(),
            ),
            MembershipError::WechatPay(pay) => {
                tracing::warn!(error = %pay, "wechat pay call failed");
                status(
                    Code::Unavailable,
                    ErrorCode::WechatpayUnavailable,
                    pay.to_string(),
                )
            }
            MembershipError::Wechat(wechat) => {
                tracing::warn!(error = %wechat, "wechat call failed");
                match wechat {
                    WechatError::QuotaExceeded { .. } => status(
                        Code::Unavailable,
                        ErrorCode::WechatQuotaExceeded,
                        "wechat quota reached, try later",
                    ),
                    _ => status(
                        Code::Unavailable,
                        ErrorCode::WechatUnavailable,
                        "wechat is unavailable",
                    ),
                }
            }
            MembershipError::Database(db) if platform::db::is_unavailable(db) => {
                tracing::error!(error = ?err, "database unavailable");
                status(
                    Code::Unavailable,
                    ErrorCode::DatabaseUnavailable,
                    "database unavailable",
                )
            }
            MembershipError::Database(_) | MembershipError::Json(_) => {
                tracing::error!(error = ?err, "internal error");
                status(Code::Internal, ErrorCode::Internal, "internal error")
            }
        }
    }
}
