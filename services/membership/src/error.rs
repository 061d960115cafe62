//! The membership service's one error type, mapped to gRPC status in one place.

use platform::grpc::status;
use tonic::Code;

use crate::wechat::WechatError;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("invalid client token")]
    InvalidClientToken,
    #[error(transparent)]
    Wechat(#[from] WechatError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl MembershipError {
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
            MembershipError::InvalidArgument { .. } => {
                status(Code::InvalidArgument, "invalid_argument", err.to_string())
            }
            MembershipError::InvalidClientToken => status(
                Code::Unauthenticated,
                "invalid_client_token",
                err.to_string(),
            ),
            MembershipError::Wechat(wechat) => {
                tracing::warn!(error = %wechat, "wechat call failed");
                match wechat {
                    WechatError::QuotaExceeded { .. } => status(
                        Code::Unavailable,
                        "wechat_quota_exceeded",
                        "wechat quota reached, try later",
                    ),
                    _ => status(
                        Code::Unavailable,
                        "wechat_unavailable",
                        "wechat is unavailable",
                    ),
                }
            }
            MembershipError::Database(db) if platform::db::is_unavailable(db) => {
                tracing::error!(error = ?err, "database unavailable");
                status(
                    Code::Unavailable,
                    "database_unavailable",
                    "database unavailable",
                )
            }
            MembershipError::Database(_) => {
                tracing::error!(error = ?err, "database error");
                status(Code::Internal, "internal", "internal error")
            }
        }
    }
}
