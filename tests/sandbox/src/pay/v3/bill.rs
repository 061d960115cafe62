//! API v3's trade bill: `GET /v3/bill/tradebill` answers (signed) with the file's SHA-1 and a
//! download link; `GET /v3/billdownload/file` (with the merchant's Authorization like any
//! request) gives the file itself, unsigned, the same text as v2's `pay/downloadbill`. A day
//! without transactions is 400 NO_STATEMENT_EXIST; today's bill is still being made
//! (400 STATEMENT_CREATING).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha1::{Digest, Sha1};

use super::super::BillType;
use super::super::bill::china_today;
use super::Signed;
use crate::Sandbox;

/// The query's value of `name`, "" when absent.
fn query_value<'a>(uri: &'a Uri, name: &str) -> &'a str {
    uri.query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or("")
}

/// The bill's date (`yyyyMMdd`, as the bill text is keyed) and type from a query, or why not.
fn bill_of(uri: &Uri) -> Result<(String, BillType), &'static str> {
    let date = chrono::NaiveDate::parse_from_str(query_value(uri, "bill_date"), "%Y-%m-%d")
        .map_err(|_| "bill_date")?;
    if date > china_today() {
        return Err("bill_date");
    }
    let bill_type = BillType::parse(query_value(uri, "bill_type")).ok_or("bill_type")?;
    Ok((date.format("%Y%m%d").to_string(), bill_type))
}

pub(super) async fn trade_bill(
    State(sandbox): State<Sandbox>,
    Signed { uri, .. }: Signed,
) -> Response {
    sandbox.state.bill_downloads.fetch_add(1, Ordering::SeqCst);
    let (date, bill_type) = match bill_of(&uri) {
        Ok(bill) => bill,
        Err(field) => {
            let message = format!("{field}参数错误");
            return sandbox.v3_error(StatusCode::BAD_REQUEST, "PARAM_ERROR", &message);
        }
    };
    if date == china_today().format("%Y%m%d").to_string() {
        return sandbox.v3_error(StatusCode::BAD_REQUEST, "STATEMENT_CREATING", "账单生成中");
    }
    let Some(text) = sandbox.bill_text(&date, bill_type) else {
        return sandbox.v3_error(
            StatusCode::BAD_REQUEST,
            "NO_STATEMENT_EXIST",
            "账单文件不存在",
        );
    };
    let hash_value = hex::encode(Sha1::digest(text.as_bytes()));
    // The token names the bill; WeChat Pay's is opaque, and so is this one to the merchant.
    let token = format!(
        "{}{}",
        date,
        query_value(&uri, "bill_type").to_ascii_uppercase()
    );
    let download_url = format!("{}/v3/billdownload/file?token={token}", sandbox.url());
    sandbox.v3_answer(
        StatusCode::OK,
        Some(
            json!({ "hash_type": "SHA1", "hash_value": hash_value, "download_url": download_url }),
        ),
    )
}

pub(super) async fn download(
    State(sandbox): State<Sandbox>,
    Signed { uri, .. }: Signed,
) -> Response {
    let token = query_value(&uri, "token");
    let (date, bill_type) = token.split_at(token.len().min(8));
    let text = BillType::parse(bill_type).and_then(|bill_type| sandbox.bill_text(date, bill_type));
    match text {
        Some(text) => ([(header::CONTENT_TYPE, "application/octet-stream")], text).into_response(),
        None => sandbox.v3_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "账单文件不存在",
        ),
    }
}
