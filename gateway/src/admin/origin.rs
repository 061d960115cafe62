//! State-changing admin calls come only from the admin site itself.
//!
//! The session cookie is SameSite=Strict, but a browser still sends it with requests from another
//! site on the same registrable domain, and from a page of ours that an attacker could make
//! misbehave. Browsers send `Origin` with every POST (and `Referer` where a policy drops it), so
//! a state-changing call is refused (403 `origin_not_allowed`, nothing changed) when:
//! - its `Origin` (or, absent, `Referer`) names another origin than the admin site's own: the
//!   request's own host (`Host`, which our edges pass on) on https (or http where cookies are not
//!   `Secure`), or one of `admin_allowed_origins`;
//! - it carries neither header but does carry the admin cookie: a browser always names the
//!   origin, so this is not the admin site (a tool without a session has nothing to abuse, which
//!   keeps sign-in open to scripts).

use axum::extract::{Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, REFERER};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use proto::ErrorCode;

use crate::AppState;
use crate::error::ApiError;

/// An origin as browsers name it: scheme, host and port (the scheme's default when not given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteOrigin {
    scheme: &'static str,
    host: String,
    port: u16,
}

/// Parses `scheme://host[:port]` (anything after the authority, as in a Referer, is ignored).
/// Only http and https name a site; `null`, other schemes and user info are not origins.
pub fn parse_origin(raw: &str) -> Option<SiteOrigin> {
    let uri: Uri = raw.trim().parse().ok()?;
    let (scheme, default_port) = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
        "http" => ("http", 80),
        "https" => ("https", 443),
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some(SiteOrigin {
        scheme,
        host: authority.host().to_ascii_lowercase(),
        port: authority.port_u16().unwrap_or(default_port),
    })
}

/// Parses `admin_allowed_origins` (comma-separated); the error is the first entry that is not an
/// origin.
pub fn parse_allowed(list: &str) -> Result<Vec<SiteOrigin>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| parse_origin(entry).ok_or_else(|| entry.to_owned()))
        .collect()
}

/// The middleware on the admin routes.
pub async fn require_admin_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    match check(&state, request.headers(), request.uri()) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

fn check(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    let named = headers
        .get(ORIGIN)
        .or_else(|| headers.get(REFERER))
        .map(|value| value.to_str().ok().and_then(parse_origin));
    let allowed = match named {
        Some(Some(origin)) => is_own(state, headers, uri, &origin),
        // A header that names no origin (`Origin: null` from a sandboxed or privacy-redirected
        // page) is not the admin site.
        Some(None) => false,
        None => !carries_admin_cookie(headers),
    };
    if allowed {
        Ok(())
    } else {
        tracing::warn!("admin call refused: not from the admin site's origin");
        Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            "admin changes are accepted only from the admin site",
        ))
    }
}

fn is_own(state: &AppState, headers: &HeaderMap, uri: &Uri, origin: &SiteOrigin) -> bool {
    let configured = parse_allowed(&state.cfg.admin_allowed_origins).unwrap_or_default();
    if configured.contains(origin) {
        return true;
    }
    let secure_only = state.cfg.session_cookie_secure;
    if secure_only && origin.scheme != "https" {
        return false;
    }
    let host = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<Authority>().ok())
        .or_else(|| uri.authority().cloned());
    host.is_some_and(|host| {
        let default_port = if origin.scheme == "https" { 443 } else { 80 };
        host.host().eq_ignore_ascii_case(&origin.host)
            && host.port_u16().unwrap_or(default_port) == origin.port
    })
}

fn carries_admin_cookie(headers: &HeaderMap) -> bool {
    let prefix = format!("{}=", super::ADMIN_COOKIE);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .any(|pair| pair.trim_start().starts_with(&prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        let origin = parse_origin("https://Admin.Xintuxiangce.top").unwrap();
        assert_eq!(
            origin,
            parse_origin("https://admin.xintuxiangce.top:443").unwrap()
        );
        assert_eq!(
            parse_origin("https://admin.xintuxiangce.top/index.html?x=1"),
            Some(origin.clone())
        );
        assert_ne!(
            parse_origin("http://admin.xintuxiangce.top"),
            Some(origin.clone())
        );
        assert_ne!(
            parse_origin("https://admin.xintuxiangce.top:8443"),
            Some(origin)
        );
        for not_an_origin in [
            "null",
            "",
            "file:///etc/passwd",
            "https://user@evil.example",
            "/relative",
        ] {
            assert_eq!(parse_origin(not_an_origin), None, "{not_an_origin}");
        }
    }

    #[test]
    fn the_allowed_list_refuses_what_is_not_an_origin() {
        assert_eq!(parse_allowed("").unwrap(), vec![]);
        assert_eq!(
            parse_allowed(" https://a.example , http://b.example:8080 ")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_allowed("https://a.example,admin.example"),
            Err("admin.example".to_owned())
        );
    }

    #[test]
    fn only_the_admin_cookie_counts() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "xintu_session=abc; other=1".parse().unwrap());
        assert!(!carries_admin_cookie(&headers));
        headers.append(COOKIE, "a=b; xintu_admin=signed".parse().unwrap());
        assert!(carries_admin_cookie(&headers));
    }
}
