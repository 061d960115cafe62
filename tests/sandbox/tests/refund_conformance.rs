//! The sandbox's WeChat Pay v2 refunds: the mutual-TLS `secapi` listener, `secapi/pay/refund`,
//! `pay/refundquery` and the refund notify, checked against the real messages of the
//! `wechat-protocol` conformance table (public SDKs' test data and documented examples), and the
//! refund rules of pay.weixin.qq.com v2 (chapters 9_4, 9_5, 9_16).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use sandbox::{NotifyMode, RefundMode, RefundStatus, Sandbox, SandboxConfig};
use serde::Deserialize;
use tokio::sync::mpsc;
use wechat_protocol::pay::{self, SignType};
use wechat_protocol::refund::decrypt_req_info;
use wechat_protocol::xml;

const TABLE: &str = include_str!("../../../services/wechat-protocol/tests/conformance/pay_v2.toml");

#[derive(Deserialize)]
struct Table {
    message: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    name: String,
    key: String,
    xml: String,
}

fn row(name: &str) -> Row {
    let table: Table = toml::from_str(TABLE).unwrap();
    table
        .message
        .into_iter()
        .find(|row| row.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the table"))
}

/// The non-empty field names of a real message, less `skip` (fields the sandbox's case does not
/// have: a discount's promotion_detail, an unknown channel).
fn real_fields(name: &str, skip: &[&str]) -> BTreeSet<String> {
    let fields = xml::parse(row(name).xml.trim().as_bytes()).unwrap();
    fields
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .map(|(k, _)| k)
        .collect()
}

/// Every field of the real message is in ours.
fn assert_carries(real: &str, skip: &[&str], ours: &BTreeMap<String, String>) {
    let missing: Vec<_> = real_fields(real, skip)
        .into_iter()
        .filter(|f| !ours.contains_key(f))
        .collect();
    assert!(
        missing.is_empty(),
        "{real}: the sandbox lacks {missing:?}: {ours:?}"
    );
}

/// A merchant with its apiclient certificate, calling the secapi listener.
struct Merchant {
    sandbox: Sandbox,
    tls: reqwest::Client,
}

fn tls_client(sandbox: &Sandbox, with_identity: bool) -> reqwest::Client {
    let tls = sandbox.merchant_tls().unwrap();
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap());
    if with_identity {
        let pem = format!("{}{}", tls.client_cert_pem, tls.client_key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

impl Merchant {
    async fn start() -> Self {
        let sandbox = Sandbox::start_local(SandboxConfig::default())
            .await
            .unwrap();
        let tls = tls_client(&sandbox, true);
        Self { sandbox, tls }
    }

    /// A signed request to the secapi listener; the answer's fields, its signature checked.
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
        let answer = self
            .tls
            .post(format!("{}{path}", self.sandbox.secapi_url()))
            .body(sandbox::pay::document(&fields))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let answer = xml::parse(&answer).unwrap();
        assert!(!answer.contains_key("sign_type"), "{path}: {answer:?}");
        if answer.contains_key("sign") {
            pay::verify(&answer, &cfg.pay_key, sign_type).unwrap();
        }
        answer
    }

    /// A paid order of `fee` fen.
    async fn paid(&self, out_trade_no: &str, fee: &str) -> String {
        self.sandbox.set_notify_mode(NotifyMode::Drop);
        let placed = self
            .call(
                "/pay/unifiedorder",
                SignType::Md5,
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
        // The payment's own notify is not what these tests are about.
        let transaction_id = self.sandbox.pay(out_trade_no).await.unwrap();
        self.sandbox.set_notify_mode(NotifyMode::Normal);
        transaction_id
    }

    async fn refund(
        &self,
        out_trade_no: &str,
        out_refund_no: &str,
        total_fee: &str,
        refund_fee: &str,
        notify_url: &str,
    ) -> BTreeMap<String, String> {
        self.call(
            "/secapi/pay/refund",
            SignType::HmacSha256,
            &[
                ("out_trade_no", out_trade_no),
                ("out_refund_no", out_refund_no),
                ("total_fee", total_fee),
                ("refund_fee", refund_fee),
                ("notify_url", notify_url),
            ],
        )
        .await
    }

    async fn query(&self, by: &str, value: &str) -> BTreeMap<String, String> {
        self.call("/pay/refundquery", SignType::Md5, &[(by, value)])
            .await
    }

    /// Polls refundquery until the refund has ended.
    async fn ended(&self, out_refund_no: &str) -> BTreeMap<String, String> {
        for _ in 0..100 {
            let answer = self.query("out_refund_no", out_refund_no).await;
            if answer["refund_status_0"] != "PROCESSING" {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{out_refund_no} never ended");
    }
}

fn code(answer: &BTreeMap<String, String>) -> (&str, &str) {
    (
        answer.get("result_code").map_or("", String::as_str),
        answer.get("err_code").map_or("", String::as_str),
    )
}

/// A merchant's notify endpoint: answers FAIL to the first `fail_first` deliveries, then
/// SUCCESS; hands every body on.
async fn receiver(fail_first: u32) -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let failures = Arc::new(AtomicU32::new(fail_first));
    let app = Router::new().route(
        "/refund-notify",
        post(move |body: String| {
            let tx = tx.clone();
            let failures = Arc::clone(&failures);
            async move {
                tx.send(body).unwrap();
                let fail = failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let code = if fail { "FAIL" } else { "SUCCESS" };
                format!("<xml><return_code><![CDATA[{code}]]></return_code></xml>")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/refund-notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

async fn next_notify(rx: &mut mpsc::UnboundedReceiver<String>) -> BTreeMap<String, String> {
    let body = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a refund notify")
        .unwrap();
    xml::parse(body.as_bytes()).unwrap()
}

#[tokio::test]
async fn secapi_needs_the_merchants_client_certificate() {
    let merchant = Merchant::start().await;
    merchant.paid("TLS001", "100").await;
    let with_cert = merchant.refund("TLS001", "RTLS001", "100", "10", "").await;
    assert_eq!(with_cert["result_code"], "SUCCESS", "{with_cert:?}");

    // Trusting the CA but showing no certificate: the handshake fails.
    let anonymous = tls_client(&merchant.sandbox, false);
    let refused = anonymous
        .post(format!(
            "{}/secapi/pay/refund",
            merchant.sandbox.secapi_url()
        ))
        .body("<xml></xml>")
        .send()
        .await;
    let error = format!("{:?}", refused.expect_err("no client certificate"));
    assert!(error.contains("CertificateRequired"), "{error}");

    // A certificate from another CA: refused too.
    let stranger_key = rcgen::KeyPair::generate().unwrap();
    let stranger = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&stranger_key)
        .unwrap();
    let pem = format!("{}{}", stranger.pem(), stranger_key.serialize_pem());
    let forged = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                merchant.sandbox.merchant_tls().unwrap().ca_pem.as_bytes(),
            )
            .unwrap(),
        )
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let refused = forged
        .post(format!(
            "{}/secapi/pay/refund",
            merchant.sandbox.secapi_url()
        ))
        .body("<xml></xml>")
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // The plain listener: nginx's 400 page, as WeChat Pay answers a request without one.
    let plain = reqwest::Client::new()
        .post(format!("{}/secapi/pay/refund", merchant.sandbox.url()))
        .body("<xml></xml>")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    assert!(
        plain
            .text()
            .await
            .unwrap()
            .contains("No required SSL certificate was sent")
    );

    // The client certificate names the merchant, as apiclient_cert.pem does.
    let tls = merchant.sandbox.merchant_tls().unwrap();
    assert!(tls.client_key_pem.contains("BEGIN PRIVATE KEY"));
    assert!(tls.client_cert_pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(merchant.sandbox.stats().refunds, 1);
}

#[tokio::test]
async fn answers_and_notifies_carry_what_real_ones_carry() {
    let merchant = Merchant::start().await;
    merchant.sandbox.set_refund_mode(RefundMode::Hold);
    let transaction_id = merchant.paid("CONF001", "100").await;
    let (url, mut notifies) = receiver(0).await;
    let refunded = merchant
        .refund("CONF001", "RCONF001", "100", "30", &url)
        .await;
    assert_eq!(code(&refunded), ("SUCCESS", ""), "{refunded:?}");
    assert_carries("rwocj_refund_hmac_no_sign_type", &[], &refunded);
    assert_carries("gochat_refund", &[], &refunded);
    assert_carries(
        "shape_wxjava_refund_danpin_promotion_detail",
        &["promotion_detail"],
        &refunded,
    );
    assert_eq!(refunded["transaction_id"], transaction_id);
    let refund_id = &refunded["refund_id"];
    assert!(
        refund_id.len() == 29 && refund_id.starts_with("50"),
        "{refund_id}"
    );
    assert_eq!(
        (
            refunded["refund_fee"].as_str(),
            refunded["total_fee"].as_str()
        ),
        ("30", "100")
    );
    assert_eq!(refunded["cash_refund_fee"], "30");

    let queried = merchant.query("out_refund_no", "RCONF001").await;
    assert_carries("shape_wxjava_refundquery_doc", &[], &queried);
    assert_eq!(queried["refund_status_0"], "PROCESSING");
    assert!(
        merchant
            .sandbox
            .settle_refund("RCONF001", RefundStatus::Success)
    );
    let settled = merchant.query("refund_id", refund_id).await;
    assert_carries("derived_refundquery_reconstructed_original", &[], &settled);
    assert_eq!(settled["refund_status_0"], "SUCCESS");

    let notify = next_notify(&mut notifies).await;
    assert_carries("bc_refund_notify_has_no_sign", &[], &notify);
    assert!(!notify.contains_key("sign"), "documented: no sign");
    let key = &merchant.sandbox.config().pay_key;
    let details = decrypt_req_info(&notify["req_info"], key).unwrap();
    // The captured notify's details (its key is in the table), decrypted the same way.
    let real = row("bc_refund_notify_has_no_sign");
    let real_notify = xml::parse(real.xml.trim().as_bytes()).unwrap();
    let real_details = decrypt_req_info(&real_notify["req_info"], &real.key).unwrap();
    let missing: Vec<_> = real_details
        .keys()
        .filter(|k| !details.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "req_info lacks {missing:?}: {details:?}"
    );
    assert_eq!(details["out_refund_no"], "RCONF001");
    assert_eq!(&details["refund_id"], refund_id);
    assert_eq!(details["refund_status"], "SUCCESS");
    assert_eq!(details["refund_fee"], "30");
    assert_eq!(details["success_time"], settled["refund_success_time_0"]);
    assert!(
        chrono::NaiveDateTime::parse_from_str(&details["success_time"], "%Y-%m-%d %H:%M:%S")
            .is_ok()
    );
    assert_eq!(merchant.sandbox.stats().refund_notifies_sent, 1);

    // The order reports the refund.
    let order = merchant
        .call(
            "/pay/orderquery",
            SignType::Md5,
            &[("out_trade_no", "CONF001")],
        )
        .await;
    assert_eq!(order["trade_state"], "REFUND");
}

#[tokio::test]
async fn the_same_refund_asked_again_is_the_same_refund() {
    let merchant = Merchant::start().await;
    merchant.paid("IDEM001", "100").await;
    let first = merchant
        .refund("IDEM001", "RIDEM001", "100", "40", "")
        .await;
    let again = merchant
        .refund("IDEM001", "RIDEM001", "100", "40", "")
        .await;
    assert_eq!(code(&again), ("SUCCESS", ""));
    assert_eq!(first["refund_id"], again["refund_id"]);
    let other_fee = merchant
        .refund("IDEM001", "RIDEM001", "100", "50", "")
        .await;
    assert_eq!(code(&other_fee), ("FAIL", "REFUND_FEE_MISMATCH"));
    let wrong_total = merchant.refund("IDEM001", "RIDEM002", "99", "10", "").await;
    assert_eq!(code(&wrong_total), ("FAIL", "REFUND_FEE_MISMATCH"));
    let listed = merchant.query("out_trade_no", "IDEM001").await;
    assert_eq!(listed["refund_count"], "1", "one refund, asked for twice");
}

#[tokio::test]
async fn refunds_add_up_to_the_order_and_no_further() {
    let merchant = Merchant::start().await;
    merchant.sandbox.set_refund_mode(RefundMode::Hold);
    merchant.paid("SUM001", "100").await;
    assert_eq!(
        code(&merchant.refund("SUM001", "RSUM001", "100", "60", "").await),
        ("SUCCESS", "")
    );
    let over = merchant.refund("SUM001", "RSUM002", "100", "50", "").await;
    assert_eq!(code(&over), ("FAIL", "ERROR"), "{over:?}");
    assert_eq!(
        code(&merchant.refund("SUM001", "RSUM003", "100", "40", "").await),
        ("SUCCESS", "")
    );
    let full = merchant.refund("SUM001", "RSUM004", "100", "1", "").await;
    assert_eq!(code(&full), ("FAIL", "ERROR"));
    assert_eq!(full["err_code_des"], "订单已全额退款");

    let listed = merchant.query("out_trade_no", "SUM001").await;
    assert_eq!(listed["refund_count"], "2");
    assert_eq!(listed["refund_fee"], "100");
    assert_eq!(
        (
            listed["out_refund_no_0"].as_str(),
            listed["refund_fee_0"].as_str()
        ),
        ("RSUM001", "60")
    );
    assert_eq!(
        (
            listed["out_refund_no_1"].as_str(),
            listed["refund_fee_1"].as_str()
        ),
        ("RSUM003", "40")
    );
    let by_transaction = merchant
        .query("transaction_id", &listed["transaction_id"])
        .await;
    assert_eq!(by_transaction["refund_count"], "2");
}

#[tokio::test]
async fn held_refunds_end_when_settled_and_notify_until_acknowledged() {
    let merchant = Merchant::start().await;
    merchant.sandbox.set_refund_mode(RefundMode::Hold);
    merchant.paid("HOLD001", "100").await;
    let (url, mut notifies) = receiver(1).await;
    merchant
        .refund("HOLD001", "RHOLD001", "100", "100", &url)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = merchant.query("out_refund_no", "RHOLD001").await;
    assert_eq!(held["refund_status_0"], "PROCESSING");
    assert!(!held.contains_key("refund_success_time_0"));
    assert!(notifies.try_recv().is_err(), "no notify while processing");

    // Through the control API, as a test in another process would.
    let settled = reqwest::Client::new()
        .post(format!("{}/_sandbox/settle-refund", merchant.sandbox.url()))
        .json(&serde_json::json!({ "out_refund_no": "RHOLD001", "status": "SUCCESS" }))
        .send()
        .await
        .unwrap();
    assert_eq!(settled.status(), 204);
    assert!(
        !merchant
            .sandbox
            .settle_refund("RHOLD001", RefundStatus::Change),
        "an ended refund stays ended"
    );
    let first = next_notify(&mut notifies).await;
    let second = next_notify(&mut notifies).await;
    assert_ne!(
        first["nonce_str"], second["nonce_str"],
        "a retry is a new document"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(notifies.try_recv().is_err(), "acknowledged: no more");
    assert_eq!(merchant.sandbox.stats().refund_notifies_sent, 2);
    assert_eq!(merchant.sandbox.stats().notifies_sent, 0);
}

#[tokio::test]
async fn refunds_can_end_changed_or_closed() {
    let merchant = Merchant::start().await;
    merchant.paid("END001", "100").await;

    let (url, mut notifies) = receiver(0).await;
    merchant.sandbox.set_refund_mode(RefundMode::Change);
    merchant
        .refund("END001", "REND001", "100", "30", &url)
        .await;
    let changed = merchant.ended("REND001").await;
    assert_eq!(changed["refund_status_0"], "CHANGE");
    assert!(!changed.contains_key("refund_success_time_0"));
    let notify = next_notify(&mut notifies).await;
    let key = &merchant.sandbox.config().pay_key;
    let details = decrypt_req_info(&notify["req_info"], key).unwrap();
    assert_eq!(details["refund_status"], "CHANGE");
    assert!(!details.contains_key("success_time"));

    // Through the control API.
    let set = reqwest::Client::new()
        .post(format!("{}/_sandbox/refund-mode", merchant.sandbox.url()))
        .json(&serde_json::json!("close"))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 204);
    merchant.refund("END001", "REND002", "100", "70", "").await;
    assert_eq!(
        merchant.ended("REND002").await["refund_status_0"],
        "REFUNDCLOSE"
    );
    // A closed refund gave nothing back: its amount can be refunded again.
    merchant
        .sandbox
        .set_refund_mode(RefundMode::Succeed { after_ms: 10 });
    let again = merchant.refund("END001", "REND003", "100", "70", "").await;
    assert_eq!(code(&again), ("SUCCESS", ""));
    let succeeded = merchant.ended("REND003").await;
    assert_eq!(succeeded["refund_status_0"], "SUCCESS");
    assert!(succeeded.contains_key("refund_success_time_0"));
    // No notify_url: nothing is sent.
    assert_eq!(merchant.sandbox.stats().refund_notifies_sent, 1);
}

#[tokio::test]
async fn unknown_and_unpaid_get_the_documented_errors() {
    let merchant = Merchant::start().await;
    let unknown = merchant.query("out_refund_no", "NOPE").await;
    assert_eq!(code(&unknown), ("FAIL", "REFUNDNOTEXIST"));
    assert_eq!(unknown["err_code_des"], "not exist");
    let no_order = merchant.refund("NOPE001", "RNOPE001", "100", "1", "").await;
    assert_eq!(code(&no_order), ("FAIL", "ORDERNOTEXIST"));
    let no_transaction = merchant
        .call(
            "/secapi/pay/refund",
            SignType::Md5,
            &[
                ("transaction_id", "4200000000000000000000000000"),
                ("out_refund_no", "RNOPE002"),
                ("total_fee", "100"),
                ("refund_fee", "1"),
            ],
        )
        .await;
    assert_eq!(code(&no_transaction), ("FAIL", "INVALID_TRANSACTIONID"));
    // Placed, never paid.
    merchant.paid("UNPAID1", "100").await;
    merchant
        .sandbox
        .set_trade_state("UNPAID1", sandbox::pay::TradeState::NotPay);
    let unpaid = merchant.refund("UNPAID1", "RUNPAID1", "100", "1", "").await;
    assert_eq!(code(&unpaid), ("FAIL", "ORDERNOTEXIST"));
    let lacking = merchant.refund("UNPAID1", "", "100", "1", "").await;
    assert_eq!(code(&lacking), ("FAIL", "PARAM_ERROR"));
    let stats = merchant.sandbox.stats();
    assert_eq!((stats.refunds, stats.refund_queries), (4, 1));
}
