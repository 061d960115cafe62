//! A WeChat Pay notify as membership reads it: the flat XML, then the `sign` check with either
//! configured sign type. Any bytes give a clear refusal; nothing verifies unless the harness
//! signed it, and a signed notify verifies whatever its fields hold.
//!
//! - even first byte: the body as received;
//! - odd first byte: the body's fields re-signed with the merchant key (a genuine notify with
//!   odd content), which must verify, and fail once any field changes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wechat_protocol::pay::{self, SignType};
use wechat_protocol::xml;

// Inputs are at most 64 KiB; the cap leaves room for a panic's backtrace to be symbolised.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, 256 << 20);

// The merchant key of WeChat Pay's own signing example.
const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fuzz_target!(|input: &[u8]| {
    let Some((&mode, body)) = input.split_first() else {
        return;
    };
    let Ok(mut fields) = xml::parse(body) else {
        return;
    };
    let sign_type = if mode & 2 == 0 {
        SignType::Md5
    } else {
        SignType::HmacSha256
    };
    if mode & 1 == 0 {
        let _ = pay::verify(&fields, KEY, sign_type);
        return;
    }
    fields.remove("sign_type");
    let signature = pay::sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        KEY,
        sign_type,
    );
    fields.insert("sign".into(), signature);
    assert!(
        pay::verify(&fields, KEY, sign_type).is_ok(),
        "a signed notify must verify"
    );
    // Changing any signed field's value breaks the signature.
    let changed = fields
        .iter()
        .find(|(name, value)| name.as_str() != "sign" && !value.is_empty())
        .map(|(name, _)| name.clone());
    if let Some(name) = changed {
        if let Some(value) = fields.get_mut(&name) {
            value.push('x');
        }
        assert!(
            pay::verify(&fields, KEY, sign_type).is_err(),
            "a changed notify verified"
        );
    }
});
