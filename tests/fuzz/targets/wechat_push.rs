//! A WeChat push as the gateway opens it (URL signature, outer XML, `msg_signature`, safe-mode
//! decryption, inner XML). The fuzzer cannot forge SHA-1 or AES, so the harness signs and
//! encrypts for it where a real sender would, to reach what lies behind:
//!
//! - mode 0: plain mode, a correctly signed URL, any body;
//! - mode 1: safe mode, any body whose `Encrypt` is signed correctly (any ciphertext);
//! - mode 2: safe mode, any plaintext framing (random prefix, length, message, appid),
//!   encrypted with the account's key and signed correctly;
//! - mode 3: any signatures: nothing unsigned is ever opened.

#![no_main]

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gateway::wechat::{PushCodec, PushQuery};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use wechat_protocol::sign::sha1_signature;
use wechat_protocol::xml;

// Inputs are at most 64 KiB; the cap leaves room for a panic's backtrace to be symbolised.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, 256 << 20);

const TOKEN: &str = "xintu-fuzz-token";
// The EncodingAESKey and appid of WeChat's own safe-mode example.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wxb11529c136998cb6";
const TIMESTAMP: &str = "1409304348";
const NONCE: &str = "xxxxxx";

fn codec(safe: bool) -> PushCodec {
    let key = SecretString::from(AES_KEY);
    PushCodec::new(SecretString::from(TOKEN), safe.then_some(&key), APPID)
        .unwrap_or_else(|err| unreachable!("the example key is valid: {err}"))
}

fn signed_query(ciphertext: Option<&str>) -> PushQuery {
    PushQuery {
        signature: sha1_signature(&[TOKEN, TIMESTAMP, NONCE]),
        timestamp: TIMESTAMP.into(),
        nonce: NONCE.into(),
        echostr: None,
        encrypt_type: ciphertext.map(|_| "aes".into()),
        msg_signature: ciphertext.map(|c| sha1_signature(&[TOKEN, TIMESTAMP, NONCE, c])),
    }
}

/// AES-256-CBC as WeChat uses it (key from the EncodingAESKey, IV its first 16 bytes), over
/// `plain` zero-filled to whole blocks: the fuzzer chooses the padding bytes too.
fn encrypt_raw(plain: &[u8]) -> String {
    // The EncodingAESKey's last character carries bits beyond the key, which WeChat ignores.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let key: [u8; 32] = lenient
        .decode(AES_KEY)
        .ok()
        .and_then(|k| k.try_into().ok())
        .unwrap_or_else(|| unreachable!("the example key is 32 bytes"));
    let mut buffer = plain.to_vec();
    buffer.resize(plain.len().div_ceil(16).max(1) * 16, 0);
    let length = buffer.len();
    let iv: [u8; 16] = key[..16].try_into().unwrap_or_default();
    cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut buffer, length)
        .unwrap_or_else(|_| unreachable!("whole blocks"));
    STANDARD.encode(buffer)
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            let _ = codec(false).open(&signed_query(None), data);
        }
        1 => {
            let Ok(outer) = xml::parse(data) else { return };
            let Some(ciphertext) = outer.get("Encrypt") else {
                return;
            };
            let _ = codec(true).open(&signed_query(Some(ciphertext)), data);
        }
        2 => {
            let ciphertext = encrypt_raw(data);
            let body = xml::write(&[("Encrypt", xml::Value::Text(&ciphertext))]);
            if let Ok(push) = codec(true).open(&signed_query(Some(&ciphertext)), body.as_bytes()) {
                assert!(push.encrypted);
            }
        }
        _ => {
            // Signatures, then the body, from the input: "signature\nmsg_signature\nbody".
            let mut parts = data.splitn(3, |&b| b == b'\n');
            let signature = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let msg_signature = String::from_utf8_lossy(parts.next().unwrap_or_default());
            let body = parts.next().unwrap_or_default();
            let mut query = signed_query(Some("x"));
            query.signature = signature.into_owned();
            query.msg_signature = Some(msg_signature.into_owned());
            let expected = sha1_signature(&[TOKEN, TIMESTAMP, NONCE]);
            let opened = codec(true).open(&query, body).is_ok();
            assert!(
                !opened || query.signature.eq_ignore_ascii_case(&expected),
                "opened unsigned"
            );
        }
    }
});
