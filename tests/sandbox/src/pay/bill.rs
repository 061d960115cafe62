//! `pay/downloadbill` (pay.weixin.qq.com v2, jsapi.php?chapter=9_6): the day's trade bill as
//! text, in the layout pay.weixin.qq.com/docs/merchant/products/bill-download/format-trade.html
//! documents for the current bill format (ALL, SUCCESS, REFUND), or gzipped with `tar_type=GZIP`.
//!
//! What a bill holds (format-trade): the payments that succeeded that day, one SUCCESS line each
//! dated by the payment time (`time_end`); and the refunds *accepted* that day, one REFUND line
//! each dated by the time the refund was accepted ("发起退款成功时间(注:不是退款成功时间)"), with
//! the refund status as it is when the bill is made ("出账后退款状态不会更新"). A refunded order
//! keeps its SUCCESS line. ALL, SUCCESS and REFUND leave out refunds paid from recharge funds;
//! RECHARGE_REFUND lists only those (9_6).
//!
//! Amounts are yuan with two decimals. 手续费 is 0.6% of the settled amount, rounded half up to
//! the fen and written with five decimals ("精确到小数点后2位,四舍五入。末尾填充3个0", a community
//! write-up of the bill; binarywang/WxJava `WxPayBillResultTest`: `6.00` pays `0.04000`); a
//! refund gives its fee back, negative (the same test's REFUND summary: `-0.02000`). Payment
//! lines write the refund ids as `0` and the refund amounts as `0.00`; refund lines write the
//! order amounts as `0.00` (WxJava's captured ALL and REFUND bills; the wxcloudrun example).
//!
//! Failures are unsigned XML with `error_code`: "No Bill Exist" 20002 for a day without
//! transactions (developers.weixin.qq.com wxcloudrun `pay/order/bill`; WxJava notes WeChat
//! sends "No" where the table prints "NO"), "invalid bill_date" 20001 for a malformed or future
//! date (overtrue/easywechat `tests/Payment/Bill/ClientTest.php`). For today, whose bill is not
//! made yet, "Bill Creating" (9_6's table; no captured answer shows its error_code, so none is
//! sent). "invalid bill_type" is 9_6's text; its error_code 20001 is assumed from invalid
//! bill_date, the other parameter error. Differences from WeChat Pay: a day's bill can be had at
//! once after midnight (WeChat makes it from 9 a.m. the next day), and dates older than three
//! months are not refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::{RefundStatus, TradeState, xml_response};
use crate::{Sandbox, lock};

/// `bill_type` of downloadbill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillType {
    All,
    Success,
    Refund,
    RechargeRefund,
}

impl BillType {
    /// None: not a documented type. Absent means ALL (9_6: "ALL(默认值)").
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "" | "ALL" => Some(Self::All),
            "SUCCESS" => Some(Self::Success),
            "REFUND" => Some(Self::Refund),
            "RECHARGE_REFUND" => Some(Self::RechargeRefund),
            _ => None,
        }
    }

    /// The detail header, format-trade's table (RECHARGE_REFUND has no layout of its own there;
    /// it lists refunds, so it takes REFUND's).
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Self::All => ALL_HEADER,
            Self::Success => SUCCESS_HEADER,
            Self::Refund | Self::RechargeRefund => REFUND_HEADER,
        }
    }

    /// The summary header, format-trade's table.
    pub fn summary_header(self) -> &'static [&'static str] {
        match self {
            Self::Success => SUCCESS_SUMMARY_HEADER,
            _ => SUMMARY_HEADER,
        }
    }
}

pub const ALL_HEADER: &[&str] = &[
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

pub const SUCCESS_HEADER: &[&str] = &[
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "费率备注",
];

pub const REFUND_HEADER: &[&str] = &[
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "退款申请时间",
    "退款成功时间",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
];

pub const SUMMARY_HEADER: &[&str] = &[
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
];

pub const SUCCESS_SUMMARY_HEADER: &[&str] =
    &["总交易单数", "应结订单总金额", "手续费总金额", "订单总金额"];

/// The merchant's fee rate, per mille (0.60%, the common rate; every captured bill shows it).
const FEE_PER_MILLE: i64 = 6;

/// One transaction of a bill: built from the orders and refunds WeChat Pay holds, or put in by a
/// test ([`Sandbox::add_bill_row`]) as a transaction the merchant never saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BillRow {
    /// `yyyy-MM-dd HH:mm:ss`, China time: the payment time, or when the refund was accepted. The
    /// row is in the bill of this day.
    pub trade_time: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    pub openid: String,
    pub device_info: String,
    /// SUCCESS (a payment) or REFUND.
    pub trade_state: String,
    pub bank_type: String,
    /// 订单金额 of a payment, fen.
    pub total_fee: i64,
    /// The non-cash coupon's part of a payment (代金券金额), fen: 应结订单金额 is the rest.
    pub coupon_fee: i64,
    pub refund_id: String,
    pub out_refund_no: String,
    /// 申请退款金额 of a refund, fen.
    pub refund_fee: i64,
    /// The non-cash coupon's part of the refund: 退款金额 (settled) is the rest.
    pub coupon_refund_fee: i64,
    /// SUCCESS, PROCESSING, CHANGE or REFUNDCLOSE.
    pub refund_status: String,
    /// `yyyy-MM-dd HH:mm:ss` once the refund succeeded.
    pub refund_success_time: String,
    /// REFUND_SOURCE_RECHARGE_FUNDS puts the refund in the RECHARGE_REFUND bill only.
    pub refund_account: String,
    pub body: String,
    pub attach: String,
}

impl BillRow {
    /// A payment the merchant may not know of.
    pub fn payment(out_trade_no: &str, total_fee: i64, trade_time: &str) -> Self {
        Self {
            trade_time: trade_time.to_owned(),
            transaction_id: super::notify::new_transaction_id(),
            out_trade_no: out_trade_no.to_owned(),
            openid: "o_sandbox_user_1".to_owned(),
            trade_state: "SUCCESS".to_owned(),
            bank_type: "CMB_CREDIT".to_owned(),
            total_fee,
            body: "sandbox".to_owned(),
            ..Self::default()
        }
    }

    /// A refund that succeeded, accepted at `trade_time`.
    pub fn refund(
        out_trade_no: &str,
        out_refund_no: &str,
        refund_fee: i64,
        trade_time: &str,
    ) -> Self {
        Self {
            trade_state: "REFUND".to_owned(),
            total_fee: 0,
            refund_id: super::refund::new_refund_id(),
            out_refund_no: out_refund_no.to_owned(),
            refund_fee,
            refund_status: "SUCCESS".to_owned(),
            refund_success_time: trade_time.to_owned(),
            ..Self::payment(out_trade_no, 0, trade_time)
        }
    }

    fn is_refund(&self) -> bool {
        self.trade_state != "SUCCESS"
    }

    /// `yyyyMMdd` of the trade time.
    fn day(&self) -> String {
        self.trade_time
            .chars()
            .take(10)
            .filter(char::is_ascii_digit)
            .collect()
    }

    fn in_bill(&self, bill_type: BillType) -> bool {
        let recharge = self.refund_account == "REFUND_SOURCE_RECHARGE_FUNDS";
        match bill_type {
            BillType::All => !(self.is_refund() && recharge),
            BillType::Success => !self.is_refund(),
            BillType::Refund => self.is_refund() && !recharge,
            BillType::RechargeRefund => self.is_refund() && recharge,
        }
    }

    /// The amounts of the row, fen, by column.
    fn amounts(&self) -> Amounts {
        if self.is_refund() {
            let settled = self.refund_fee - self.coupon_refund_fee;
            Amounts {
                refund: settled,
                applied_refund: self.refund_fee,
                fee: -fee(settled),
                ..Amounts::default()
            }
        } else {
            let settled = self.total_fee - self.coupon_fee;
            Amounts {
                settlement: settled,
                coupon: self.coupon_fee,
                order: self.total_fee,
                fee: fee(settled),
                ..Amounts::default()
            }
        }
    }

    /// The row's value in a column.
    fn value(&self, column: &str, appid: &str, mch_id: &str) -> String {
        let amounts = self.amounts();
        let refund = self.is_refund();
        match column {
            "交易时间" => self.trade_time.clone(),
            "公众账号ID" => appid.to_owned(),
            "商户号" => mch_id.to_owned(),
            // A plain merchant's bill writes 0 (format-trade).
            "特约商户号" => "0".to_owned(),
            "设备号" => self.device_info.clone(),
            "微信订单号" => self.transaction_id.clone(),
            "商户订单号" => self.out_trade_no.clone(),
            "用户标识" => self.openid.clone(),
            "交易类型" => "JSAPI".to_owned(),
            "交易状态" => self.trade_state.clone(),
            "付款银行" => self.bank_type.clone(),
            "货币种类" => "CNY".to_owned(),
            "应结订单金额" => yuan(amounts.settlement),
            "代金券金额" => yuan(amounts.coupon),
            "退款申请时间" => self.trade_time.clone(),
            "退款成功时间" => self.refund_success_time.clone(),
            "微信退款单号" if refund => self.refund_id.clone(),
            "商户退款单号" if refund => self.out_refund_no.clone(),
            "微信退款单号" | "商户退款单号" => "0".to_owned(),
            "退款金额" => yuan(amounts.refund),
            // Our coupons are non-cash (免充值): nothing of a recharge coupon goes back.
            "充值券退款金额" => yuan(0),
            "退款类型" if refund => "ORIGINAL".to_owned(),
            "退款状态" if refund => self.refund_status.clone(),
            "商品名称" => self.body.clone(),
            "商户数据包" => self.attach.clone(),
            "手续费" => fee_text(amounts.fee),
            "费率" => "0.60%".to_owned(),
            "订单金额" => yuan(amounts.order),
            "申请退款金额" => yuan(amounts.applied_refund),
            _ => String::new(),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Amounts {
    settlement: i64,
    coupon: i64,
    refund: i64,
    fee: i64,
    order: i64,
    applied_refund: i64,
}

/// 0.6% of `settled` fen, rounded half up to the fen.
fn fee(settled: i64) -> i64 {
    (settled * FEE_PER_MILLE + 500).div_euclid(1000)
}

/// Fen as yuan with two decimals: `19.90`, `-0.02`.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

/// A fee, as the bill writes it: rounded to the fen, padded to five decimals.
fn fee_text(fen: i64) -> String {
    format!("{}000", yuan(fen))
}

/// Each field prefixed by a backtick, comma-separated (9_6: "参数前增加`符号").
fn line(values: impl IntoIterator<Item = String>) -> String {
    values
        .into_iter()
        .map(|v| format!("`{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `yyyyMMddHHmmss` (time_end) as `yyyy-MM-dd HH:mm:ss`.
fn dashed(time_end: &str) -> Option<String> {
    chrono::NaiveDateTime::parse_from_str(time_end, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// Today in China (UTC+8, no daylight saving).
pub(super) fn china_today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

impl Sandbox {
    /// Puts a transaction in the bill of its day (tests: a payment the merchant never saw, or a
    /// known one with another amount).
    pub fn add_bill_row(&self, row: BillRow) {
        lock(&self.state.accounts).bill_rows.push(row);
    }

    /// Moves an order's payment time (`time_end`, `yyyyMMddHHmmss` China time) to another day;
    /// false for an unknown order.
    pub fn set_time_end(&self, out_trade_no: &str, time_end: &str) -> bool {
        match lock(&self.state.accounts).pay_orders.get_mut(out_trade_no) {
            Some(order) => {
                order.time_end = Some(time_end.to_owned());
                true
            }
            None => false,
        }
    }

    /// Moves a refund's acceptance time (`yyyy-MM-dd HH:mm:ss` China time), and its success time
    /// when it succeeded, to another day; false for an unknown refund.
    pub fn set_refund_time(&self, out_refund_no: &str, time: &str) -> bool {
        let mut accounts = lock(&self.state.accounts);
        let Some(refund) = accounts
            .refunds
            .iter_mut()
            .find(|r| r.out_refund_no == out_refund_no)
        else {
            return false;
        };
        refund.requested_at = time.to_owned();
        if refund.success_time.is_some() {
            refund.success_time = Some(time.to_owned());
        }
        true
    }

    /// Every transaction of a day (`yyyyMMdd`), oldest first, whatever the bill type.
    pub fn bill_rows(&self, bill_date: &str) -> Vec<BillRow> {
        let accounts = lock(&self.state.accounts);
        let payments = accounts.pay_orders.values().filter_map(|order| {
            if !matches!(order.state, TradeState::Success | TradeState::Refund) {
                return None;
            }
            Some(BillRow {
                trade_time: dashed(order.time_end.as_deref()?)?,
                transaction_id: order.transaction_id.clone()?,
                out_trade_no: order.out_trade_no.clone(),
                openid: order.openid.clone(),
                device_info: order.device_info.clone(),
                trade_state: "SUCCESS".to_owned(),
                bank_type: "CMB_CREDIT".to_owned(),
                total_fee: order.total_fee,
                coupon_fee: order.coupon_fee,
                body: order.body.clone(),
                attach: order.attach.clone(),
                ..BillRow::default()
            })
        });
        let refunds = accounts.refunds.iter().map(|refund| {
            let order = accounts.pay_orders.get(&refund.out_trade_no);
            let field =
                |f: fn(&super::PayOrder) -> &String| order.map(f).cloned().unwrap_or_default();
            BillRow {
                trade_time: refund.requested_at.clone(),
                transaction_id: refund.transaction_id.clone(),
                out_trade_no: refund.out_trade_no.clone(),
                openid: field(|o| &o.openid),
                device_info: field(|o| &o.device_info),
                trade_state: "REFUND".to_owned(),
                bank_type: "CMB_CREDIT".to_owned(),
                refund_id: refund.refund_id.clone(),
                out_refund_no: refund.out_refund_no.clone(),
                refund_fee: refund.refund_fee,
                coupon_refund_fee: refund.coupon_refund_fee(),
                refund_status: refund.status.as_str().to_owned(),
                refund_success_time: if refund.status == RefundStatus::Success {
                    refund.success_time.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                refund_account: refund.refund_account.clone(),
                body: field(|o| &o.body),
                attach: field(|o| &o.attach),
                ..BillRow::default()
            }
        });
        let mut rows: Vec<BillRow> = payments
            .chain(refunds)
            .chain(accounts.bill_rows.iter().cloned())
            .filter(|row| row.day() == bill_date)
            .collect();
        rows.sort_by(|a, b| a.trade_time.cmp(&b.trade_time));
        rows
    }

    /// The bill of a day as WeChat Pay writes it; None when it has no transactions of the type.
    pub fn bill_text(&self, bill_date: &str, bill_type: BillType) -> Option<String> {
        let cfg = &self.state.cfg;
        let rows: Vec<BillRow> = self
            .bill_rows(bill_date)
            .into_iter()
            .filter(|row| row.in_bill(bill_type))
            .collect();
        if rows.is_empty() {
            return None;
        }
        let header = bill_type.header();
        let mut text = header.join(",");
        text.push_str("\r\n");
        let mut sums = Amounts::default();
        for row in &rows {
            let values = header.iter().map(|c| row.value(c, &cfg.appid, &cfg.mch_id));
            text.push_str(&line(values));
            text.push_str("\r\n");
            let a = row.amounts();
            sums.settlement += a.settlement;
            sums.refund += a.refund;
            sums.fee += a.fee;
            sums.order += a.order;
            sums.applied_refund += a.applied_refund;
        }
        let summary_header = bill_type.summary_header();
        text.push_str(&summary_header.join(","));
        text.push_str("\r\n");
        let summary = summary_header.iter().map(|column| match *column {
            "总交易单数" => rows.len().to_string(),
            "应结订单总金额" => yuan(sums.settlement),
            "退款总金额" => yuan(sums.refund),
            "充值券退款总金额" => yuan(0),
            "手续费总金额" => fee_text(sums.fee),
            "订单总金额" => yuan(sums.order),
            "申请退款总金额" => yuan(sums.applied_refund),
            _ => String::new(),
        });
        text.push_str(&line(summary));
        text.push_str("\r\n");
        Some(text)
    }
}

/// A failure: unsigned, with the `error_code` downloadbill adds where one is known.
fn bill_fail(message: &str, error_code: Option<&str>) -> Response {
    let mut fields = BTreeMap::new();
    fields.insert("return_code".to_owned(), "FAIL".to_owned());
    fields.insert("return_msg".to_owned(), message.to_owned());
    if let Some(code) = error_code {
        fields.insert("error_code".to_owned(), code.to_owned());
    }
    xml_response(&fields)
}

pub(super) async fn download_bill(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let request = match sandbox.check_request(&body) {
        Ok(request) => request,
        Err(answer) => return *answer,
    };
    sandbox.state.bill_downloads.fetch_add(1, Ordering::SeqCst);
    let Some(bill_type) = BillType::parse(&request.get("bill_type")) else {
        return bill_fail("invalid bill_type", Some("20001"));
    };
    let bill_date = request.get("bill_date");
    let Ok(date) = chrono::NaiveDate::parse_from_str(&bill_date, "%Y%m%d") else {
        return bill_fail("invalid bill_date", Some("20001"));
    };
    if bill_date.len() != 8 || date > china_today() {
        return bill_fail("invalid bill_date", Some("20001"));
    }
    if date == china_today() {
        return bill_fail("Bill Creating", None);
    }
    let Some(text) = sandbox.bill_text(&bill_date, bill_type) else {
        return bill_fail("No Bill Exist", Some("20002"));
    };
    if request.get("tar_type") == "GZIP" {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        let zipped = encoder
            .write_all(text.as_bytes())
            .and_then(|()| encoder.finish());
        return match zipped {
            Ok(bytes) => ([(header::CONTENT_TYPE, "application/x-gzip")], bytes).into_response(),
            // 9_6's table has this failure for a bill that could not be compressed.
            Err(_) => bill_fail("CompressGZip Error", None),
        };
    }
    ([(header::CONTENT_TYPE, "text/plain;charset=utf-8")], text).into_response()
}
