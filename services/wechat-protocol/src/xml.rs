//! The flat `<xml><Name>value</Name>…</xml>` documents of WeChat pushes, notifies and replies.
//!
//! Parsing is defensive, as WeChat Pay's XXE advisory asks of every merchant
//! (<https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=23_5>): bodies over
//! [`MAX_BODY_BYTES`], any `<!DOCTYPE`, `<!ENTITY` or other markup declaration, unknown entity
//! references, processing instructions, duplicate fields and deep nesting are refused before
//! anything is used.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event;

/// WeChat's pushes are a few KiB; anything larger is refused unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_DEPTH: usize = 4;
const MAX_FIELDS: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("DOCTYPE, ENTITY and other declarations are not accepted")]
    Declaration,
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// A parsed document: the text of each direct child of the root `<xml>` element.
pub type Fields = BTreeMap<String, String>;

/// Parses a flat WeChat document. Nested elements (some menu events have them) are skipped;
/// only the root's direct children become fields.
pub fn parse(body: &[u8]) -> Result<Fields, XmlError> {
    parse_rooted(body, "xml")
}

/// Parses a flat document whose root element is `root` (WeChat Pay's decrypted refund details
/// are a `<root>` document), with the same defences as [`parse`].
pub fn parse_rooted(body: &[u8], root: &str) -> Result<Fields, XmlError> {
    let wrong_root = || XmlError::Malformed(format!("the root element must be <{root}>"));
    if body.len() > MAX_BODY_BYTES {
        return Err(XmlError::TooLarge);
    }
    refuse_declarations(body)?;
    let mut reader = Reader::from_reader(body);
    let mut fields = Fields::new();
    let mut depth = 0usize;
    let mut current: Option<(String, String)> = None;
    let mut root_seen = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| XmlError::Malformed(err.to_string()))?;
        match event {
            Event::Start(start) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(XmlError::Malformed("nested too deeply".into()));
                }
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                match depth {
                    1 if name == root && !root_seen => root_seen = true,
                    1 => return Err(wrong_root()),
                    2 => current = Some((name, String::new())),
                    // Deeper elements belong to a nested field; their text is skipped.
                    _ => {}
                }
            }
            Event::Empty(start) if depth == 1 => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                insert(&mut fields, name, String::new())?;
            }
            Event::Empty(_) if depth >= 1 => {}
            Event::End(_) => {
                if depth == 2
                    && let Some((name, value)) = current.take()
                {
                    insert(&mut fields, name, value)?;
                }
                if depth == 0 {
                    return Err(XmlError::Malformed("unbalanced end tag".into()));
                }
                depth -= 1;
            }
            Event::Text(text) => {
                let text = text
                    .xml_content()
                    .map_err(|err| XmlError::Malformed(err.to_string()))?;
                push_text(&mut current, depth, &text)?;
            }
            Event::CData(data) => {
                let text = data
                    .decode()
                    .map_err(|err| XmlError::Malformed(err.to_string()))?;
                push_text(&mut current, depth, &text)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = resolve_reference(&reference)?;
                push_text(&mut current, depth, &resolved.to_string())?;
            }
            Event::Decl(_) | Event::Comment(_) => {}
            Event::DocType(_) => return Err(XmlError::Declaration),
            Event::PI(_) => return Err(XmlError::Malformed("processing instruction".into())),
            Event::Empty(_) => return Err(wrong_root()),
            Event::Eof => break,
        }
    }
    if !root_seen || depth != 0 {
        return Err(XmlError::Malformed("incomplete document".into()));
    }
    Ok(fields)
}

/// Refuses `<!` markup other than comments and CDATA, before any parsing.
fn refuse_declarations(body: &[u8]) -> Result<(), XmlError> {
    let mut rest = body;
    while let Some(at) = rest.windows(2).position(|w| w == b"<!") {
        let after = &rest[at + 2..];
        if !(after.starts_with(b"[CDATA[") || after.starts_with(b"--")) {
            return Err(XmlError::Declaration);
        }
        // Skip over the CDATA section or comment: its content is text, not markup.
        let end: &[u8] = if after.starts_with(b"--") {
            b"-->"
        } else {
            b"]]>"
        };
        match after.windows(end.len()).position(|w| w == end) {
            Some(close) => rest = &after[close + end.len()..],
            None => return Err(XmlError::Malformed("unterminated section".into())),
        }
    }
    Ok(())
}

fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<char, XmlError> {
    if let Some(ch) = reference
        .resolve_char_ref()
        .map_err(|err| XmlError::Malformed(err.to_string()))?
    {
        return Ok(ch);
    }
    match reference.as_ref() {
        b"lt" => Ok('<'),
        b"gt" => Ok('>'),
        b"amp" => Ok('&'),
        b"apos" => Ok('\''),
        b"quot" => Ok('"'),
        _ => Err(XmlError::Declaration),
    }
}

fn push_text(
    current: &mut Option<(String, String)>,
    depth: usize,
    text: &str,
) -> Result<(), XmlError> {
    match (depth, current) {
        (2, Some((_, value))) => {
            value.push_str(text);
            Ok(())
        }
        // Whitespace between elements; text elsewhere is not a WeChat document.
        _ if text.trim().is_empty() => Ok(()),
        (d, _) if d > 2 => Ok(()),
        _ => Err(XmlError::Malformed("text outside a field".into())),
    }
}

fn insert(fields: &mut Fields, name: String, value: String) -> Result<(), XmlError> {
    if fields.len() >= MAX_FIELDS {
        return Err(XmlError::Malformed("too many fields".into()));
    }
    if fields.insert(name.clone(), value).is_some() {
        return Err(XmlError::Malformed(format!("duplicate field {name}")));
    }
    Ok(())
}

/// A field of a document we write.
pub enum Value<'a> {
    /// Text, written as CDATA.
    Text(&'a str),
    /// A number, written bare (WeChat writes CreateTime so).
    Number(i64),
}

/// Writes a flat `<xml>` document with the fields in the given order.
pub fn write(fields: &[(&str, Value<'_>)]) -> String {
    write_rooted("xml", fields)
}

/// Writes a flat document under the root element `root`.
pub fn write_rooted(root: &str, fields: &[(&str, Value<'_>)]) -> String {
    let mut out = format!("<{root}>");
    for (name, value) in fields {
        out.push('<');
        out.push_str(name);
        out.push('>');
        match value {
            Value::Text(text) => {
                out.push_str("<![CDATA[");
                // "]]>" cannot appear inside CDATA: close and reopen around it.
                out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
                out.push_str("]]>");
            }
            Value::Number(number) => out.push_str(&number.to_string()),
        }
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
    out.push_str("</");
    out.push_str(root);
    out.push('>');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBSCRIBE: &str = "<xml><ToUserName><![CDATA[gh_123]]></ToUserName>\n\
        <FromUserName><![CDATA[oUser]]></FromUserName>\n<CreateTime>1714036504</CreateTime>\n\
        <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\n\
        <EventKey><![CDATA[qrscene_42]]></EventKey><Ticket><![CDATA[T&1]]></Ticket></xml>";

    #[test]
    fn parses_a_subscribe_event() {
        let fields = parse(SUBSCRIBE.as_bytes()).unwrap();
        assert_eq!(fields["FromUserName"], "oUser");
        assert_eq!(fields["CreateTime"], "1714036504");
        assert_eq!(fields["EventKey"], "qrscene_42");
        assert_eq!(fields["Ticket"], "T&1");
        assert_eq!(fields.len(), 7);
    }

    #[test]
    fn resolves_predefined_and_character_references() {
        let fields = parse(b"<xml><A>a &amp; b &lt;&#x4E2D;&#25991;</A><B/></xml>").unwrap();
        assert_eq!(fields["A"], "a & b <中文");
        assert_eq!(fields["B"], "");
    }

    #[test]
    fn refuses_doctype_entities_and_xxe() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><A>&x;</A></xml>"#;
        assert_eq!(parse(xxe), Err(XmlError::Declaration));
        let laughs = br#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><xml><A>&lol2;</A></xml>"#;
        assert_eq!(parse(laughs), Err(XmlError::Declaration));
        assert_eq!(parse(b"<!doctype xml><xml/>"), Err(XmlError::Declaration));
        // An undeclared entity is refused too, not silently dropped.
        assert_eq!(
            parse(b"<xml><A>&lol;</A></xml>"),
            Err(XmlError::Declaration)
        );
        // CDATA may contain the same characters as text.
        let fields = parse(b"<xml><A><![CDATA[<!DOCTYPE x>]]></A></xml>").unwrap();
        assert_eq!(fields["A"], "<!DOCTYPE x>");
    }

    #[test]
    fn refuses_malformed_documents() {
        for body in [
            &b""[..],
            b"<xml><A>1</A>",
            b"<xml><A>1</B></xml>",
            b"<root><A>1</A></root>",
            b"<xml><A>1</A><A>2</A></xml>",
            b"<xml>text<A>1</A></xml>",
            b"<xml><A>1</A></xml><xml></xml>",
            b"<xml><?php x?></xml>",
            b"<xml><a><b><c><d>1</d></c></b></a></xml>",
        ] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(
            parse(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(XmlError::TooLarge)
        );
    }

    #[test]
    fn skips_nested_fields() {
        let fields =
            parse(b"<xml><A>1</A><ScanCodeInfo><ScanType>qr</ScanType></ScanCodeInfo></xml>")
                .unwrap();
        assert_eq!(fields["A"], "1");
        assert_eq!(fields["ScanCodeInfo"], "");
    }

    #[test]
    fn writes_what_it_parses() {
        let written = write(&[
            ("ToUserName", Value::Text("oUser")),
            ("CreateTime", Value::Number(1714036504)),
            ("Content", Value::Text("绑定成功 ]]> <b>")),
        ]);
        let fields = parse(written.as_bytes()).unwrap();
        assert_eq!(fields["ToUserName"], "oUser");
        assert_eq!(fields["CreateTime"], "1714036504");
        assert_eq!(fields["Content"], "绑定成功 ]]> <b>");
    }
}
