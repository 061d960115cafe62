//! Properties of the wire formats over generated inputs: what we write, we (and WeChat) read back
//! unchanged; what we sign verifies, and any change to a signed value does not; nothing a peer
//! can send makes a parser panic.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use wechat_protocol::crypto::{CryptoError, MessageCrypto};
use wechat_protocol::pay::{SignType, VerifyError, sign, verify};
use wechat_protocol::xml::{self, Value, XmlError};

/// An official-account key (43 base64 characters) and appid, as the console gives them.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APPID: &str = "wx5a1dbox0000000001";
const PAY_KEY: &str = "192006250b4c09247ec02edce69f6a2d";

/// Element names as WeChat uses them (ASCII letters, digits and underscores, not starting
/// with a digit), never the root's name.
fn field_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,23}".prop_filter("not the root", |name| name != "xml")
}

/// Text as a peer may put in a field: any characters XML 1.0 allows, including markup
/// characters, "]]>" and CJK.
fn field_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_filter("XML 1.0 characters", |c| {
                matches!(*c, '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
            }),
            1 => prop::sample::select(vec!['<', '>', '&', ']', '"', '\'', '中', '文']),
            1 => Just(']'),
        ],
        0..64,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn document() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(field_name(), field_text(), 0..24)
}

fn sign_type() -> impl Strategy<Value = SignType> {
    prop_oneof![Just(SignType::Md5), Just(SignType::HmacSha256)]
}

fn written(fields: &BTreeMap<String, String>) -> String {
    let values: Vec<(&str, Value<'_>)> = fields
        .iter()
        .map(|(name, text)| (name.as_str(), Value::Text(text)))
        .collect();
    xml::write(&values)
}

proptest! {
    #[test]
    fn xml_written_is_read_back_unchanged(fields in document()) {
        prop_assert_eq!(xml::parse(written(&fields).as_bytes()).unwrap(), fields);
    }

    #[test]
    fn numbers_are_read_back_as_written(name in field_name(), number in any::<i64>()) {
        let document = xml::write(&[(name.as_str(), Value::Number(number))]);
        prop_assert_eq!(&xml::parse(document.as_bytes()).unwrap()[&name], &number.to_string());
    }

    #[test]
    fn xml_parse_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = xml::parse(&body);
    }

    #[test]
    fn a_declaration_anywhere_is_refused(
        fields in document(),
        at in any::<prop::sample::Index>(),
        declaration in prop::sample::select(vec![
            "<!DOCTYPE xml [<!ENTITY e \"x\">]>", "<!ENTITY e SYSTEM \"file:///etc/passwd\">",
            "<!doctype xml>", "<!ELEMENT a ANY>",
        ]),
    ) {
        // Each field as written, then the declaration between two of them (outside any CDATA).
        let mut parts: Vec<String> = fields
            .iter()
            .map(|(name, text)| {
                let one = xml::write(&[(name.as_str(), Value::Text(text))]);
                one["<xml>".len()..one.len() - "</xml>".len()].to_owned()
            })
            .collect();
        parts.insert(at.index(parts.len() + 1), declaration.to_owned());
        let body = format!("<xml>{}</xml>", parts.concat());
        prop_assert_eq!(xml::parse(body.as_bytes()), Err(XmlError::Declaration));
    }

    #[test]
    fn a_signed_document_verifies_after_the_wire(fields in document(), kind in sign_type()) {
        let mut fields = fields;
        fields.remove("sign");
        fields.remove("sign_type");
        let signature = sign(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())), PAY_KEY, kind);
        fields.insert("sign".into(), signature);
        let received = xml::parse(written(&fields).as_bytes()).unwrap();
        prop_assert_eq!(verify(&received, PAY_KEY, kind), Ok(()));
    }

    #[test]
    fn a_changed_value_or_key_fails_verification(
        fields in document().prop_filter("a signed value", |f| {
            f.iter().any(|(k, v)| !v.is_empty() && k != "sign" && k != "sign_type")
        }),
        pick in any::<prop::sample::Index>(),
        kind in sign_type(),
    ) {
        let mut fields = fields;
        fields.remove("sign");
        fields.remove("sign_type");
        let signature = sign(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())), PAY_KEY, kind);
        fields.insert("sign".into(), signature);
        prop_assert_eq!(
            verify(&fields, "another-merchant-key-0123456789ab", kind),
            Err(VerifyError::BadSign)
        );
        let signed: Vec<String> = fields
            .iter()
            .filter(|(k, v)| !v.is_empty() && *k != "sign")
            .map(|(k, _)| k.clone())
            .collect();
        let name = &signed[pick.index(signed.len())];
        let mut tampered = fields.clone();
        tampered.get_mut(name).unwrap().push('0');
        prop_assert_eq!(verify(&tampered, PAY_KEY, kind), Err(VerifyError::BadSign));
    }

    #[test]
    fn a_message_encrypted_for_us_decrypts_unchanged(message in field_text()) {
        let crypto = MessageCrypto::new(AES_KEY, APPID).unwrap();
        prop_assert_eq!(crypto.decrypt(&crypto.encrypt(&message)).unwrap(), message);
    }

    #[test]
    fn a_message_for_another_app_is_refused(message in field_text()) {
        let theirs = MessageCrypto::new(AES_KEY, "wx0000000000000other").unwrap();
        let ours = MessageCrypto::new(AES_KEY, APPID).unwrap();
        prop_assert_eq!(ours.decrypt(&theirs.encrypt(&message)), Err(CryptoError::WrongAppId));
    }

    #[test]
    fn decrypting_anything_never_panics(encrypted in "[A-Za-z0-9+/=]{0,256}") {
        let _ = MessageCrypto::new(AES_KEY, APPID).unwrap().decrypt(&encrypted);
    }
}
