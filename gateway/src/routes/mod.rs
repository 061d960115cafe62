//! HTTP routes, one module per area. Handlers adapt HTTP to gRPC and nothing more.

pub mod account;
pub mod admin;
pub mod auth;
pub mod devices;
pub mod health;
pub mod location;
pub mod member;
pub mod openapi;
pub mod payment;
pub mod personal_data;
pub mod photos;
pub mod wechat;

/// Formats unix seconds as RFC 3339 (empty for an impossible time).
pub(crate) fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|at| at.to_rfc3339())
        .unwrap_or_default()
}

/// Unix seconds as RFC 3339, or None for 0 (a time that has not happened: never paid, never a
/// member).
pub(crate) fn rfc3339_if_set(unix: i64) -> Option<String> {
    (unix > 0).then(|| rfc3339(unix))
}

/// A service's text, or None where it sent the empty text (proto3's "not set": no openid yet,
/// no failure, no name at that level).
pub(crate) fn text_if_set(text: String) -> Option<String> {
    Some(text).filter(|text| !text.is_empty())
}
