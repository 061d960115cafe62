//! The photo service's one error type, mapped to gRPC status in one place.

use platform::grpc::status;
use proto::ErrorCode;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("invalid coordinate{at}: {reason}")]
    InvalidCoordinate { at: String, reason: String },
    /// An upload the service cannot classify; `code` is the stable code for clients.
    #[error("{message}")]
    Image { code: ErrorCode, message: String },
    #[error("invalid sha256 at index {index}: a SHA-256 digest is 64 hex digits")]
    InvalidDigest { index: usize },
    #[error("the service is busy; try again shortly")]
    Overloaded,
    /// The memory for decoding images is taken by the decodes under way.
    #[error("too many large images are being decoded at once; try again shortly")]
    DecodeBusy,
    /// An edit request the service refuses; `code` is the stable code for clients.
    #[error("{message}")]
    Edit { code: ErrorCode, message: String },
    #[error("not enough credits for {needed} output image(s)")]
    InsufficientCredits { needed: i64 },
    #[error("credits could not be checked; try again shortly")]
    CreditsUnavailable,
    /// Whom a client belongs to could not be asked; nothing is handed out meanwhile.
    #[error("the membership service could not be reached; try again shortly")]
    MembershipUnavailable,
    #[error("image editing is not configured on this deployment")]
    EditsNotConfigured,
    /// A user's personal data cannot be erased while an edit of theirs has not ended: its
    /// credits are not settled yet and a worker step still needs its input.
    #[error("{running} edit(s) of the user still running; ask again once they have ended")]
    ErasureBlocked { running: usize },
    /// Unknown, or not the caller's: the same answer, so nothing leaks.
    #[error("{what} not found")]
    NotFound { code: ErrorCode, what: &'static str },
    #[error("storage failed")]
    Storage(#[from] crate::edit::storage::StorageError),
    #[error("the local model failed")]
    LocalModel(#[source] photo_model::ModelError),
    #[error("internal error: {0}")]
    Internal(String),
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

    /// Sorts a decode failure into what the client sent wrong.
    pub fn from_decode(err: photo_model::DecodeError) -> Self {
        use photo_model::DecodeError as D;
        let code = match &err {
            D::TooManyBytes { .. } => ErrorCode::PayloadTooLarge,
            D::NotAnImage => ErrorCode::NotAnImage,
            D::UnsupportedFormat { .. } => ErrorCode::UnsupportedImageFormat,
            D::TooLarge { .. } | D::OverLimits => ErrorCode::ImageTooLarge,
            D::Truncated => ErrorCode::TruncatedImage,
            D::Corrupt(_) | D::FrameLargerThanCanvas => ErrorCode::CorruptImage,
            D::Internal(_) => return Self::Internal(err.to_string()),
        };
        Self::Image {
            code,
            message: err.to_string(),
        }
    }

    /// Takes back an error shared by every caller of a single flight: the original when this
    /// is the last holder, else an equivalent (a database failure becomes an internal one).
    pub fn shared(err: std::sync::Arc<PhotoError>) -> Self {
        match std::sync::Arc::try_unwrap(err) {
            Ok(err) => err,
            Err(shared) => match shared.as_ref() {
                Self::Image { code, message } => Self::Image {
                    code: *code,
                    message: message.clone(),
                },
                Self::InvalidArgument { field, reason } => Self::InvalidArgument {
                    field: field.clone(),
                    reason: reason.clone(),
                },
                Self::Overloaded => Self::Overloaded,
                Self::DecodeBusy => Self::DecodeBusy,
                other => Self::Internal(other.to_string()),
            },
        }
    }

    /// The stable code of a client-caused error, for per-image answers in a batch; None for
    /// errors on our side, which fail the whole call.
    pub fn client_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Image { code, .. } | Self::Edit { code, .. } => Some(*code),
            Self::InvalidArgument { .. } => Some(ErrorCode::InvalidArgument),
            Self::InvalidDigest { .. } => Some(ErrorCode::InvalidDigest),
            Self::InvalidCoordinate { .. } => Some(ErrorCode::InvalidCoordinate),
            Self::Overloaded
            | Self::DecodeBusy
            | Self::InsufficientCredits { .. }
            | Self::CreditsUnavailable
            | Self::MembershipUnavailable
            | Self::EditsNotConfigured
            | Self::ErasureBlocked { .. }
            | Self::NotFound { .. }
            | Self::Storage(_)
            | Self::LocalModel(_)
            | Self::Internal(_)
            | Self::Database(_) => None,
        }
    }
}

impl From<PhotoError> for tonic::Status {
    fn from(err: PhotoError) -> Self {
        match &err {
            PhotoError::Overloaded => {
                tracing::warn!("local model queue longer than the caller's deadline; refused");
                status(Code::Unavailable, ErrorCode::Overloaded, err.to_string())
            }
            PhotoError::DecodeBusy => status(
                Code::ResourceExhausted,
                ErrorCode::DecodeBusy,
                err.to_string(),
            ),
            PhotoError::InsufficientCredits { .. } => status(
                Code::FailedPrecondition,
                ErrorCode::InsufficientCredits,
                err.to_string(),
            ),
            PhotoError::CreditsUnavailable => status(
                Code::Unavailable,
                ErrorCode::CreditsUnavailable,
                err.to_string(),
            ),
            PhotoError::MembershipUnavailable => status(
                Code::Unavailable,
                ErrorCode::MembershipUnavailable,
                err.to_string(),
            ),
            PhotoError::EditsNotConfigured => status(
                Code::Unavailable,
                ErrorCode::EditsNotConfigured,
                err.to_string(),
            ),
            PhotoError::ErasureBlocked { .. } => status(
                Code::FailedPrecondition,
                ErrorCode::ErasureBlocked,
                err.to_string(),
            ),
            PhotoError::NotFound { code, .. } => status(Code::NotFound, *code, err.to_string()),
            // Client-caused: the code of a batch's per-image answers.
            PhotoError::InvalidArgument { .. }
            | PhotoError::InvalidCoordinate { .. }
            | PhotoError::Image { .. }
            | PhotoError::InvalidDigest { .. }
            | PhotoError::Edit { .. } => status(
                Code::InvalidArgument,
                err.client_code().unwrap_or(ErrorCode::InvalidArgument),
                err.to_string(),
            ),
            PhotoError::Storage(_) => {
                tracing::error!(error = ?err, "edit storage failed");
                status(Code::Internal, ErrorCode::Internal, "internal error")
            }
            PhotoError::LocalModel(_) | PhotoError::Internal(_) => {
                tracing::error!(error = ?err, "classification failed");
                status(Code::Internal, ErrorCode::Internal, "internal error")
            }
            PhotoError::Database(db) if platform::db::is_unavailable(db) => {
                tracing::error!(error = ?err, "database unavailable");
                status(
                    Code::Unavailable,
                    ErrorCode::DatabaseUnavailable,
                    "database unavailable",
                )
            }
            PhotoError::Database(_) => {
                tracing::error!(error = ?err, "database error");
                status(Code::Internal, ErrorCode::Internal, "internal error")
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
            Some(ErrorCode::InvalidCoordinate)
        );
        assert!(
            status.message().contains("points[2]"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn image_errors_carry_their_own_code() {
        let status = tonic::Status::from(PhotoError::from_decode(
            photo_model::DecodeError::NotAnImage,
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            platform::grpc::error_code(&status),
            Some(ErrorCode::NotAnImage)
        );
        let truncated = PhotoError::from_decode(photo_model::DecodeError::Truncated);
        assert_eq!(truncated.client_code(), Some(ErrorCode::TruncatedImage));
        assert_eq!(PhotoError::Internal("x".into()).client_code(), None);
    }

    #[test]
    fn a_blocked_erasure_is_a_failed_precondition() {
        let status = tonic::Status::from(PhotoError::ErasureBlocked { running: 1 });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            platform::grpc::error_code(&status),
            Some(ErrorCode::ErasureBlocked)
        );
    }

    #[test]
    fn database_internals_stay_hidden() {
        let status = tonic::Status::from(PhotoError::Database(sqlx::Error::RowNotFound));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
