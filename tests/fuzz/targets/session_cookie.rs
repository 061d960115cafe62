//! The member page's session cookie as the gateway reads it: any Cookie header gives the
//! signed-in openid only when our key signed that exact value and it has not expired.
//!
//! - even first byte: the header as sent;
//! - odd first byte: "openid|expires" from the input, signed with our key (the harness plays
//!   the gateway), then one byte of the sent cookie changed when the input asks: a genuine
//!   cookie is read back exactly, a changed one never.

#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use axum_extra::extract::cookie::{Cookie, Key};
use gateway::session::{SESSION_COOKIE, signed_in_openid};
use libfuzzer_sys::fuzz_target;

// Inputs are at most 64 KiB; the cap leaves room for a panic's backtrace to be symbolised.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, 256 << 20);

const NOW: i64 = 1_800_000_000;

fn key() -> Key {
    Key::derive_from(b"xintu fuzz session key: at least sixty-four bytes long, for derivation")
}

fn cookie_header(cookie: &[u8]) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, HeaderValue::from_bytes(cookie).ok()?);
    Some(headers)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Some(headers) = cookie_header(data) {
            // The fuzzer cannot sign, so nothing it sends is a session.
            assert_eq!(signed_in_openid(&headers, key(), NOW), None);
        }
        return;
    }
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    // What the gateway puts in a session: an openid and a number, in cookie-safe characters.
    if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b";,\"\\%".contains(&b))
    {
        return;
    }
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&key())
        .add(Cookie::new(SESSION_COOKIE, value.to_owned()));
    let Some(signed) = jar.get(SESSION_COOKIE) else {
        return;
    };
    let sent = format!("{SESSION_COOKIE}={}", signed.value());
    let Some(headers) = cookie_header(sent.as_bytes()) else {
        return;
    };
    let expected = value.rsplit_once('|').and_then(|(openid, expires)| {
        let expires: i64 = expires.parse().ok()?;
        (!openid.is_empty() && expires > NOW).then(|| openid.to_owned())
    });
    assert_eq!(signed_in_openid(&headers, key(), NOW), expected);
    // Flip one byte of the signed value (chosen by the mode byte): never accepted.
    let mut tampered = sent.into_bytes();
    let at = SESSION_COOKIE.len()
        + 1
        + usize::from(mode >> 1) % (tampered.len() - SESSION_COOKIE.len() - 1);
    tampered[at] ^= 0x01;
    if let Some(changed) = cookie_header(&tampered) {
        let read = signed_in_openid(&changed, key(), NOW);
        assert_eq!(read, None, "a changed cookie was read");
    }
});
