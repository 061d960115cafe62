//! The flat XML of every WeChat push and pay notify, with its DOCTYPE / ENTITY pre-scan: any
//! bytes give fields or a clear error. What is accepted is flat and bounded, and survives a
//! write → parse round trip of its fields.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wechat_protocol::xml::{self, MAX_BODY_BYTES, Value, XmlError};

// Inputs are at most 64 KiB; the cap leaves room for a panic's backtrace to be symbolised.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, 256 << 20);

fuzz_target!(|body: &[u8]| {
    let parsed = xml::parse(body);
    if body.len() > MAX_BODY_BYTES {
        assert_eq!(parsed, Err(XmlError::TooLarge));
        return;
    }
    let Ok(fields) = parsed else { return };
    assert!(fields.len() <= 256, "at most 256 fields");
    let pairs: Vec<(&str, Value<'_>)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), Value::Text(value)))
        .collect();
    // Names a writer could not have produced (from a lenient read of odd markup) are not
    // expected to come back, nor a document the CDATA made too large; everything else must.
    let written = xml::write(&pairs);
    if written.len() <= MAX_BODY_BYTES && fields.keys().all(|name| is_plain_name(name)) {
        let again = xml::parse(written.as_bytes()).ok();
        assert_eq!(
            again.as_ref(),
            Some(&fields),
            "write then parse changed the fields"
        );
    }
});

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
