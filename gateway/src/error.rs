//! The gateway's one error type and the one place that maps gRPC status to HTTP.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;

/// An error answered to an HTTP caller as
/// `{"error":{"code":"snake_case","message":"...","request_id":"..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Seconds after which the same request may succeed (`Retry-After`), for a busy service.
    pub retry_after: Option<u32>,
}

/// The codes of a service too busy for the request right now; nothing was done, and the same
/// request a little later may succeed.
const BUSY_CODES: [&str; 3] = ["overloaded", "decode_busy", "uploads_busy"];
/// What busy answers ask a client to wait before trying again, seconds.
const BUSY_RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            retry_after: BUSY_CODES.contains(&code).then_some(BUSY_RETRY_AFTER_SECS),
        }
    }

    /// 503 with `Retry-After`: the request was refused before anything was done because the
    /// gateway or a service is at capacity.
    pub fn busy(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }
}

/// HTTP status for a gRPC code (the grpc-gateway convention), except where a service's stable
/// error code says more: provider failures are 502, not 503.
pub fn http_status(code: Code, error_code: Option<&str>) -> StatusCode {
    match (code, error_code) {
        (
            _,
            Some(
                "wechat_unavailable"
                | "wechat_quota_exceeded"
                | "wechatpay_unavailable"
                | "provider_unavailable",
            ),
        ) => StatusCode::BAD_GATEWAY,
        (_, Some("insufficient_credits")) => StatusCode::CONFLICT,
        // Capacity, not the client's rate: the same request may succeed in a moment.
        (_, Some("decode_busy" | "uploads_busy")) => StatusCode::SERVICE_UNAVAILABLE,
        // An upload that is well-formed as a request but cannot be read as a photo.
        (
            _,
            Some(
                "not_an_image"
                | "unsupported_image_format"
                | "truncated_image"
                | "corrupt_image"
                | "image_too_large"
                | "image_dimensions",
            ),
        ) => StatusCode::UNPROCESSABLE_ENTITY,
        (_, Some("payload_too_large")) => StatusCode::PAYLOAD_TOO_LARGE,
        (Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange, _) => {
            StatusCode::BAD_REQUEST
        }
        (Code::Unauthenticated, _) => StatusCode::UNAUTHORIZED,
        (Code::PermissionDenied, _) => StatusCode::FORBIDDEN,
        (Code::NotFound, _) => StatusCode::NOT_FOUND,
        (Code::AlreadyExists | Code::Aborted, _) => StatusCode::CONFLICT,
        (Code::ResourceExhausted, _) => StatusCode::TOO_MANY_REQUESTS,
        (Code::Cancelled, _) => StatusCode::REQUEST_TIMEOUT,
        (Code::Unimplemented, _) => StatusCode::NOT_IMPLEMENTED,
        (Code::Unavailable, _) => StatusCode::SERVICE_UNAVAILABLE,
        (Code::DeadlineExceeded, _) => StatusCode::GATEWAY_TIMEOUT,
        (Code::Ok | Code::Internal | Code::Unknown | Code::DataLoss, _) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let error_code = platform::grpc::error_code(&status).map(str::to_owned);
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
        // A service refused the gateway's own SERVICE_TOKEN: our configuration is wrong, not
        // the caller's credentials, so the caller gets an internal error (logged below).
        let (grpc_code, error_code) =
            if error_code.as_deref() == Some(platform::grpc::SERVICE_TOKEN_REFUSED) {
                (Code::Internal, None)
            } else {
                (grpc_code, error_code)
            };
        let http = http_status(grpc_code, error_code.as_deref());
        let code = match error_code {
            Some(code) => Cow::Owned(code),
            // No code from a service: the transport failed (service down, deadline).
            None => Cow::Borrowed(match grpc_code {
                Code::Unavailable => "service_unavailable",
                Code::DeadlineExceeded => "service_timeout",
                _ => "internal",
            }),
        };
        let message = if http.is_server_error() && code == "internal" {
            tracing::error!(grpc_code = ?status.code(), message = status.message(), "service error");
            "internal error".to_owned()
        } else {
            status.message().to_owned()
        };
        let retry_after = BUSY_CODES
            .contains(&code.as_ref())
            .then_some(BUSY_RETRY_AFTER_SECS);
        Self {
            status: http,
            code,
            message,
            retry_after,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    request_id: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: &self.code,
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
            .insert(crate::recording::ErrorCode(self.code.into_owned()));
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
            (err.status, err.code.as_ref()),
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            "{}",
            err.message
        );
    }

    #[test]
    fn grpc_codes_map_to_http() {
        let table = [
            (Code::InvalidArgument, None, 400),
            (Code::FailedPrecondition, None, 400),
            (Code::OutOfRange, None, 400),
            (Code::Unauthenticated, None, 401),
            (Code::PermissionDenied, None, 403),
            (Code::NotFound, None, 404),
            (Code::AlreadyExists, None, 409),
            (Code::Aborted, None, 409),
            (Code::ResourceExhausted, None, 429),
            (Code::Cancelled, None, 408),
            (Code::Unimplemented, None, 501),
            (Code::Unavailable, None, 503),
            (Code::Unavailable, Some("database_unavailable"), 503),
            (Code::Unavailable, Some("wechat_unavailable"), 502),
            (Code::Unavailable, Some("wechat_quota_exceeded"), 502),
            (Code::Unavailable, Some("wechatpay_unavailable"), 502),
            (Code::FailedPrecondition, Some("insufficient_credits"), 409),
            (Code::ResourceExhausted, Some("decode_busy"), 503),
            (Code::ResourceExhausted, Some("rate_limited"), 429),
            (Code::AlreadyExists, Some("membership_active"), 409),
            (Code::InvalidArgument, Some("not_an_image"), 422),
            (Code::InvalidArgument, Some("truncated_image"), 422),
            (Code::InvalidArgument, Some("image_too_large"), 422),
            (Code::InvalidArgument, Some("payload_too_large"), 413),
            (Code::InvalidArgument, Some("invalid_mode"), 400),
            (Code::InvalidArgument, Some("invalid_digest"), 400),
            (Code::DeadlineExceeded, None, 504),
            (Code::Internal, None, 500),
            (Code::Unknown, None, 500),
            (Code::DataLoss, None, 500),
        ];
        for (code, error_code, expected) in table {
            assert_eq!(
                http_status(code, error_code).as_u16(),
                expected,
                "{code:?} {error_code:?}"
            );
        }
    }

    #[test]
    fn service_codes_pass_through_and_internals_stay_hidden() {
        let status =
            platform::grpc::status(Code::Unauthenticated, "invalid_client_token", "bad token");
        let err = ApiError::from(status);
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        assert_eq!(err.code, "invalid_client_token");
        assert_eq!(err.message, "bad token");
        let err = ApiError::from(tonic::Status::internal("sql: table x missing"));
        assert_eq!(err.code, "internal");
        assert_eq!(err.message, "internal error");
        let err = ApiError::from(tonic::Status::cancelled("Timeout expired"));
        assert_eq!(err.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(err.code, "service_timeout");
        let err = ApiError::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code, "service_unavailable");
        assert_eq!(err.retry_after, None);
        // The gateway's own service token refused: not the caller's fault, and not a 401.
        let refused = platform::grpc::status(
            Code::Unauthenticated,
            platform::grpc::SERVICE_TOKEN_REFUSED,
            "this service answers only callers with the service token",
        );
        let err = ApiError::from(refused);
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.code, "internal");
        assert_eq!(err.message, "internal error");
    }

    #[test]
    fn busy_services_ask_for_a_retry_after_a_second() {
        let status = platform::grpc::status(Code::ResourceExhausted, "decode_busy", "busy");
        let response = ApiError::from(status).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ApiError::busy("uploads_busy", "busy").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ApiError::bad_request("invalid_mode", "no").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
