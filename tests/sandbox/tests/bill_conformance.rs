//! The sandbox's WeChat Pay v2 trade bill (`pay/downloadbill`, jsapi.php?chapter=9_6), checked
//! against the documented layouts (pay.weixin.qq.com/docs/merchant/products/bill-download/
//! format-trade.html) and real published bills (binarywang/WxJava `WxPayBillResultTest`, the
//! wxcloudrun `pay/order/bill` example), read with one tiny parser, and against the merchant's
//! parser `wechat_protocol::bill`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use sandbox::{BillRow, BillType, NotifyMode, Sandbox, SandboxConfig};
use wechat_protocol::bill::parse_bill;
use wechat_protocol::pay::SignType;
use wechat_protocol::xml;

/// The documented headers, format-trade's table: (type, detail header, summary header).
const DOCUMENTED: &[(BillType, &str, &str)] = &[
    (
        BillType::All,
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注",
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
    ),
    (
        BillType::Success,
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注",
        "总交易单数,应结订单总金额,手续费总金额,订单总金额",
    ),
    (
        BillType::Refund,
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注",
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
    ),
];

/// Real ALL bill, one line of 48 kept (WxJava `PAY_BILL_RESULT_ALL_CONTENT`, ids masked there).
const WXJAVA_ALL: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n`2019-07-25 08:35:41,`WWWW,`XXXXXXXX,`0,`,`XXXXXXXXXXXXX,`XXXXXXXXXX,`XXXXXXXXXXX,`JSAPI,`SUCCESS,`PSBC_DEBIT,`CNY,`6.00,`0.00,`0,`0,`0.00,`0.00,`,`,`XXXXXX,`XXXXXXX,`0.04000,`0.60%,`6.00,`0.00,`\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`48,`5.76,`1.42,`0.00,`0.01000,`5.76,`1.42\n";

/// Real REFUND bill (WxJava `PAY_BILL_RESULT_REFUND_CONTENT`).
const WXJAVA_REFUND: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n`2019-07-23 20:53:36,`xxx,`xxx,`xxx,`,`xxx,`xxxx,`xxxxx,`JSAPI,`REFUND,`CFT,`CNY,`0.00,`0.00,`2019-07-23 20:53:36,`2019-07-23 20:53:40,`xxxx,`xxx,`0.01,`0.00,`ORIGINAL,`SUCCESS,`xxxx,`xxxx,`0.00000,`0.60%,`0.00,`0.01,`\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`4,`0.00,`2.02,`0.00,`-0.02000,`0.00,`2.02";

/// The documented example of the wxcloudrun `pay/order/bill` page (developers.weixin.qq.com).
const WXCLOUDRUN_ALL: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n`2022-03-21 13:51:31,`wxfdc955f7104ad557,`180023671,`176531292,`,`420000612032130748613220688,`2021WERUN1647840687637,`oZWaCKXip5njeEiloC4oeOV1TTsk,`JSAPI,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,`微信云托管支付测试,`,`0.00000,`0.90%,`0.01,`0.00,`\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`12,`0.06,`0.06,`0.00,`0.00000,`0.06,`0.06\n";

/// A bill cut up the way a merchant's script would: header names, rows of backticked fields,
/// summary names, summary values.
struct Tiny {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    summary_header: Vec<String>,
    summary: Vec<String>,
}

fn tiny(text: &str) -> Tiny {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect();
    let split = |line: &str| -> Vec<String> {
        assert!(line.starts_with('`'), "no backtick: {line}");
        line[1..].split(",`").map(str::to_owned).collect()
    };
    let names = |line: &str| -> Vec<String> { line.split(',').map(str::to_owned).collect() };
    let n = lines.len();
    assert!(n >= 4, "{text}");
    Tiny {
        header: names(lines[0]),
        rows: lines[1..n - 2].iter().map(|l| split(l)).collect(),
        summary_header: names(lines[n - 2]),
        summary: split(lines[n - 1]),
    }
}

fn is_yuan(text: &str, decimals: usize) -> bool {
    let text = text.strip_prefix('-').unwrap_or(text);
    let Some((whole, fraction)) = text.split_once('.') else {
        return false;
    };
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.len() == decimals
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Every amount of a (current-layout) bill is yuan with 2 decimals, fees with 5.
fn assert_amount_formats(bill: &Tiny) {
    for row in &bill.rows {
        assert_eq!(row.len(), bill.header.len(), "{row:?}");
        for (name, value) in bill.header.iter().zip(row) {
            match name.as_str() {
                "手续费" => assert!(is_yuan(value, 5), "{name}: {value}"),
                "应结订单金额"
                | "代金券金额"
                | "退款金额"
                | "充值券退款金额"
                | "订单金额"
                | "申请退款金额" => assert!(is_yuan(value, 2), "{name}: {value}"),
                "费率" => assert!(value.ends_with('%'), "{name}: {value}"),
                _ => {}
            }
        }
    }
    assert_eq!(bill.summary.len(), bill.summary_header.len());
    for (name, value) in bill.summary_header.iter().zip(&bill.summary) {
        match name.as_str() {
            "总交易单数" => assert!(value.parse::<u64>().is_ok(), "{value}"),
            "手续费总金额" => assert!(is_yuan(value, 5), "{name}: {value}"),
            _ => assert!(is_yuan(value, 2), "{name}: {value}"),
        }
    }
}

/// A merchant calling the sandbox: plain listener for the bill, mutual TLS for refunds.
struct Merchant {
    sandbox: Sandbox,
    http: reqwest::Client,
    tls: reqwest::Client,
}

impl Merchant {
    async fn start() -> Self {
        let sandbox = Sandbox::start_local(SandboxConfig::default())
            .await
            .unwrap();
        let tls = sandbox.merchant_tls().unwrap();
        let pem = format!("{}{}", tls.client_cert_pem, tls.client_key_pem);
        let tls = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap())
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        Self {
            sandbox,
            http: reqwest::Client::new(),
            tls,
        }
    }

    fn signed(&self, sign_type: SignType, params: &[(&str, &str)]) -> String {
        let cfg = self.sandbox.config();
        let mut fields: BTreeMap<String, String> = [
            ("appid", cfg.appid.as_str()),
            ("mch_id", cfg.mch_id.as_str()),
            ("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
            ("sign_type", sign_type.as_str()),
        ]
        .iter()
        .chain(params)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        self.sandbox.pay_sign(&mut fields, sign_type);
        sandbox::pay::document(&fields)
    }

    async fn post(&self, client: &reqwest::Client, url: String, body: String) -> Vec<u8> {
        let answer = client.post(url).body(body).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.bytes().await.unwrap().to_vec()
    }

    async fn call(&self, path: &str, params: &[(&str, &str)]) -> BTreeMap<String, String> {
        let body = self.signed(SignType::Md5, params);
        let url = format!("{}{path}", self.sandbox.url());
        xml::parse(&self.post(&self.http, url, body).await).unwrap()
    }

    /// The bill's raw answer (text, gzip bytes or failure XML).
    async fn download(&self, sign_type: SignType, params: &[(&str, &str)]) -> Vec<u8> {
        let body = self.signed(sign_type, params);
        let url = format!("{}/pay/downloadbill", self.sandbox.url());
        self.post(&self.http, url, body).await
    }

    async fn bill(&self, date: &str, bill_type: &str) -> String {
        let raw = self
            .download(
                SignType::HmacSha256,
                &[("bill_date", date), ("bill_type", bill_type)],
            )
            .await;
        let text = String::from_utf8(raw).unwrap();
        assert!(!text.starts_with("<xml>"), "{text}");
        text
    }

    async fn failure(&self, params: &[(&str, &str)]) -> BTreeMap<String, String> {
        let raw = self.download(SignType::Md5, params).await;
        assert!(
            raw.starts_with(b"<xml>"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        xml::parse(&raw).unwrap()
    }

    async fn paid(&self, out_trade_no: &str, fee: &str) -> String {
        self.sandbox.set_notify_mode(NotifyMode::Drop);
        let placed = self
            .call(
                "/pay/unifiedorder",
                &[
                    ("body", "芯图相册-积分2个"),
                    ("out_trade_no", out_trade_no),
                    ("total_fee", fee),
                    ("spbill_create_ip", "203.0.113.7"),
                    ("notify_url", "https://example.com/notify"),
                    ("trade_type", "JSAPI"),
                    ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
                ],
            )
            .await;
        assert_eq!(placed["result_code"], "SUCCESS", "{placed:?}");
        self.sandbox.pay(out_trade_no).await.unwrap()
    }

    /// A refund over the secapi listener, waited for until it has ended.
    async fn refunded(&self, out_trade_no: &str, out_refund_no: &str, total: &str, fee: &str) {
        let body = self.signed(
            SignType::Md5,
            &[
                ("out_trade_no", out_trade_no),
                ("out_refund_no", out_refund_no),
                ("total_fee", total),
                ("refund_fee", fee),
            ],
        );
        let url = format!("{}/secapi/pay/refund", self.sandbox.secapi_url());
        let answer = xml::parse(&self.post(&self.tls, url, body).await).unwrap();
        assert_eq!(answer["result_code"], "SUCCESS", "{answer:?}");
        for _ in 0..100 {
            let refund = self.sandbox.refund(out_refund_no).unwrap();
            if refund.status != sandbox::RefundStatus::Processing {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{out_refund_no} never ended");
    }
}

fn china_day(days_ago: i64) -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
        - chrono::Duration::days(days_ago)
}

/// Yesterday (or `days_ago`), as `bill_date`, `time_end` at 10:00:00 and a dashed time.
fn day(days_ago: i64, hms: &str) -> (String, String, String) {
    let date = china_day(days_ago);
    (
        date.format("%Y%m%d").to_string(),
        format!("{}{}", date.format("%Y%m%d"), hms.replace(':', "")),
        format!("{} {hms}", date.format("%Y-%m-%d")),
    )
}

#[test]
fn our_headers_are_the_documented_ones() {
    for (bill_type, detail, summary) in DOCUMENTED {
        assert_eq!(bill_type.header().join(","), *detail, "{bill_type:?}");
        assert_eq!(
            bill_type.summary_header().join(","),
            *summary,
            "{bill_type:?}"
        );
    }
    // The published bills have the same detail headers.
    assert_eq!(tiny(WXJAVA_ALL).header.join(","), DOCUMENTED[0].1);
    assert_eq!(tiny(WXCLOUDRUN_ALL).header.join(","), DOCUMENTED[0].1);
    assert_eq!(tiny(WXJAVA_REFUND).header.join(","), DOCUMENTED[2].1);
    assert_eq!(tiny(WXJAVA_ALL).summary_header.join(","), DOCUMENTED[0].2);
    assert_eq!(
        tiny(WXJAVA_REFUND).summary_header.join(","),
        DOCUMENTED[2].2
    );
    // (WxJava's captured SUCCESS bill of 2019 carries the 7-column summary; format-trade now
    // documents 4 columns for SUCCESS, which the sandbox follows.)
    for sample in [WXJAVA_ALL, WXJAVA_REFUND, WXCLOUDRUN_ALL] {
        assert_amount_formats(&tiny(sample));
        parse_bill(sample.as_bytes()).unwrap();
    }
}

#[tokio::test]
async fn paid_orders_and_refunds_appear_on_their_day() {
    let m = Merchant::start().await;
    let (yesterday, time_end, _) = day(1, "10:00:00");
    let first = m.paid("bill-order-1", "1990").await;
    let second = m.paid("bill-order-2", "600").await;
    m.refunded("bill-order-1", "bill-refund-1", "1990", "990")
        .await;
    assert!(m.sandbox.set_time_end("bill-order-1", &time_end));
    assert!(
        m.sandbox
            .set_time_end("bill-order-2", &day(1, "11:30:00").1)
    );
    assert!(
        m.sandbox
            .set_refund_time("bill-refund-1", &day(1, "12:00:00").2)
    );

    let text = m.bill(&yesterday, "ALL").await;
    assert!(text.ends_with("\r\n"));
    let ours = tiny(&text);
    let sample = tiny(WXJAVA_ALL);
    assert_eq!(ours.header, sample.header);
    assert_eq!(ours.summary_header, sample.summary_header);
    assert_amount_formats(&ours);
    assert_eq!(ours.rows.len(), 3);

    let bill = parse_bill(text.as_bytes()).unwrap();
    let lines = &bill.lines;
    assert_eq!(lines[0].trade_time, day(1, "10:00:00").2);
    assert_eq!(lines[0].transaction_id, first);
    assert_eq!(
        (lines[0].trade_state.as_str(), lines[0].total_fee_fen),
        ("SUCCESS", 1990)
    );
    assert_eq!(lines[1].transaction_id, second);
    assert_eq!(lines[1].total_fee_fen, 600);
    assert_eq!(lines[2].trade_state, "REFUND");
    assert_eq!(lines[2].out_trade_no, "bill-order-1");
    assert_eq!(lines[2].total_fee_fen, 0);
    assert_eq!(lines[2].out_refund_no.as_deref(), Some("bill-refund-1"));
    assert_eq!(
        lines[2].refund_id.as_deref(),
        Some(
            m.sandbox
                .refund("bill-refund-1")
                .unwrap()
                .refund_id
                .as_str()
        )
    );
    assert_eq!(lines[2].refund_fee_fen, 990);
    assert_eq!(lines[2].refund_status.as_deref(), Some("SUCCESS"));

    // Fees: 19.90 → 0.1194 → 0.12; 6.00 → 0.036 → 0.04; the refund gives 9.90 → 0.0594 → 0.06 back.
    let fee_column = ours.header.iter().position(|h| h == "手续费").unwrap();
    let fees: Vec<&str> = ours.rows.iter().map(|r| r[fee_column].as_str()).collect();
    assert_eq!(fees, ["0.12000", "0.04000", "-0.06000"]);
    let s = &bill.summary;
    assert_eq!(s.total_count, 3);
    assert_eq!(s.settlement_total_fen, 2590);
    assert_eq!(s.refund_total_fen, 990);
    assert_eq!(s.coupon_refund_total_fen, 0);
    assert_eq!(s.fee_total_fen, 12 + 4 - 6);
    assert_eq!(s.order_total_fen, Some(2590));
    assert_eq!(s.applied_refund_total_fen, Some(990));
    assert_eq!(ours.summary[4], "0.10000");

    // Moved to the day before, an order leaves yesterday's bill for that day's.
    assert!(
        m.sandbox
            .set_time_end("bill-order-2", &day(2, "09:00:00").1)
    );
    let yesterday_bill = parse_bill(m.bill(&yesterday, "ALL").await.as_bytes()).unwrap();
    assert!(
        yesterday_bill
            .lines
            .iter()
            .all(|l| l.out_trade_no != "bill-order-2")
    );
    let before = parse_bill(m.bill(&day(2, "").0, "ALL").await.as_bytes()).unwrap();
    assert_eq!(before.lines.len(), 1);
    assert_eq!(before.lines[0].out_trade_no, "bill-order-2");
    assert_eq!(m.sandbox.stats().bill_downloads, 3);
}

#[tokio::test]
async fn bill_types_filter_the_lines() {
    let m = Merchant::start().await;
    let (yesterday, time_end, _) = day(1, "08:00:00");
    m.paid("filter-order", "100").await;
    m.refunded("filter-order", "filter-refund", "100", "40")
        .await;
    m.sandbox.set_time_end("filter-order", &time_end);
    m.sandbox
        .set_refund_time("filter-refund", &day(1, "09:00:00").2);

    let success = tiny(&m.bill(&yesterday, "SUCCESS").await);
    assert_eq!(success.header.join(","), DOCUMENTED[1].1);
    assert_eq!(success.summary_header.join(","), DOCUMENTED[1].2);
    assert_eq!(success.rows.len(), 1);
    assert_eq!(success.rows[0][9], "SUCCESS");
    assert_eq!(success.summary, ["1", "1.00", "0.01000", "1.00"]);
    assert_amount_formats(&success);

    let refund = tiny(&m.bill(&yesterday, "REFUND").await);
    assert_eq!(refund.header.join(","), DOCUMENTED[2].1);
    assert_eq!(refund.rows.len(), 1);
    let row: BTreeMap<&str, &str> = refund
        .header
        .iter()
        .map(String::as_str)
        .zip(refund.rows[0].iter().map(String::as_str))
        .collect();
    assert_eq!(row["交易状态"], "REFUND");
    assert_eq!(row["退款申请时间"], day(1, "09:00:00").2);
    assert_eq!(row["退款金额"], "0.40");
    assert_eq!(row["申请退款金额"], "0.40");
    assert_eq!(row["退款状态"], "SUCCESS");
    assert_eq!(row["退款类型"], "ORIGINAL");
    assert_eq!(
        refund.summary,
        ["1", "0.00", "0.40", "0.00", "0.00000", "0.00", "0.40"]
    );
    assert_amount_formats(&refund);

    // Nothing was refunded from recharge funds.
    let none = m
        .failure(&[("bill_date", &yesterday), ("bill_type", "RECHARGE_REFUND")])
        .await;
    assert_eq!(none["return_msg"], "No Bill Exist");
}

#[tokio::test]
async fn a_transaction_the_merchant_never_saw() {
    let m = Merchant::start().await;
    let (yesterday, _, at) = day(1, "23:59:59");
    m.sandbox
        .add_bill_row(BillRow::payment("never-seen", 2500, &at));
    // Over the control route too: a known order number with another amount.
    let control = reqwest::Client::new()
        .post(format!("{}/_sandbox/bill-row", m.sandbox.url()))
        .json(&BillRow::payment("known-order", 100, &day(1, "00:00:00").2))
        .send()
        .await
        .unwrap();
    assert_eq!(control.status(), 204);
    let bill = parse_bill(m.bill(&yesterday, "ALL").await.as_bytes()).unwrap();
    let orders: Vec<(&str, i64)> = bill
        .lines
        .iter()
        .map(|l| (l.out_trade_no.as_str(), l.total_fee_fen))
        .collect();
    assert_eq!(orders, [("known-order", 100), ("never-seen", 2500)]);
    assert_eq!(bill.summary.order_total_fen, Some(2600));

    let moved = reqwest::Client::new()
        .post(format!("{}/_sandbox/time-end", m.sandbox.url()))
        .json(&serde_json::json!({"out_trade_no": "nope", "time_end": "20240101120000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 404);
}

#[tokio::test]
async fn days_without_a_bill_fail_as_documented() {
    let m = Merchant::start().await;
    m.paid("today-order", "100").await;
    let (yesterday, _, _) = day(1, "");
    let answer = m.failure(&[("bill_date", &yesterday)]).await;
    assert_eq!(answer["return_code"], "FAIL");
    assert_eq!(answer["return_msg"], "No Bill Exist");
    assert_eq!(answer["error_code"], "20002");
    assert!(!answer.contains_key("sign"));

    let today = china_day(0).format("%Y%m%d").to_string();
    let answer = m.failure(&[("bill_date", &today)]).await;
    assert_eq!(answer["return_msg"], "Bill Creating");

    let tomorrow = (china_day(0) + chrono::Duration::days(1))
        .format("%Y%m%d")
        .to_string();
    for date in [tomorrow.as_str(), "2024-01-01", "20241341", ""] {
        let answer = m.failure(&[("bill_date", date)]).await;
        assert_eq!(answer["return_msg"], "invalid bill_date", "{date}");
        assert_eq!(answer["error_code"], "20001");
    }
    let answer = m
        .failure(&[("bill_date", &yesterday), ("bill_type", "EVERYTHING")])
        .await;
    assert_eq!(answer["return_msg"], "invalid bill_type");
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let m = Merchant::start().await;
    let (yesterday, time_end, _) = day(1, "10:00:00");
    m.paid("sig-order", "100").await;
    m.sandbox.set_time_end("sig-order", &time_end);
    let body = m
        .signed(SignType::Md5, &[("bill_date", &yesterday)])
        .replace(&yesterday, &day(2, "").0);
    let raw = m
        .post(
            &m.http,
            format!("{}/pay/downloadbill", m.sandbox.url()),
            body,
        )
        .await;
    let answer = xml::parse(&raw).unwrap();
    assert_eq!(answer["return_code"], "FAIL");
    assert_eq!(answer["return_msg"], "签名错误");
    // Signed HMAC-SHA256 but named MD5: refused too.
    let body = m
        .signed(SignType::HmacSha256, &[("bill_date", &yesterday)])
        .replace("HMAC-SHA256", "MD5");
    let raw = m
        .post(
            &m.http,
            format!("{}/pay/downloadbill", m.sandbox.url()),
            body,
        )
        .await;
    assert_eq!(xml::parse(&raw).unwrap()["return_msg"], "签名错误");
    assert_eq!(m.sandbox.stats().bill_downloads, 0);
}

#[tokio::test]
async fn gzip_round_trips() {
    let m = Merchant::start().await;
    let (yesterday, time_end, _) = day(1, "10:00:00");
    m.paid("gzip-order", "1990").await;
    m.sandbox.set_time_end("gzip-order", &time_end);
    let plain = m.bill(&yesterday, "ALL").await;
    let zipped = m
        .download(
            SignType::Md5,
            &[("bill_date", &yesterday), ("tar_type", "GZIP")],
        )
        .await;
    assert_eq!(&zipped[..2], [0x1f, 0x8b]);
    let mut text = String::new();
    flate2::read::GzDecoder::new(zipped.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, plain);
    // Over the secapi listener too, as api.mch.weixin.qq.com serves every call.
    let body = m.signed(SignType::Md5, &[("bill_date", &yesterday)]);
    let url = format!("{}/pay/downloadbill", m.sandbox.secapi_url());
    assert_eq!(
        String::from_utf8(m.post(&m.tls, url, body).await).unwrap(),
        plain
    );
}
