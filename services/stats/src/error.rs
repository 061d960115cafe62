//! The stats service's one error type, mapped to gRPC status in one place.

use platform::grpc::status;
use proto::ErrorCode;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl StatsError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl From<StatsError> for tonic::Status {
    fn from(err: StatsError) -> Self {
        match &err {
            StatsError::InvalidArgument { .. } => status(
                Code::InvalidArgument,
                ErrorCode::InvalidArgument,
                err.to_string(),
            ),
            StatsError::Database(db) if platform::db::is_unavailable(db) => {
                tracing::error!(error = ?err, "database unavailable");
                status(
                    Code::Unavailable,
                    ErrorCode::DatabaseUnavailable,
                    "database unavailable",
                )
            }
            StatsError::Database(_) | StatsError::Json(_) => {
                tracing::error!(error = ?err, "internal error");
                status(Code::Internal, ErrorCode::Internal, "internal error")
            }
        }
    }
}
