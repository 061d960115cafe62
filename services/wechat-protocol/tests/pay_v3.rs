//! WeChat Pay API v3 against public SDKs' test data: the request signature of wechatpy, a signed
//! notification of the official wechatpay-go, and the AES-256-GCM vector of the official
//! wechatpay-java; and what must be refused (another body, another key, a stale timestamp, an
//! unknown serial, a tampered resource).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test binary: helpers fail loudly

use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use wechat_protocol::pay_v3::{
    EncryptedResource, MerchantSigner, Notification, PlatformKeys, SignedHeaders, Transaction,
    V3Error, certificate_key, decrypt_resource, encrypt_resource, request_message,
};

/// wechatpy `tests/certs/apiclient_key.pem` (MIT; commit 5b8502e): a test merchant key.
const WECHATPY_KEY: &str = include_str!("data/wechatpy_apiclient_key.pem");
/// wechatpay-go `core/notify/notify_test.go` (Apache-2.0; commit 6dbd7ce): the self-signed
/// platform certificate its notification is signed with, serial D7CE59D1F522D701.
const WECHATPAY_GO_CERT: &str = include_str!("data/wechatpay_go_platform_cert.pem");

/// The notification of wechatpay-go's `TestHandler_ParseNotifyRequest`, byte for byte.
const GO_NOTIFY_BODY: &str = concat!(
    "{\"id\":\"3119dfba-e649-5eec-ab1e-3412bc4d2e17\",",
    "\"create_time\":\"2021-06-24T16:37:26+08:00\",",
    "\"resource_type\":\"encrypt-resource\",",
    "\"event_type\":\"PAYSCORE.USER_OPEN_SERVICE\",",
    "\"summary\":\"签约成功\",",
    "\"resource\":{",
    "\"original_type\":\"payscore\",",
    "\"algorithm\":\"AEAD_AES_256_GCM\",",
    "\"ciphertext\":\"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZt",
    "tevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR",
    "7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==\",",
    "\"associated_data\":\"payscore\",",
    "\"nonce\":\"Kj7QIyUiYx1q\"}",
    "}"
);
const GO_SIGNATURE: &str = concat!(
    "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXF",
    "lbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1I",
    "BLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY4",
    "06ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q=="
);
const GO_TIMESTAMP: i64 = 1_624_523_846;

fn go_headers(signature: &str) -> SignedHeaders<'_> {
    SignedHeaders {
        timestamp: "1624523846",
        nonce: "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz",
        signature,
        serial: "D7CE59D1F522D701",
    }
}

fn go_keys() -> PlatformKeys {
    let mut keys = PlatformKeys::default();
    let serial = keys.add_certificate(WECHATPAY_GO_CERT).unwrap();
    assert_eq!(
        serial, "D7CE59D1F522D701",
        "the certificate's serial names it"
    );
    keys
}

#[test]
fn the_request_signature_is_wechatpys() {
    // wechatpy tests/test_pay_v3.py::test_calculate_signature.
    let signer = MerchantSigner::from_pem("1192221", "SERIAL", WECHATPY_KEY).unwrap();
    let message = request_message(
        "GET",
        "test",
        1_651_854_037,
        "1E3A8D73B5A4AEE787C0F68B5DAB8520",
        "",
    );
    assert_eq!(
        message,
        "GET\ntest\n1651854037\n1E3A8D73B5A4AEE787C0F68B5DAB8520\n\n"
    );
    assert_eq!(
        signer.sign(&message),
        concat!(
            "c4VewIfiOrSXkYtGqoZFzzjOr3LMhFFJRD5l18glbIUyXEF1wcG1euB4w5QdBlhgytM+28W7wmwqWTA8RsQWTBXR0YEXC6Mtd5xpl",
            "SXlXghv7ORl0a2TRVQSuf/vhKOdXc54Ima3wqj8AOkMeaiswp8fdnwd6yq1s0bx6uchP9Q6PO0INGnpdH8NeKP21dlefeOc4H7Ovnq",
            "HEyj/BsvdE1/DYUIFkw1q5fIAfxcUoqeXThtIL6ajLZgaaQJgYhPV7Cd6UMf5gY3yxKYWIWWHALtdWrn+pCcIPKrop/keqHE9wJPYt",
            "AP3uJ8UKohiHDft01X5ex0Es5Z12+lR9VLyEQ=="
        )
    );
    let header = signer.authorization(
        "GET",
        "test",
        1_651_854_037,
        "1E3A8D73B5A4AEE787C0F68B5DAB8520",
        "",
    );
    assert!(header.starts_with(
        "WECHATPAY2-SHA256-RSA2048 mchid=\"1192221\",nonce_str=\"1E3A8D73B5A4AEE787C0F68B5DAB8520\",\
         timestamp=\"1651854037\",serial_no=\"SERIAL\",signature=\"c4VewIfiOrSX"
    ), "{header}");
    // The private key never prints.
    assert!(!format!("{signer:?}").contains("MII"));
}

#[test]
fn wechatpay_gos_signed_notification_verifies_and_parses() {
    let keys = go_keys();
    keys.verify(
        go_headers(GO_SIGNATURE),
        GO_NOTIFY_BODY.as_bytes(),
        GO_TIMESTAMP,
    )
    .unwrap();
    let notification = Notification::parse(GO_NOTIFY_BODY.as_bytes()).unwrap();
    assert_eq!(notification.id, "3119dfba-e649-5eec-ab1e-3412bc4d2e17");
    assert_eq!(notification.event_type, "PAYSCORE.USER_OPEN_SERVICE");
    assert_eq!(notification.summary, "签约成功");
    assert_eq!(notification.resource.algorithm, "AEAD_AES_256_GCM");
    assert_eq!(notification.resource.nonce, "Kj7QIyUiYx1q");
    // Its resource was encrypted with a 16-byte test key (AES-128): a real APIv3 key is 32
    // bytes, and that key is refused rather than used with another cipher.
    assert!(matches!(
        decrypt_resource(b"testMchAPIv3Key0", &notification.resource),
        Err(V3Error::InvalidKey(_))
    ));
}

#[test]
fn what_was_not_signed_so_is_refused() {
    let keys = go_keys();
    // One character of the body changed (签约成功 → 签约失败 would change bytes; a digit is enough).
    let tampered = GO_NOTIFY_BODY.replace("3119dfba", "3119dfbb");
    assert_eq!(
        keys.verify(go_headers(GO_SIGNATURE), tampered.as_bytes(), GO_TIMESTAMP),
        Err(V3Error::BadSignature)
    );
    // The same body re-encoded (Chinese escaped) is not the signed bytes.
    let reencoded = GO_NOTIFY_BODY.replace("签约成功", "\\u7b7e\\u7ea6\\u6210\\u529f");
    assert_eq!(
        keys.verify(go_headers(GO_SIGNATURE), reencoded.as_bytes(), GO_TIMESTAMP),
        Err(V3Error::BadSignature)
    );
    // Another nonce, a signature that is not base64, an empty one.
    let mut headers = go_headers(GO_SIGNATURE);
    headers.nonce = "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBZ";
    assert_eq!(
        keys.verify(headers, GO_NOTIFY_BODY.as_bytes(), GO_TIMESTAMP),
        Err(V3Error::BadSignature)
    );
    for signature in ["not base64 !", ""] {
        assert_eq!(
            keys.verify(
                go_headers(signature),
                GO_NOTIFY_BODY.as_bytes(),
                GO_TIMESTAMP
            ),
            Err(V3Error::BadSignature)
        );
    }
    // A key nobody configured.
    let mut headers = go_headers(GO_SIGNATURE);
    headers.serial = "PUB_KEY_ID_0000000000000000000000000000000";
    assert!(matches!(
        keys.verify(headers, GO_NOTIFY_BODY.as_bytes(), GO_TIMESTAMP),
        Err(V3Error::UnknownSerial(_))
    ));
    // Replayed after the window, or from the future; a timestamp that is not a number.
    for now in [GO_TIMESTAMP + 301, GO_TIMESTAMP - 301] {
        assert!(matches!(
            keys.verify(go_headers(GO_SIGNATURE), GO_NOTIFY_BODY.as_bytes(), now),
            Err(V3Error::StaleTimestamp(_))
        ));
    }
    keys.verify(
        go_headers(GO_SIGNATURE),
        GO_NOTIFY_BODY.as_bytes(),
        GO_TIMESTAMP + 300,
    )
    .unwrap();
    let mut headers = go_headers(GO_SIGNATURE);
    headers.timestamp = "16245238x6";
    assert!(matches!(
        keys.verify(headers, GO_NOTIFY_BODY.as_bytes(), GO_TIMESTAMP),
        Err(V3Error::StaleTimestamp(_))
    ));
}

#[test]
fn a_public_key_verifies_what_its_private_key_signed_and_no_other() {
    // The public-key mode: WeChat Pay's key by its PUB_KEY_ID. Here the wechatpy test key plays
    // WeChat Pay, signing a notification as WeChat Pay does (timestamp, nonce, body).
    let private = RsaPrivateKey::from_pkcs1_pem(WECHATPY_KEY).unwrap();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let mut keys = go_keys();
    keys.add_public_key("PUB_KEY_ID_0114232134912410000000000000", &public_pem)
        .unwrap();
    let wechat_pay = MerchantSigner::from_pem("-", "-", WECHATPY_KEY).unwrap();
    let body = br#"{"id":"n1","event_type":"TRANSACTION.SUCCESS"}"#;
    let signature = wechat_pay.sign(&format!(
        "1700000000\nnonce-1\n{}\n",
        std::str::from_utf8(body).unwrap()
    ));
    let headers = SignedHeaders {
        timestamp: "1700000000",
        nonce: "nonce-1",
        signature: &signature,
        serial: "PUB_KEY_ID_0114232134912410000000000000",
    };
    keys.verify(headers, body, 1_700_000_010).unwrap();
    // The certificate's key does not verify it: both keys are held, each for its own id.
    let under_certificate = SignedHeaders {
        serial: "D7CE59D1F522D701",
        ..headers
    };
    assert_eq!(
        keys.verify(under_certificate, body, 1_700_000_010),
        Err(V3Error::BadSignature)
    );
    assert!(matches!(
        PlatformKeys::default().add_public_key(
            "PUB_KEY_ID_x",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        ),
        Err(V3Error::InvalidKey(_))
    ));
}

#[test]
fn the_aes_256_gcm_vector_of_wechatpay_java() {
    // wechatpay-java core/.../cipher/AeadAesCipherTest.java with TestConfig's key (commit 1dab7be).
    let key = b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
    let resource = EncryptedResource {
        algorithm: "AEAD_AES_256_GCM".into(),
        ciphertext: "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI=".into(),
        nonce: "uluk4a9R25RW".into(),
        associated_data: "associatedData".into(),
        original_type: "transaction".into(),
    };
    assert_eq!(decrypt_resource(key, &resource).unwrap(), b"message");
    let encrypted = encrypt_resource(
        key,
        "uluk4a9R25RW",
        "associatedData",
        "transaction",
        b"message",
    )
    .unwrap();
    assert_eq!(
        encrypted, resource,
        "the sandbox encrypts as WeChat Pay does"
    );

    // Another key, other associated data, a flipped byte, another algorithm: refused.
    assert_eq!(
        decrypt_resource(b"a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gc", &resource),
        Err(V3Error::Decrypt)
    );
    let other_aad = EncryptedResource {
        associated_data: "transaction".into(),
        ..resource.clone()
    };
    assert_eq!(decrypt_resource(key, &other_aad), Err(V3Error::Decrypt));
    let flipped = EncryptedResource {
        ciphertext: "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwM=".into(),
        ..resource.clone()
    };
    assert_eq!(decrypt_resource(key, &flipped), Err(V3Error::Decrypt));
    let other_algorithm = EncryptedResource {
        algorithm: "AEAD_AES_128_GCM".into(),
        ..resource.clone()
    };
    assert!(matches!(
        decrypt_resource(key, &other_algorithm),
        Err(V3Error::Malformed(_))
    ));
    let short_nonce = EncryptedResource {
        nonce: "uluk4a9R25R".into(),
        ..resource
    };
    assert!(matches!(
        decrypt_resource(key, &short_nonce),
        Err(V3Error::Malformed(_))
    ));
}

#[test]
fn a_notification_that_is_not_one_is_refused() {
    for body in [&b"<xml/>"[..], b"{}", b"{\"id\":1}", b""] {
        assert!(matches!(
            Notification::parse(body),
            Err(V3Error::Malformed(_))
        ));
    }
}

/// The decrypted resource of a payment notification, as WeChat Pay's JSAPI "支付成功回调通知"
/// page documents it (its example: a discounted MICROPAY order with promotion and scene data).
const DOCUMENTED_TRANSACTION: &str = include_str!("data/v3_transaction_documented.json");

#[test]
fn the_documented_transaction_reads_with_what_a_merchant_checks() {
    let transaction: Transaction = serde_json::from_str(DOCUMENTED_TRANSACTION).unwrap();
    assert_eq!(transaction.appid, "wxd678efh567hg6787");
    assert_eq!(transaction.mchid, "1230000109");
    assert_eq!(transaction.out_trade_no, "1217752501201407033233368018");
    assert_eq!(transaction.transaction_id, "1217752501201407033233368018");
    assert_eq!(transaction.trade_state, "SUCCESS");
    assert_eq!(
        transaction
            .payer
            .as_ref()
            .map(|payer| payer.openid.as_str()),
        Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    );
    let amount = transaction.amount.unwrap();
    assert_eq!((amount.total, amount.payer_total), (100, Some(100)));
    assert_eq!(amount.currency, "CNY");
    // An unpaid order's query answer has no transaction id, payer total or success time.
    let unpaid: Transaction = serde_json::from_str(
        r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"1217752501201407033233368018",
            "trade_state":"NOTPAY","trade_state_desc":"订单未支付",
            "amount":{"total":100,"currency":"CNY","payer_currency":"CNY"},"payer":{"openid":""}}"#,
    )
    .unwrap();
    assert_eq!(unpaid.transaction_id, "");
    assert_eq!(unpaid.amount.unwrap().payer_total, None);
}

#[test]
fn a_certificate_names_its_serial_as_wechat_pay_does() {
    let (serial, _) = certificate_key(WECHATPAY_GO_CERT).unwrap();
    assert_eq!(serial, "D7CE59D1F522D701");
    assert!(matches!(
        certificate_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Err(V3Error::InvalidKey(_))
    ));
}
