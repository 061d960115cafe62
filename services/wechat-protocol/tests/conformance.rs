//! Conformance of the Pay v2 verifier against real WeChat Pay messages taken from public SDK test
//! data (and cases derived from them), listed in `tests/conformance/pay_v2.toml`.
//!
//! Each row names the merchant's configured sign type and the verdict `pay::verify` must
//! give. Every row's document must also parse with our XML reader, keep every element it holds,
//! and keep each value exactly as the raw text says (checked by an independent naive scan).

#![allow(clippy::expect_used, clippy::panic)] // a test binary: helpers fail loudly

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use wechat_protocol::pay::{SignType, verify};

const TABLE: &str = include_str!("conformance/pay_v2.toml");

#[derive(Deserialize)]
struct Table {
    message: Vec<Message>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    name: String,
    source: String,
    kind: String,
    key: String,
    configured: String,
    verdict: String,
    why: String,
    xml: String,
    /// The document's elements in source order (real rows only).
    fields: Option<Vec<String>>,
    /// The real row a derived row was built from.
    derived_from: Option<String>,
}

fn table() -> Vec<Message> {
    toml::from_str::<Table>(TABLE)
        .expect("pay_v2.toml parses")
        .message
}

fn sign_type(name: &str) -> SignType {
    match name {
        "MD5" => SignType::Md5,
        "HMAC-SHA256" => SignType::HmacSha256,
        other => panic!("unknown configured sign type {other}"),
    }
}

fn parse(message: &Message) -> BTreeMap<String, String> {
    wechat_protocol::xml::parse(message.xml.as_bytes())
        .unwrap_or_else(|err| panic!("{}: does not parse: {err}", message.name))
}

/// The raw text of `<name>…</name>` (closing tag may carry spaces before `>`), found by plain
/// string search, with CDATA sections unwrapped and the five predefined entities decoded.
fn raw_value(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let close = format!("</{name}");
    let mut from = start;
    let end = loop {
        let at = from + xml[from..].find(&close)?;
        let rest = xml[at + close.len()..].trim_start_matches(' ');
        if rest.starts_with('>') {
            break at;
        }
        from = at + close.len();
    };
    let mut inner = &xml[start..end];
    let mut out = String::new();
    while let Some(at) = inner.find("<![CDATA[") {
        out.push_str(&decode_entities(&inner[..at]));
        let body = &inner[at + "<![CDATA[".len()..];
        let stop = body.find("]]>")?;
        out.push_str(&body[..stop]);
        inner = &body[stop + "]]>".len()..];
    }
    out.push_str(&decode_entities(inner));
    Some(out)
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[test]
fn table_is_well_formed() {
    let rows = table();
    let names: BTreeSet<&str> = rows.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), rows.len(), "names are unique");
    let mut real = 0;
    for m in &rows {
        assert!(!m.source.is_empty() && !m.why.is_empty(), "{}", m.name);
        assert!(!m.kind.is_empty(), "{}", m.name);
        sign_type(&m.configured);
        assert!(
            ["accept", "refuse", "shape-only"].contains(&m.verdict.as_str()),
            "{}: verdict {}",
            m.name,
            m.verdict
        );
        match (&m.fields, &m.derived_from) {
            (Some(_), None) => real += 1,
            (None, Some(from)) => {
                assert!(names.contains(from.as_str()), "{}: unknown {from}", m.name);
                assert!(m.source.starts_with("derived"), "{}: say so", m.name);
                assert_ne!(m.verdict, "shape-only", "{}", m.name);
            }
            _ => panic!("{}: a row is either real (fields) or derived", m.name),
        }
    }
    assert!(real >= 10, "at least ten real messages, got {real}");
}

#[test]
fn every_document_parses_and_keeps_every_field() {
    for m in table() {
        let parsed = parse(&m);
        if let Some(fields) = &m.fields {
            let listed: BTreeSet<&str> = fields.iter().map(String::as_str).collect();
            assert_eq!(
                listed.len(),
                fields.len(),
                "{}: fields listed twice",
                m.name
            );
            let got: BTreeSet<&str> = parsed.keys().map(String::as_str).collect();
            assert_eq!(got, listed, "{}: field set changed in parsing", m.name);
        }
        for (name, value) in &parsed {
            let raw = raw_value(&m.xml, name)
                .unwrap_or_else(|| panic!("{}: <{name}> not found in the raw text", m.name));
            assert_eq!(
                value, &raw,
                "{}: value of {name} changed in parsing",
                m.name
            );
        }
    }
}

#[test]
fn verdicts_hold() {
    let mut checked = 0;
    for m in table() {
        let fields = parse(&m);
        let configured = sign_type(&m.configured);
        match m.verdict.as_str() {
            "accept" => assert!(
                verify(&fields, &m.key, configured).is_ok(),
                "{} must be accepted: {}",
                m.name,
                m.why
            ),
            "refuse" => assert!(
                verify(&fields, &m.key, configured).is_err(),
                "{} must be refused: {}",
                m.name,
                m.why
            ),
            // Shape facts: the stated key (when any) verifies under neither algorithm.
            _ => {
                if !m.key.is_empty() {
                    for t in [SignType::Md5, SignType::HmacSha256] {
                        assert!(verify(&fields, &m.key, t).is_err(), "{}", m.name);
                    }
                }
                continue;
            }
        }
        checked += 1;
    }
    assert!(checked >= 30);
}

/// The fact the configured-type rule rests on: real answers signed HMAC-SHA256 carry no
/// `sign_type`, so a verifier that falls back to MD5 when the field is absent refuses them.
#[test]
fn real_hmac_answers_carry_no_sign_type() {
    let rows = table();
    let hmac_real: Vec<&Message> = rows
        .iter()
        .filter(|m| m.derived_from.is_none() && m.verdict == "accept")
        .filter(|m| m.configured == "HMAC-SHA256" && m.kind.ends_with("_answer"))
        .collect();
    assert!(hmac_real.len() >= 2);
    for m in hmac_real {
        let fields = parse(m);
        assert!(!fields.contains_key("sign_type"), "{}", m.name);
        assert!(
            verify(&fields, &m.key, SignType::Md5).is_err(),
            "{}",
            m.name
        );
    }
}

#[test]
fn raw_value_scan_handles_the_odd_cases() {
    let xml = "<xml><a><![CDATA[x]]></a><ab>1</ab ><b>p&amp;q<![CDATA[<r>]]></b></xml>";
    assert_eq!(raw_value(xml, "a").as_deref(), Some("x"));
    assert_eq!(raw_value(xml, "ab").as_deref(), Some("1"));
    assert_eq!(raw_value(xml, "b").as_deref(), Some("p&q<r>"));
    assert_eq!(raw_value(xml, "c"), None);
}
