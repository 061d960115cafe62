//! Every stable error code of the API: what a service puts on a failed call (the `x-error-code`
//! metadata of its gRPC status) and what the gateway answers HTTP callers in `error.code`.
//!
//! One enum, so a service cannot send a code the gateway does not know: the gateway maps each
//! variant to its HTTP status in one exhaustive `match`, and a new variant does not compile until
//! it has a status there. Apps program against these names; never rename one.

use strum::{Display, EnumIter, EnumString, IntoStaticStr};

/// A stable error code; its wire form is the snake_case name (`InvalidArgument` is
/// `invalid_argument`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Display, EnumString, IntoStaticStr, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    // The request as a whole does not parse.
    InvalidJson,
    InvalidQuery,
    InvalidMultipart,
    UnsupportedMediaType,
    PayloadTooLarge,
    /// A field is out of range; the message names it.
    InvalidArgument,
    InvalidField,
    MissingField,
    UnknownField,

    // Photo and location input.
    MissingImage,
    EmptyImage,
    EmptyBatch,
    TooManyImages,
    InvalidBatchSize,
    InvalidMode,
    InvalidDigest,
    InvalidCoordinate,

    // Edit input.
    MissingFunction,
    UnknownFunction,
    MissingPrompt,
    InvalidParameter,
    MissingMask,
    MaskNotAllowed,
    MaskSizeMismatch,
    EmptyMask,
    InvalidIdempotencyKey,

    // Bytes that cannot be read as a photo, or a photo too large to decode.
    NotAnImage,
    UnsupportedImageFormat,
    TruncatedImage,
    CorruptImage,
    ImageTooLarge,
    /// Outside the sizes a model takes.
    ImageDimensions,

    // An app's client and the member page's session.
    MissingClientToken,
    InvalidClientToken,
    /// The client has not completed binding.
    ClientNotBound,
    /// A QR code asked for a bound client without its current token.
    ClientBound,
    NotSignedIn,
    OauthStateMismatch,
    InvalidOauthCode,

    // Unknown, or not the caller's.
    NotFound,
    EditNotFound,
    EditResultNotFound,

    // The request conflicts with what is stored.
    MembershipActive,
    InsufficientCredits,
    /// A credit hold already captured or released.
    HoldSettled,
    /// A reference used before for a different request.
    ReferenceConflict,
    /// Only a paid order with money left on it can be refunded.
    NotRefundable,
    /// A refund would take back credits the user has already spent.
    CreditsSpent,
    /// Personal data cannot be erased yet: an order awaits payment, a refund is on its way or an
    /// edit is running. Erasure may be asked again once it has settled.
    ErasureBlocked,

    // WeChat's pushes to us.
    InvalidSignature,
    StalePush,
    ReplayedPush,
    MalformedXml,
    XmlDeclarationRefused,
    InvalidEncryption,
    EncryptionModeMismatch,

    // The admin site.
    AdminSignInRequired,
    InvalidCredentials,
    AdminLocked,
    OriginNotAllowed,
    AdminUnavailable,

    /// Over an allowance.
    RateLimited,

    // A provider failed or refused.
    WechatUnavailable,
    WechatQuotaExceeded,
    WechatpayUnavailable,

    // At capacity: nothing was done, the same request a moment later may succeed.
    UploadsBusy,
    DecodeBusy,
    Overloaded,

    // A dependency is down, or a feature is not configured.
    ServiceUnavailable,
    DatabaseUnavailable,
    CreditsUnavailable,
    MembershipUnavailable,
    EditsNotConfigured,
    /// Refunds need the merchant's client certificate, which is not configured.
    RefundsNotConfigured,

    /// A service did not answer within its deadline.
    ServiceTimeout,
    /// Our fault; logged with the request id.
    Internal,
    /// A service refused the caller's service token: the deployment's configuration is wrong.
    ServiceTokenRefused,
}

impl ErrorCode {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn wire_names_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::iter() {
            let name = code.as_str();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(seen.insert(name), "{name} twice");
            assert_eq!(name.parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), name);
        }
        // Names the API has always used, spelled as apps know them.
        assert_eq!(ErrorCode::InvalidOauthCode.as_str(), "invalid_oauth_code");
        assert_eq!(
            ErrorCode::WechatpayUnavailable.as_str(),
            "wechatpay_unavailable"
        );
        assert_eq!(ErrorCode::ImageDimensions.as_str(), "image_dimensions");
        assert!("Internal".parse::<ErrorCode>().is_err());
        assert!("no_such_code".parse::<ErrorCode>().is_err());
    }
}
