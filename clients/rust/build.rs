//! Generates the client from `../openapi.json`, the gateway's own document (a gateway test fails
//! when the committed copy is older than the gateway, so the client follows every change).
//!
//! progenitor reads OpenAPI 3.0 and the gateway writes 3.1; `downgrade` rewrites the few 3.1
//! forms the document uses into their 3.0 equivalents. Operations the generator cannot express
//! (multipart uploads) are written by hand in `src/upload.rs`, and the ones WeChat and WeChat Pay
//! call are not for clients: each is listed in `NOT_GENERATED`, and the build fails on any other
//! operation the generator would have to skip, or on a listed one the document no longer has.

use std::error::Error;
use std::path::PathBuf;

use serde_json::{Map, Value};

const DOCUMENT: &str = "../openapi.json";

/// Operations the generated client leaves out, and where they are instead.
const NOT_GENERATED: &[(&str, &str)] = &[
    (
        "classify",
        "a multipart upload: Client::classify in src/upload.rs",
    ),
    (
        "classify_batch",
        "a multipart upload: Client::classify_batch",
    ),
    ("submit_edit", "a multipart upload: Client::submit_edit"),
    ("wechat_verify_url", "called by WeChat"),
    ("wechat_push", "called by WeChat"),
    ("pay_notify", "called by WeChat Pay"),
    ("refund_notify", "called by WeChat Pay"),
    ("pay_notify_v3", "called by WeChat Pay"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={DOCUMENT}");
    let mut document: Value = serde_json::from_str(&std::fs::read_to_string(DOCUMENT)?)?;
    leave_out_operations(&mut document)?;
    downgrade(&mut document);
    document["openapi"] = Value::from("3.0.3");
    let spec: openapiv3::OpenAPI = serde_json::from_value(document)?;

    let settings = progenitor::GenerationSettings::default()
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged)
        .clone();
    let tokens = progenitor::Generator::new(&settings).generate_tokens(&spec)?;
    let code = prettyplease::unparse(&syn::parse2(tokens)?);
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR")?).join("generated.rs"),
        code,
    )?;
    Ok(())
}

/// Removes the operations in [`NOT_GENERATED`]; fails on a listed one that is gone, and on an
/// unlisted one the generator cannot express (a body that is not JSON) or that is not for
/// clients (tagged "called by …").
fn leave_out_operations(document: &mut Value) -> Result<(), Box<dyn Error>> {
    let mut unlisted = Vec::new();
    let mut left_out = Vec::new();
    // The schemas of the left-out uploads' forms: as generated types they would offer a photo
    // as a `String`.
    let mut forms = Vec::new();
    let paths = document
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .ok_or("the document has no paths")?;
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let id = operation["operationId"].as_str().unwrap_or_default();
            if NOT_GENERATED.iter().any(|(listed, _)| *listed == id) {
                left_out.push(id.to_owned());
                if let Some(form) =
                    operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
                        .as_str()
                {
                    forms.push(form.to_owned());
                }
                item.remove(method);
            } else if !generatable(operation) {
                unlisted.push(format!("{method} {path} ({id})"));
            }
        }
    }
    paths.retain(|_, item| METHODS.iter().any(|method| item.get(method).is_some()));
    let still_used = serde_json::to_string(&document["paths"])?;
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        for form in forms
            .iter()
            .filter(|form| !still_used.contains(&format!("\"{form}\"")))
        {
            schemas.remove(form.trim_start_matches("#/components/schemas/"));
        }
    }

    let gone: Vec<&str> = NOT_GENERATED
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !left_out.iter().any(|seen| seen == id))
        .collect();
    if !gone.is_empty() {
        return Err(format!("NOT_GENERATED lists operations the document lacks: {gone:?}").into());
    }
    if !unlisted.is_empty() {
        return Err(format!(
            "the generator cannot express {unlisted:?} (a body that is not JSON, or a callback): \
             write it in src/upload.rs or leave it out, and list it in NOT_GENERATED"
        )
        .into());
    }
    Ok(())
}

fn generatable(operation: &Value) -> bool {
    let called_by_others = operation["tags"].as_array().is_some_and(|tags| {
        tags.iter()
            .any(|t| t.as_str().is_some_and(|t| t.starts_with("called by")))
    });
    let json_body = operation["requestBody"]["content"]
        .as_object()
        .is_none_or(|content| content.keys().all(|media| media == "application/json"));
    !called_by_others && json_body
}

/// Rewrites, everywhere in the document, the OpenAPI 3.1 forms the gateway's document uses:
/// `"type": [T, "null"]` and a `oneOf`/`anyOf` with a `{"type": "null"}` branch become the 3.0
/// `nullable: true`, and a media type without a schema (an image answer) gets the empty schema.
fn downgrade(value: &mut Value) {
    match value {
        Value::Object(object) => {
            nullable_type(object);
            nullable_union(object, "oneOf");
            nullable_union(object, "anyOf");
            if let Some(Value::Object(content)) = object.get_mut("content") {
                for media in content.values_mut().filter_map(Value::as_object_mut) {
                    media
                        .entry("schema")
                        .or_insert_with(|| Value::Object(Map::new()));
                }
            }
            object.values_mut().for_each(downgrade);
        }
        Value::Array(items) => items.iter_mut().for_each(downgrade),
        _ => {}
    }
}

fn nullable_type(object: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = object.get("type") else {
        return;
    };
    let null = Value::from("null");
    let nullable = types.contains(&null);
    let others: Vec<Value> = types.iter().filter(|t| **t != null).cloned().collect();
    match others.as_slice() {
        [one] => {
            object.insert("type".to_owned(), one.clone());
        }
        _ => {
            object.remove("type");
        }
    }
    if nullable {
        object.insert("nullable".to_owned(), Value::Bool(true));
    }
}

fn nullable_union(object: &mut Map<String, Value>, keyword: &str) {
    let Some(Value::Array(branches)) = object.get(keyword) else {
        return;
    };
    let is_null = |branch: &Value| branch.get("type") == Some(&Value::from("null"));
    if !branches.iter().any(is_null) {
        return;
    }
    let others: Vec<Value> = branches.iter().filter(|b| !is_null(b)).cloned().collect();
    object.insert("nullable".to_owned(), Value::Bool(true));
    match others.as_slice() {
        // 3.0 ignores the siblings of a `$ref`, so the reference goes under `allOf`.
        [one] if one.get("$ref").is_some() => {
            object.remove(keyword);
            object.insert("allOf".to_owned(), Value::Array(others));
        }
        [Value::Object(one)] => {
            let one = one.clone();
            object.remove(keyword);
            for (key, value) in one {
                object.entry(key).or_insert(value);
            }
        }
        _ => {
            object.insert(keyword.to_owned(), Value::Array(others));
        }
    }
}
