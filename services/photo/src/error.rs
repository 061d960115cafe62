//! The photo service's one error type, mapped to gRPC status in one place.

use platform::grpc::status;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("invalid coordinate{at}: {reason}")]
    InvalidCoordinate { at: String, reason: String },
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl PhotoError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<PhotoError> for tonic::Status {
    fn from(err: PhotoError) -> Self {
        match &err {
            PhotoError::InvalidArgument { .. } => {
                status(Code::InvalidArgument, "invalid_argument", err.to_string())
            }
            PhotoError::InvalidCoordinate { .. } => {
                status(Code::InvalidArgument, "invalid_coordinate", err.to_string())
            }
            PhotoError::Database(db) if platform::db::is_unavailable(db) => {
                tracing::error!(error = ?err, "database unavailable");
                status(
                    Code::Unavailable,
                    "database_unavailable",
                    "database unavailable",
                )
            }
            PhotoError::Database(_) => {
                tracing::error!(error = ?err, "database error");
                status(Code::Internal, "internal", "internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_coordinates_are_invalid_arguments_with_a_stable_code() {
        let status = tonic::Status::from(PhotoError::InvalidCoordinate {
            at: " at points[2]".into(),
            reason: "lat must be a number within -90..=90, got 91".into(),
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            platform::grpc::error_code(&status),
            Some("invalid_coordinate")
        );
        assert!(
            status.message().contains("points[2]"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn database_internals_stay_hidden() {
        let status = tonic::Status::from(PhotoError::Database(sqlx::Error::RowNotFound));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
