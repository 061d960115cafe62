//! The gateway's one error type and the one place that maps gRPC status to HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;
use serde::Serialize;
use tonic::Code;

/// An error answered to an HTTP caller as
/// `{"error":{"code":"snake_case","message":"...","request_id":"..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds after which the same request may succeed (`Retry-After`), for a busy service.
    pub retry_after: Option<u32>,
}

/// What busy answers ask a client to wait before trying again, seconds.
const BUSY_RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    /// An error with `code`, answered with the code's HTTP status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: http_status(code),
            code,
            message: message.into(),
            retry_after: retry_after(code),
        }
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::RateLimited, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    }
}

/// The HTTP status of each error code. Exhaustive on purpose: a code added to the registry
/// does not compile until it has its status here.
pub fn http_status(code: ErrorCode) -> StatusCode {
    use ErrorCode as E;
    match code {
        E::InvalidJson
        | E::InvalidQuery
        | E::InvalidMultipart
        | E::InvalidArgument
        | E::InvalidField
        | E::MissingField
        | E::UnknownField
        | E::MissingImage
        | E::EmptyImage
        | E::EmptyBatch
        | E::TooManyImages
        | E::InvalidBatchSize
        | E::InvalidMode
        | E::InvalidDigest
        | E::InvalidCoordinate
        | E::MissingFunction
        | E::UnknownFunction
        | E::MissingPrompt
        | E::InvalidParameter
        | E::MissingMask
        | E::MaskNotAllowed
        | E::MaskSizeMismatch
        | E::EmptyMask
        | E::InvalidIdempotencyKey
        | E::MalformedXml
        | E::XmlDeclarationRefused
        | E::InvalidEncryption
        | E::EncryptionModeMismatch => StatusCode::BAD_REQUEST,
        E::MissingClientToken
        | E::InvalidClientToken
        | E::NotSignedIn
        | E::OauthStateMismatch
        | E::InvalidOauthCode
        | E::AdminSignInRequired
        | E::InvalidCredentials => StatusCode::UNAUTHORIZED,
        E::ClientNotBound
        | E::InvalidSignature
        | E::StalePush
        | E::ReplayedPush
        | E::OriginNotAllowed => StatusCode::FORBIDDEN,
        E::NotFound | E::EditNotFound | E::EditResultNotFound => StatusCode::NOT_FOUND,
        E::ClientBound
        | E::MembershipActive
        | E::InsufficientCredits
        | E::HoldSettled
        | E::ReferenceConflict
        | E::NotRefundable
        | E::CreditsSpent
        | E::ErasureBlocked => StatusCode::CONFLICT,
        E::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        E::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        // Well-formed as a request, but the bytes cannot be read as a photo.
        E::NotAnImage
        | E::UnsupportedImageFormat
        | E::TruncatedImage
        | E::CorruptImage
        | E::ImageTooLarge
        | E::ImageDimensions => StatusCode::UNPROCESSABLE_ENTITY,
        E::RateLimited | E::AdminLocked => StatusCode::TOO_MANY_REQUESTS,
        // A provider's failure, not ours and not the caller's.
        E::WechatUnavailable | E::WechatQuotaExceeded | E::WechatpayUnavailable => {
            StatusCode::BAD_GATEWAY
        }
        E::UploadsBusy
        | E::DecodeBusy
        | E::Overloaded
        | E::ServiceUnavailable
        | E::DatabaseUnavailable
        | E::CreditsUnavailable
        | E::MembershipUnavailable
        | E::EditsNotConfigured
        | E::RefundsNotConfigured
        | E::AdminUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        E::ServiceTimeout => StatusCode::GATEWAY_TIMEOUT,
        E::Internal | E::ServiceTokenRefused => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Capacity, not the client's rate: nothing was done, and the same request a moment later may
/// succeed.
fn retry_after(code: ErrorCode) -> Option<u32> {
    matches!(
        code,
        ErrorCode::UploadsBusy | ErrorCode::DecodeBusy | ErrorCode::Overloaded
    )
    .then_some(BUSY_RETRY_AFTER_SECS)
}

/// HTTP status for a gRPC status that carries no error code (the grpc-gateway convention): the
/// transport failed, or a layer below the service answered.
fn uncoded_http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Ok | Code::Internal | Code::Unknown | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let error_code = platform::grpc::error_code(&status);
        // tonic reports its own client-side deadline as CANCELLED "Timeout expired": a timeout.
        let grpc_code = if status.code() == Code::Cancelled
            && error_code.is_none()
            && status.message() == "Timeout expired"
        {
            Code::DeadlineExceeded
        } else if platform::grpc::transport_failed(&status) {
            // The instance died under the call: the caller may retry (another instance answers).
            Code::Unavailable
        } else {
            status.code()
        };
        let (http, code) = match error_code {
            // A service refused the gateway's own SERVICE_TOKEN: our configuration is wrong,
            // not the caller's credentials, so the caller gets an internal error (logged below).
            Some(ErrorCode::ServiceTokenRefused) => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
            }
            Some(code) => (http_status(code), code),
            // No code from a service: the transport failed (service down, deadline).
            None => (
                uncoded_http_status(grpc_code),
                match grpc_code {
                    Code::Unavailable => ErrorCode::ServiceUnavailable,
                    Code::DeadlineExceeded => ErrorCode::ServiceTimeout,
                    _ => ErrorCode::Internal,
                },
            ),
        };
        let message = if http.is_server_error() && code == ErrorCode::Internal {
            tracing::error!(grpc_code = ?status.code(), message = status.message(), "service error");
            "internal error".to_owned()
        } else {
            status.message().to_owned()
        };
        Self {
            status: http,
            code,
            message,
            retry_after: retry_after(code),
        }
    }
}

/// Every error answer of the JSON API (the OpenAPI document's `ErrorBody`).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// Stable, snake_case; the API guide lists every code with its status. Branch on this.
    code: &'a str,
    /// For people; its wording may change.
    message: &'a str,
    /// The request's id, also in the `X-Request-Id` header: quote it when reporting a problem.
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: &self.message,
                request_id: platform::request_id::current().unwrap_or_default(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
            .extensions_mut()
            .insert(crate::recording::ErrorCode(self.code));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service instance that dies under a call (killed, out of memory): the connection closes
    /// while the request waits for its answer. Another instance can take the retry: a 503, not
    /// an internal error.
    #[tokio::test]
    async fn a_call_cut_by_a_dying_instance_is_unavailable_not_internal() {
        use proto::membership::v1::GetProfileRequest;
        use proto::membership::v1::member_service_client::MemberServiceClient;
        use tokio::io::AsyncReadExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                // Takes the connection and the request's first bytes, then dies unanswered.
                let mut received = vec![0u8; 4096];
                let _ = socket.read(&mut received).await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                drop(socket);
            }
        });
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_lazy();
        let status = MemberServiceClient::new(channel)
            .get_profile(GetProfileRequest {
                openid: "o_someone".into(),
            })
            .await
            .expect_err("nobody answered");
        let err = ApiError::from(status);
        assert_eq!(
            (err.status, err.code),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn uncoded_grpc_status_maps_to_http() {
        let table = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::OutOfRange, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 408),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
        ];
        for (code, expected) in table {
            let err = ApiError::from(tonic::Status::new(code, "no code"));
            assert_eq!(err.status.as_u16(), expected, "{code:?}");
        }
    }

    /// A service's code decides the status, whatever gRPC code carried it.
    #[test]
    fn error_codes_decide_the_status() {
        let table = [
            (Code::Unavailable, ErrorCode::DatabaseUnavailable, 503),
            (Code::Unavailable, ErrorCode::WechatUnavailable, 502),
            (Code::Unavailable, ErrorCode::WechatQuotaExceeded, 502),
            (Code::Unavailable, ErrorCode::WechatpayUnavailable, 502),
            (
                Code::FailedPrecondition,
                ErrorCode::InsufficientCredits,
                409,
            ),
            (Code::ResourceExhausted, ErrorCode::DecodeBusy, 503),
            (Code::ResourceExhausted, ErrorCode::RateLimited, 429),
            (Code::AlreadyExists, ErrorCode::MembershipActive, 409),
            (Code::InvalidArgument, ErrorCode::NotAnImage, 422),
            (Code::InvalidArgument, ErrorCode::TruncatedImage, 422),
            (Code::InvalidArgument, ErrorCode::ImageTooLarge, 422),
            (Code::InvalidArgument, ErrorCode::PayloadTooLarge, 413),
            (Code::InvalidArgument, ErrorCode::InvalidMode, 400),
            (Code::InvalidArgument, ErrorCode::InvalidDigest, 400),
            (Code::NotFound, ErrorCode::EditResultNotFound, 404),
        ];
        for (grpc, code, expected) in table {
            let err = ApiError::from(platform::grpc::status(grpc, code, "said by a service"));
            assert_eq!((err.status.as_u16(), err.code), (expected, code));
        }
    }

    /// Every code apps may see is in the API guide's table of error codes, with the status it
    /// is answered with; the admin site's and WeChat's own codes are in their sections.
    #[test]
    fn the_api_guide_lists_every_code_with_its_status() {
        use strum::IntoEnumIterator;

        // What one service answers another (photo holding credits at membership), never an app.
        const BETWEEN_SERVICES: [ErrorCode; 3] = [
            ErrorCode::HoldSettled,
            ErrorCode::ReferenceConflict,
            ErrorCode::ServiceTokenRefused,
        ];
        let guide = include_str!("../../docs/api.md");
        let table = guide
            .split("### Error codes")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the guide's error-code table");
        let mut listed = std::collections::HashMap::new();
        for row in table
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| status"))
        {
            let mut cells = row.split('|').map(str::trim).skip(1);
            let Some(Ok(status)) = cells.next().map(str::parse::<u16>) else {
                continue;
            };
            for code in cells.next().unwrap_or_default().split(", ") {
                listed.insert(code.trim_matches('`').to_owned(), status);
            }
        }
        for code in ErrorCode::iter() {
            let name = code.as_str();
            match listed.get(name) {
                Some(&status) => assert_eq!(status, http_status(code).as_u16(), "{name}"),
                None => assert!(
                    guide.contains(&format!("{} {name}`", http_status(code).as_u16()))
                        || guide.contains(&format!("`{name}`"))
                        || BETWEEN_SERVICES.contains(&code),
                    "{name} is not in docs/api.md"
                ),
            }
        }
        for name in listed.keys() {
            assert!(
                name.parse::<ErrorCode>().is_ok(),
                "the guide lists {name}, no code"
            );
        }
    }

    #[test]
    fn service_codes_pass_through_and_internals_stay_hidden() {
        let status = platform::grpc::status(
            Code::Unauthenticated,
            ErrorCode::InvalidClientToken,
            "bad token",
        );
        let err = ApiError::from(status);
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert_eq!(err.code, ErrorCode::InvalidClientToken);
        assert_eq!(err.message, "bad token");
        let err = ApiError::from(tonic::Status::internal("sql: table x missing"));
        assert_eq!(err.code, ErrorCode::Internal);
        assert_eq!(err.message, "internal error");
        let err = ApiError::from(tonic::Status::cancelled("Timeout expired"));
        assert_eq!(err.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(err.code, ErrorCode::ServiceTimeout);
        let err = ApiError::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code, ErrorCode::ServiceUnavailable);
        assert_eq!(err.retry_after, None);
        // The gateway's own service token refused: not the caller's fault, and not a 401.
        let refused = platform::grpc::status(
            Code::Unauthenticated,
            ErrorCode::ServiceTokenRefused,
            "this service answers only callers with the service token",
        );
        let err = ApiError::from(refused);
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code, ErrorCode::Internal);
        assert_eq!(err.message, "internal error");
    }

    #[test]
    fn busy_services_ask_for_a_retry_after_a_second() {
        let status = platform::grpc::status(Code::ResourceExhausted, ErrorCode::DecodeBusy, "busy");
        let response = ApiError::from(status).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ApiError::new(ErrorCode::UploadsBusy, "busy").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ApiError::new(ErrorCode::InvalidMode, "no").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
