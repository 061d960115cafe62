//! The sandbox's WeChat Pay API v3 checked as WeChat Pay documents it: a request is refused with
//! 401 SIGN_ERROR unless its Authorization is the merchant certificate's signature over method,
//! path and query, a timestamp within five minutes, nonce and body; every answer, errors
//! included, is signed with WeChat Pay's key and names it in Wechatpay-Serial; an unknown order
//! is 404 ORDER_NOT_EXIST; a close is 204 without a body; a payment's notification carries
//! every field of the transaction WeChat Pay documents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use sandbox::{NotifyMode, Sandbox, SandboxConfig};
use wechat_protocol::pay_v3::{
    MerchantSigner, Notification, PlatformKeys, SignedHeaders, decrypt_resource,
};

/// WeChat Pay's documented `TRANSACTION.SUCCESS` resource (the JSAPI payment notice page).
const DOCUMENTED_TRANSACTION: &str =
    include_str!("../../../services/wechat-protocol/tests/data/v3_transaction_documented.json");

/// The field paths of a JSON object (`amount.total`, …), arrays as one field.
fn paths(value: &serde_json::Value, prefix: &str, into: &mut BTreeSet<String>) {
    if let Some(object) = value.as_object() {
        for (key, value) in object {
            let path = format!("{prefix}{key}");
            paths(value, &format!("{path}."), into);
            into.insert(path);
        }
    }
}

struct Merchant {
    sandbox: Sandbox,
    signer: MerchantSigner,
    keys: PlatformKeys,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    body: serde_json::Value,
    /// Whether the signature headers verify with WeChat Pay's public key.
    signed: bool,
}

impl Merchant {
    async fn start() -> Self {
        let sandbox = Sandbox::start_local(SandboxConfig::default())
            .await
            .unwrap();
        let tls = sandbox.merchant_tls().unwrap();
        let cfg = sandbox.config();
        let signer =
            MerchantSigner::from_pem(&cfg.mch_id, &tls.serial_no, &tls.client_key_pem).unwrap();
        let mut keys = PlatformKeys::default();
        let (id, pem) = sandbox.wechatpay_public_key().unwrap();
        keys.add_public_key(&id, &pem).unwrap();
        Self {
            sandbox,
            signer,
            keys,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: &str, path: &str, body: &str, authorization: String) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.sandbox.url()))
            .header("authorization", authorization)
            .header("accept", "application/json");
        if !body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let (timestamp, nonce, signature, serial) = (
            header("wechatpay-timestamp"),
            header("wechatpay-nonce"),
            header("wechatpay-signature"),
            header("wechatpay-serial"),
        );
        let bytes = response.bytes().await.unwrap();
        let signed = self
            .keys
            .verify(
                SignedHeaders {
                    timestamp: &timestamp,
                    nonce: &nonce,
                    signature: &signature,
                    serial: &serial,
                },
                &bytes,
                chrono::Utc::now().timestamp(),
            )
            .is_ok();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            body,
            signed,
        }
    }

    /// A request signed as the merchant signs it, at `timestamp`.
    async fn call_at(&self, timestamp: i64, method: &str, path: &str, body: &str) -> Answer {
        let authorization = self.signer.authorization(
            method,
            path,
            timestamp,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            body,
        );
        self.send(method, path, body, authorization).await
    }

    async fn call(&self, method: &str, path: &str, body: &str) -> Answer {
        self.call_at(chrono::Utc::now().timestamp(), method, path, body)
            .await
    }

    fn order(&self, out_trade_no: &str, total: i64) -> String {
        let cfg = self.sandbox.config();
        serde_json::json!({
            "appid": cfg.appid, "mchid": cfg.mch_id, "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": out_trade_no, "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
            "amount": { "total": total, "currency": "CNY" },
            "payer": { "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" },
        })
        .to_string()
    }
}

#[tokio::test]
async fn signed_requests_are_answered_signed_and_unsigned_ones_refused() {
    let merchant = Merchant::start().await;
    let body = merchant.order("1217752501201407033233368018", 100);
    let placed = merchant
        .call("POST", "/v3/pay/transactions/jsapi", &body)
        .await;
    assert_eq!(placed.status, 200, "{}", placed.body);
    assert!(placed.signed);
    assert!(placed.body["prepay_id"].as_str().unwrap().starts_with("wx"));

    let mchid = &merchant.sandbox.config().mch_id;
    let query =
        format!("/v3/pay/transactions/out-trade-no/1217752501201407033233368018?mchid={mchid}");
    let queried = merchant.call("GET", &query, "").await;
    assert_eq!(queried.status, 200);
    assert!(queried.signed);
    assert_eq!(queried.body["trade_state"], "NOTPAY");
    assert_eq!(queried.body["amount"]["total"], 100);
    assert!(queried.body.get("transaction_id").is_none());

    let unknown = merchant
        .call(
            "GET",
            &format!("/v3/pay/transactions/out-trade-no/XT0000000000?mchid={mchid}"),
            "",
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.body["code"].as_str()),
        (404, Some("ORDER_NOT_EXIST"))
    );
    assert!(unknown.signed, "error answers are signed too");

    // Refused: a stale timestamp, another body than the one signed, a signature by another key,
    // another certificate serial, another scheme.
    let stale = merchant
        .call_at(chrono::Utc::now().timestamp() - 400, "GET", &query, "")
        .await;
    let signed_for_other_body = merchant.signer.authorization(
        "POST",
        "/v3/pay/transactions/jsapi",
        chrono::Utc::now().timestamp(),
        "nonce",
        &merchant.order("1217752501201407033233368019", 1),
    );
    let edited = merchant
        .send(
            "POST",
            "/v3/pay/transactions/jsapi",
            &merchant.order("1217752501201407033233368019", 100),
            signed_for_other_body,
        )
        .await;
    let stranger = MerchantSigner::from_pem(
        mchid,
        &merchant.sandbox.merchant_tls().unwrap().serial_no,
        include_str!("../../../services/wechat-protocol/tests/data/wechatpy_apiclient_key.pem"),
    )
    .unwrap();
    let by_stranger =
        stranger.authorization("GET", &query, chrono::Utc::now().timestamp(), "n", "");
    let forged = merchant.send("GET", &query, "", by_stranger).await;
    let other_serial = MerchantSigner::from_pem(
        mchid,
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        &merchant.sandbox.merchant_tls().unwrap().client_key_pem,
    )
    .unwrap()
    .authorization("GET", &query, chrono::Utc::now().timestamp(), "n", "");
    let wrong_serial = merchant.send("GET", &query, "", other_serial).await;
    let genuine =
        merchant
            .signer
            .authorization("GET", &query, chrono::Utc::now().timestamp(), "n", "");
    let other_scheme = merchant
        .send(
            "GET",
            &query,
            "",
            genuine.replace("WECHATPAY2-SHA256-RSA2048", "WECHATPAY2-SM2-WITH-SM3"),
        )
        .await;
    for (what, answer) in [
        ("stale", stale),
        ("edited", edited),
        ("forged", forged),
        ("wrong serial", wrong_serial),
        ("other scheme", other_scheme),
    ] {
        assert_eq!(answer.status, 401, "{what}: {}", answer.body);
        assert_eq!(answer.body["code"], "SIGN_ERROR", "{what}");
        assert!(answer.signed, "{what}");
    }
    assert!(
        merchant
            .sandbox
            .pay_order("1217752501201407033233368019")
            .is_none(),
        "nothing placed by a refused request"
    );

    // Closing: 204 without a body; a second close says the order is closed.
    let close = "/v3/pay/transactions/out-trade-no/1217752501201407033233368018/close";
    let mchid_body = serde_json::json!({ "mchid": mchid }).to_string();
    let closed = merchant.call("POST", close, &mchid_body).await;
    assert_eq!((closed.status, closed.signed), (204, true));
    assert_eq!(closed.body, serde_json::Value::Null);
    let again = merchant.call("POST", close, &mchid_body).await;
    assert_eq!(
        (again.status, again.body["code"].as_str()),
        (400, Some("ORDER_CLOSED"))
    );
}

#[tokio::test]
async fn a_payment_notification_carries_what_the_documented_one_carries() {
    let merchant = Merchant::start().await;
    let sandbox = &merchant.sandbox;
    sandbox.set_notify_mode(NotifyMode::Drop);
    let body = merchant.order("1217752501201407033233368020", 100);
    let placed = merchant
        .call("POST", "/v3/pay/transactions/jsapi", &body)
        .await;
    assert_eq!(placed.status, 200);
    sandbox.pay("1217752501201407033233368020").await.unwrap();
    let transaction = sandbox
        .v3_order_transaction("1217752501201407033233368020")
        .unwrap();
    let cfg = sandbox.config();
    let notification = sandbox
        .v3_notification_body(&transaction, &cfg.api_v3_key)
        .unwrap();
    // What the merchant receives: signed by WeChat Pay, the resource decrypting under the key.
    let signature = sandbox
        .v3_sign(chrono::Utc::now().timestamp(), notification.as_bytes())
        .unwrap();
    merchant
        .keys
        .verify(
            SignedHeaders {
                timestamp: &signature.timestamp,
                nonce: &signature.nonce,
                signature: &signature.signature,
                serial: &signature.serial,
            },
            notification.as_bytes(),
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    let notification = Notification::parse(notification.as_bytes()).unwrap();
    assert_eq!(notification.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(notification.resource_type, "encrypt-resource");
    assert_eq!(notification.resource.original_type, "transaction");
    let resource = decrypt_resource(cfg.api_v3_key.as_bytes(), &notification.resource).unwrap();
    let ours: serde_json::Value = serde_json::from_slice(&resource).unwrap();
    let documented: serde_json::Value = serde_json::from_str(DOCUMENTED_TRANSACTION).unwrap();
    let (mut have, mut want) = (BTreeSet::new(), BTreeSet::new());
    paths(&ours, "", &mut have);
    paths(&documented, "", &mut want);
    // Coupons, the till's device and the merchant's attach are what only some orders carry.
    want.retain(|path| {
        !["promotion_detail", "scene_info", "attach"]
            .iter()
            .any(|optional| path.starts_with(optional))
    });
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "the sandbox's notification lacks {missing:?}"
    );
    assert_eq!(ours["trade_type"], "JSAPI");
    assert_eq!(ours["amount"]["total"], 100);
    assert_eq!(ours["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
}
