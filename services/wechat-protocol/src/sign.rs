//! Push signatures: SHA-1 over the sorted, concatenated parts, compared in constant time (WeChat's
//! server URL check and message push).

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// `hex(sha1(concat(sort(parts))))`: `signature` over (token, timestamp, nonce), and
/// `msg_signature` over (token, timestamp, nonce, Encrypt).
pub fn sha1_signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Compares a presented signature with the expected one in constant time (case-insensitive hex).
pub fn signature_matches(expected: &str, presented: &str) -> bool {
    let presented = presented.to_ascii_lowercase();
    expected.len() == presented.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The official documentation's example (developers.weixin.qq.com,
    // doc/oplatform/Mobile_App/WeChat_Login/message_push.html).
    #[test]
    fn url_signature_v1() {
        let sig = sha1_signature(&["AAAAA", "1714036504", "1514711492"]);
        assert_eq!(sig, "f464b24fc39322e44b38aa78f5edd27bd1441696");
        let sig = sha1_signature(&["AAAAA", "1714037059", "486452656"]);
        assert_eq!(sig, "899cf89e464efb63f54ddac96b0a0a235f53aa78");
    }

    // wechatpy/wechatpy tests/test_utils.py.
    #[test]
    fn url_signature_v2() {
        let expected = sha1_signature(&["test", "1410685589", "test"]);
        assert!(signature_matches(
            &expected,
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"
        ));
        assert!(signature_matches(
            &expected,
            "F21891DE399B4E33A1A93C9A7B8A8FFFB5A443FF"
        ));
        assert!(!signature_matches(
            &expected,
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"
        ));
        assert!(!signature_matches(&expected, ""));
    }

    // Computed from the official safe-mode sample (the Encrypt of crypto.rs's test): its
    // msg_signature.
    #[test]
    fn msg_signature_v3() {
        let encrypt = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==";
        let sig = sha1_signature(&["pamtest", "1409304348", "xxxxxx", encrypt]);
        assert_eq!(sig, "82c962d39941aa48552f90ef55aa323dc620cc10");
    }
}
