//! Membership service configuration (defaults and documentation in `config.default.toml`).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use platform::config::{DatabaseConfig, RedisConfig, ServiceConfig};

const DEFAULTS: &str = include_str!("../config.default.toml");

#[derive(Clone, Debug, Deserialize)]
pub struct MembershipConfig {
    pub membership_listen_addr: String,
    pub wechat_appid: String,
    pub wechat_secret: SecretString,
    pub wechat_api_base: String,
    pub wechat_mp_base: String,
    pub qrcode_expire_seconds: u32,
    pub wechat_timeout_ms: u64,
    pub new_follower_credits: i64,
    pub wechatpay_mch_id: String,
    pub wechatpay_api_key: SecretString,
    pub wechatpay_api_base: String,
    pub wechatpay_notify_url: String,
    pub wechatpay_sign_type: String,
    pub wechatpay_timeout_ms: u64,
    pub wechatpay_refund_notify_url: String,
    pub expiry_reminder_template_id: String,
    pub expiry_reminder_days: u32,
    pub expiry_reminder_url: String,
    pub expiry_reminder_per_minute: u32,
    pub expiry_reminder_interval_ms: u64,
    pub bill_check_hour: u32,
    pub bill_check_interval_ms: u64,
    pub wechatpay_cert_path: String,
    pub wechatpay_key_path: String,
    pub wechatpay_secapi_base: String,
    pub wechatpay_secapi_ca_path: String,
    pub wechatpay_api_version: String,
    pub wechatpay_mch_serial_no: String,
    pub wechatpay_api_v3_key: SecretString,
    pub wechatpay_public_key_id: String,
    pub wechatpay_public_key_path: String,
    pub wechatpay_platform_cert_path: String,
    pub wechatpay_v3_notify_url: String,
    pub member_price_fen: i64,
    pub member_days: u32,
    pub member_bonus_credits: i64,
    pub member_renew_window_days: u32,
    pub credit_unit_fen: i64,
    pub credits_min: u32,
    pub credits_max: u32,
    pub order_expire_minutes: u32,
    pub order_close_min_age_secs: u32,
    pub reconcile_interval_ms: u64,
    pub reconcile_query_after_secs: u32,
    pub reconcile_backoff_first_secs: u32,
    pub reconcile_backoff_max_secs: u32,
    pub hold_ttl_secs: u32,
    pub hold_janitor_interval_ms: u64,
    pub retention_interval_ms: u64,
    pub event_retention_days: u32,
    pub binding_retention_days: u32,
    pub hold_retention_days: u32,
    pub service: ServiceConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
}

use platform::config::production::ProductionCheck;
pub use platform::config::{ConfigError, is_sandbox_url};

impl MembershipConfig {
    /// Loads the defaults overlaid by the environment, then validates.
    pub fn load() -> Result<Self, ConfigError> {
        let cfg: Self = platform::config::load(&[DEFAULTS])?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Returns the embedded defaults, for tests that start from them.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(platform::config::defaults_only(&[DEFAULTS])?)
    }

    /// Where refund notifies go: as configured, or beside the pay notify.
    pub fn refund_notify_url(&self) -> String {
        self.beside_pay_notify(&self.wechatpay_refund_notify_url, "refund-notify")
    }

    /// Where v3 notifications go: as configured, or beside the v2 pay notify.
    pub fn v3_notify_url(&self) -> String {
        self.beside_pay_notify(&self.wechatpay_v3_notify_url, "v3-notify")
    }

    /// `configured`, or the pay notify URL with `segment` in place of its last path segment.
    fn beside_pay_notify(&self, configured: &str, segment: &str) -> String {
        if !configured.is_empty() {
            return configured.to_owned();
        }
        url::Url::parse(&self.wechatpay_notify_url)
            .and_then(|notify| notify.join(segment))
            .map(String::from)
            .unwrap_or_default()
    }

    /// Whether orders go through WeChat Pay API v3.
    pub fn uses_v3(&self) -> bool {
        self.wechatpay_api_version == "v3"
    }

    /// Under v3 the v2 API key only verifies v2 notifies of orders placed before a switch: a
    /// merchant that started on v3 has none to give.
    fn v2_key_optional(&self) -> bool {
        self.uses_v3() && self.wechatpay_api_key.expose_secret().is_empty()
    }

    /// What API v3 needs beyond v2's settings, if it is selected.
    fn validate_v3(&self) -> Result<(), ConfigError> {
        let invalid = |why: &str| Err(ConfigError::Invalid(why.into()));
        match self.wechatpay_api_version.as_str() {
            "v2" => return Ok(()),
            "v3" => {}
            _ => return invalid("WECHATPAY_API_VERSION must be v2 or v3"),
        }
        if self.wechatpay_key_path.is_empty() {
            return invalid("API v3 signs with the merchant key: set WECHATPAY_KEY_PATH");
        }
        if self.wechatpay_mch_serial_no.is_empty() && self.wechatpay_cert_path.is_empty() {
            return invalid(
                "API v3 names the merchant certificate: set WECHATPAY_MCH_SERIAL_NO or WECHATPAY_CERT_PATH",
            );
        }
        if self.wechatpay_api_v3_key.expose_secret().len() != 32 {
            return invalid("WECHATPAY_API_V3_KEY must be the 32-character APIv3 key");
        }
        if self.wechatpay_public_key_id.is_empty() != self.wechatpay_public_key_path.is_empty() {
            return invalid(
                "WECHATPAY_PUBLIC_KEY_ID and WECHATPAY_PUBLIC_KEY_PATH go together: set both or neither",
            );
        }
        if self.wechatpay_public_key_path.is_empty() && self.wechatpay_platform_cert_path.is_empty()
        {
            return invalid(
                "API v3 verifies WeChat Pay's signatures: set WECHATPAY_PUBLIC_KEY_ID and \
                 WECHATPAY_PUBLIC_KEY_PATH, or WECHATPAY_PLATFORM_CERT_PATH",
            );
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_v3()?;
        if !(60..=2_592_000).contains(&self.qrcode_expire_seconds) {
            return Err(ConfigError::Invalid(
                "qrcode_expire_seconds must be within 60..=2592000".into(),
            ));
        }
        if self.new_follower_credits < 0 {
            return Err(ConfigError::Invalid(
                "new_follower_credits must be >= 0".into(),
            ));
        }
        if self.service.is_production() {
            let mut check = ProductionCheck::new();
            check
                .https_url("WECHAT_API_BASE", &self.wechat_api_base)
                .https_url("WECHAT_MP_BASE", &self.wechat_mp_base)
                .https_url("WECHATPAY_API_BASE", &self.wechatpay_api_base)
                .https_url("WECHATPAY_NOTIFY_URL", &self.wechatpay_notify_url)
                .https_url("WECHATPAY_REFUND_NOTIFY_URL", &self.refund_notify_url())
                .https_url("WECHATPAY_V3_NOTIFY_URL", &self.v3_notify_url())
                .require(
                    "WECHATPAY_SECAPI_CA_PATH",
                    self.wechatpay_secapi_ca_path.is_empty(),
                    "must be empty: it trusts a private test endpoint",
                )
                // An official account's AppSecret and a merchant's API key are 32 characters.
                .secret("WECHAT_SECRET", self.wechat_secret.expose_secret(), 32)
                .service_token(&self.service.service_token);
            if !self.v2_key_optional() {
                check.secret(
                    "WECHATPAY_API_KEY",
                    self.wechatpay_api_key.expose_secret(),
                    32,
                );
            }
            if !self.wechatpay_secapi_base.is_empty() {
                check.https_url("WECHATPAY_SECAPI_BASE", &self.wechatpay_secapi_base);
            }
            if self.uses_v3() {
                check.secret(
                    "WECHATPAY_API_V3_KEY",
                    self.wechatpay_api_v3_key.expose_secret(),
                    32,
                );
            }
            check.finish()?;
        }
        if self.expiry_reminder_per_minute == 0 || !(1..=30).contains(&self.expiry_reminder_days) {
            return Err(ConfigError::Invalid(
                "expiry_reminder_per_minute must be positive and expiry_reminder_days within 1..=30"
                    .into(),
            ));
        }
        if self.bill_check_hour > 23 {
            return Err(ConfigError::Invalid(
                "bill_check_hour must be within 0..=23".into(),
            ));
        }
        // A certificate needs its key; under v3 the key alone signs requests.
        if self.wechatpay_cert_path.is_empty() != self.wechatpay_key_path.is_empty()
            && !(self.uses_v3() && self.wechatpay_cert_path.is_empty())
        {
            return Err(ConfigError::Invalid(
                "WECHATPAY_CERT_PATH and WECHATPAY_KEY_PATH go together: set both or neither"
                    .into(),
            ));
        }
        if self.member_price_fen <= 0 || self.credit_unit_fen <= 0 {
            return Err(ConfigError::Invalid("prices must be positive fen".into()));
        }
        if self.credits_min == 0 || self.credits_min > self.credits_max {
            return Err(ConfigError::Invalid(
                "credits_min must be within 1..=credits_max".into(),
            ));
        }
        if let Err(why) = self
            .wechatpay_sign_type
            .parse::<wechat_protocol::pay::SignType>()
        {
            return Err(ConfigError::Invalid(format!(
                "WECHATPAY_SIGN_TYPE: {why}: it must be MD5 or HMAC-SHA256"
            )));
        }
        if self.wechatpay_api_key.expose_secret().len() != 32 && !self.v2_key_optional() {
            return Err(ConfigError::Invalid(
                "wechatpay_api_key must be 32 characters".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_the_sandbox() {
        let mut cfg = MembershipConfig::defaults().unwrap();
        cfg.validate().unwrap();
        cfg.service.xintu_env = "production".into();
        cfg.wechat_api_base = "http://127.0.0.1:9000".into();
        assert!(cfg.validate().is_err());
        cfg.wechat_api_base = "https://api.weixin.qq.com".into();
        assert!(cfg.validate().is_err(), "the pay sandbox is refused too");
        cfg.wechatpay_api_base = "https://api.mch.weixin.qq.com".into();
        cfg.wechatpay_notify_url = "https://www.xintuxiangce.top/api/v1/payment/notify".into();
        let refused = cfg.validate().unwrap_err().to_string();
        assert!(
            refused.contains("WECHAT_SECRET") && refused.contains("WECHATPAY_API_KEY"),
            "the sandbox's credentials are refused too: {refused}"
        );
        assert!(refused.contains("SERVICE_TOKEN"), "{refused}");
        cfg.service.service_token =
            platform::grpc::ServiceToken::parse("Vn4Qe8Rt2Yu6Io0Pa3Sd7Fg1Hj5Kl9Zx2Cv6Bn").unwrap();
        cfg.wechat_secret = SecretString::from("3c5d0e8f1a2b4c6d8e0f1a3b5c7d9e0f".to_owned());
        cfg.wechatpay_api_key = SecretString::from("Q8w2E4r6T8y0U2i4O6p8A0s2D4f6G8h0".to_owned());
        cfg.validate().unwrap();
        cfg.wechatpay_api_key = SecretString::from("1900009191".to_owned());
        assert!(cfg.validate().is_err(), "an API key is 32 characters");
    }

    #[test]
    fn refund_notifies_go_beside_the_pay_notify_unless_configured() {
        let mut cfg = MembershipConfig::defaults().unwrap();
        cfg.wechatpay_notify_url = "https://www.xintuxiangce.top/api/v1/payment/notify".into();
        assert_eq!(
            cfg.refund_notify_url(),
            "https://www.xintuxiangce.top/api/v1/payment/refund-notify"
        );
        cfg.wechatpay_refund_notify_url = "https://pay.example.cn/refunds".into();
        assert_eq!(cfg.refund_notify_url(), "https://pay.example.cn/refunds");
        cfg.wechatpay_cert_path = "/etc/xintu/apiclient_cert.pem".into();
        assert!(cfg.validate().is_err(), "a certificate without its key");
        cfg.wechatpay_key_path = "/etc/xintu/apiclient_key.pem".into();
        cfg.validate().unwrap();
    }

    #[test]
    fn api_v3_needs_its_keys_and_its_notify_goes_beside_v2s() {
        let mut cfg = MembershipConfig::defaults().unwrap();
        cfg.wechatpay_notify_url = "https://www.xintuxiangce.top/api/v1/payment/notify".into();
        assert_eq!(
            cfg.v3_notify_url(),
            "https://www.xintuxiangce.top/api/v1/payment/v3-notify"
        );
        cfg.wechatpay_api_version = "v4".into();
        assert!(cfg.validate().is_err(), "v2 or v3 only");
        cfg.wechatpay_api_version = "v3".into();
        let refused = |cfg: &MembershipConfig| match cfg.validate() {
            Err(ConfigError::Invalid(why)) => why,
            other => format!("not refused: {other:?}"),
        };
        assert!(refused(&cfg).contains("WECHATPAY_KEY_PATH"));
        cfg.wechatpay_key_path = "/etc/xintu/apiclient_key.pem".into();
        assert!(refused(&cfg).contains("WECHATPAY_MCH_SERIAL_NO"));
        cfg.wechatpay_mch_serial_no = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into();
        assert!(refused(&cfg).contains("WECHATPAY_API_V3_KEY"));
        cfg.wechatpay_api_v3_key =
            SecretString::from("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb".to_owned());
        assert!(refused(&cfg).contains("WECHATPAY_PUBLIC_KEY_ID"));
        cfg.wechatpay_public_key_id = "PUB_KEY_ID_0114232134912410000000000000".into();
        assert!(refused(&cfg).contains("go together"));
        cfg.wechatpay_public_key_path = "/etc/xintu/pub_key.pem".into();
        // The key alone, without a certificate: v3 signs with it.
        cfg.validate().unwrap();
        // A merchant that started on v3 has no v2 API key; under v2 it is required.
        cfg.wechatpay_api_key = SecretString::from(String::new());
        cfg.validate().unwrap();
        cfg.wechatpay_api_version = "v2".into();
        cfg.wechatpay_key_path = String::new();
        assert!(refused(&cfg).contains("wechatpay_api_key must be 32 characters"));
        assert!(!format!("{cfg:?}").contains("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"));
    }

    #[test]
    fn secrets_do_not_print() {
        let cfg = MembershipConfig::defaults().unwrap();
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("sandbox-app-secret"), "{printed}");
        assert!(!printed.contains("membership-local"), "{printed}");
        assert!(!printed.contains("sandboxsandbox"), "{printed}");
    }
}
