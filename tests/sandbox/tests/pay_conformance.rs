//! The sandbox's WeChat Pay checked against real messages: the conformance table of the
//! `wechat-protocol` crate holds answers and notifies captured from WeChat Pay (public SDKs' test
//! data). Every field such a real message carries, the sandbox's message of the same kind
//! carries too, and its answers carry no `sign_type`, as WeChat Pay's do not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use sandbox::pay::TradeState;
use sandbox::{NotifyMode, Sandbox, SandboxConfig};
use serde::Deserialize;
use wechat_protocol::pay::{self, SignType};
use wechat_protocol::xml;

const TABLE: &str = include_str!("../../../services/wechat-protocol/tests/conformance/pay_v2.toml");

#[derive(Deserialize)]
struct Table {
    message: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    name: String,
    xml: String,
}

/// The field names of a real message, less those that only some orders carry (merchant data
/// left empty, another trade type's fields, coupons and device data the order did not have).
fn real_fields(name: &str) -> BTreeSet<String> {
    let table: Table = toml::from_str(TABLE).unwrap();
    let row = table
        .message
        .iter()
        .find(|row| row.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the table"));
    let fields = xml::parse(row.xml.trim().as_bytes()).unwrap();
    let optional = [
        "attach",
        "device_info",
        "code_url",
        "mweb_url",
        "err_code",
        "err_code_des",
    ];
    fields
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !optional.contains(&k.as_str()))
        .map(|(k, _)| k)
        .collect()
}

struct Merchant {
    sandbox: Sandbox,
    http: reqwest::Client,
}

impl Merchant {
    async fn start() -> Self {
        Self {
            sandbox: Sandbox::start_local(SandboxConfig::default())
                .await
                .unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// A signed request, as a merchant sends it; the answer's fields.
    async fn call(
        &self,
        path: &str,
        sign_type: SignType,
        params: &[(&str, &str)],
    ) -> BTreeMap<String, String> {
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
        let body = sandbox::pay::document(&fields);
        let answer = self
            .http
            .post(format!("{}{path}", self.sandbox.url()))
            .body(body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let answer = xml::parse(&answer).unwrap();
        // WeChat Pay signs the answer with the request's algorithm and does not say so.
        assert!(!answer.contains_key("sign_type"), "{path}: {answer:?}");
        if answer.contains_key("sign") {
            pay::verify(&answer, &cfg.pay_key, sign_type).unwrap();
        }
        answer
    }

    async fn place(&self, out_trade_no: &str, sign_type: SignType) -> BTreeMap<String, String> {
        self.call(
            "/pay/unifiedorder",
            sign_type,
            &[
                ("body", "芯图相册-积分2个"),
                ("attach", "芯图相册"),
                ("out_trade_no", out_trade_no),
                ("total_fee", "100"),
                ("spbill_create_ip", "203.0.113.7"),
                ("notify_url", "https://example.com/notify"),
                ("trade_type", "JSAPI"),
                ("openid", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"),
            ],
        )
        .await
    }
}

/// Every field of the real message `real` is in `ours`.
fn assert_carries(real: &str, ours: &BTreeMap<String, String>) {
    let missing: Vec<_> = real_fields(real)
        .into_iter()
        .filter(|f| !ours.contains_key(f))
        .collect();
    assert!(
        missing.is_empty(),
        "{real}: the sandbox lacks {missing:?}: {ours:?}"
    );
}

#[tokio::test]
async fn answers_carry_what_real_answers_carry_and_no_sign_type() {
    let merchant = Merchant::start().await;
    for (no, sign_type) in [("T1", SignType::HmacSha256), ("T2", SignType::Md5)] {
        let placed = merchant.place(no, sign_type).await;
        assert_eq!(placed["result_code"], "SUCCESS");
        for real in ["gochat_unifiedorder_app", "nut_unifiedorder_native"] {
            assert_carries(real, &placed);
        }
        let queried = merchant
            .call("/pay/orderquery", sign_type, &[("out_trade_no", no)])
            .await;
        assert_eq!(queried["trade_state"], "NOTPAY");
    }
    // A paid and refunded order, as the real JSAPI REFUND answer shows it.
    merchant.sandbox.set_trade_state("T1", TradeState::Refund);
    let refunded = merchant
        .call("/pay/orderquery", SignType::Md5, &[("out_trade_no", "T1")])
        .await;
    assert_carries("bc_orderquery_refund_state", &refunded);
    assert_eq!(refunded["attach"], "芯图相册");
    merchant.sandbox.set_trade_state("T2", TradeState::Success);
    let paid = merchant
        .call("/pay/orderquery", SignType::Md5, &[("out_trade_no", "T2")])
        .await;
    assert_carries("gochat_orderquery_chinese_attach", &paid);
    merchant.place("T3", SignType::Md5).await;
    merchant.sandbox.age_pay_order("T3", 3600);
    let closed = merchant
        .call("/pay/closeorder", SignType::Md5, &[("out_trade_no", "T3")])
        .await;
    assert_eq!(closed["result_code"], "SUCCESS");
    assert_carries("gochat_closeorder", &closed);
}

#[tokio::test]
async fn notifies_carry_what_a_real_notify_carries() {
    let merchant = Merchant::start().await;
    merchant.sandbox.set_notify_mode(NotifyMode::Drop);
    merchant.place("N1", SignType::HmacSha256).await;
    merchant.sandbox.pay("N1").await.unwrap();
    let notify = merchant.sandbox.notify_fields("N1").unwrap();
    assert_carries("bc_notify_jsapi_no_sign_type", &notify);
    assert!(
        !notify.contains_key("sign_type"),
        "left out unless asked for"
    );
    let key = &merchant.sandbox.config().pay_key;
    pay::verify(&notify, key, SignType::HmacSha256).unwrap();
    assert_eq!(notify["attach"], "芯图相册");
}

#[tokio::test]
async fn bad_requests_get_the_documented_answers() {
    let merchant = Merchant::start().await;
    let http = &merchant.http;
    let url = &format!("{}/pay/unifiedorder", merchant.sandbox.url());
    let answer = |body: Vec<u8>| async move {
        let text = http
            .post(url)
            .body(body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        xml::parse(&text).unwrap()
    };
    let not_xml = answer(b"appid=wx".to_vec()).await;
    assert_eq!(
        (
            not_xml["return_code"].as_str(),
            not_xml["return_msg"].as_str()
        ),
        ("FAIL", "XML格式错误")
    );
    let gbk = answer(b"<xml><body>\xd6\xd0</body></xml>".to_vec()).await;
    assert_eq!(gbk["return_msg"], "编码格式错误");
    let unsigned =
        answer(b"<xml><appid>wx5a1dbox0000000001</appid><sign>0</sign></xml>".to_vec()).await;
    assert_eq!(unsigned["return_msg"], "签名错误");
    // Signed, but a required parameter is missing: a business error, signed.
    let lacking = merchant
        .call(
            "/pay/unifiedorder",
            SignType::Md5,
            &[("out_trade_no", "L1")],
        )
        .await;
    assert_eq!(
        (
            lacking["result_code"].as_str(),
            lacking["err_code"].as_str()
        ),
        ("FAIL", "LACK_PARAMS")
    );
    let unknown = merchant
        .call(
            "/pay/orderquery",
            SignType::Md5,
            &[("out_trade_no", "nope")],
        )
        .await;
    assert_eq!(unknown["err_code"], "ORDERNOTEXIST");
}
