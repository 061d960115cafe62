//! Photo service configuration (defaults and documentation in `config.default.toml`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use platform::config::duration::millis;
use platform::config::{DatabaseConfig, RedisConfig, ServiceConfig};
use proto::limits::{PHOTO_LIMITS_DEFAULTS, PhotoLimits};

use crate::dashscope::ProviderSettings;
use crate::edit::EditSettings;

/// This service's own defaults, and the photo limits it shares with the gateway.
const DEFAULTS: [&str; 2] = [
    include_str!("../config.default.toml"),
    PHOTO_LIMITS_DEFAULTS,
];

#[derive(Clone, Debug, Deserialize)]
pub struct PhotoConfig {
    pub photo_listen_addr: String,
    pub geodata_dir: Option<PathBuf>,
    pub membership_grpc_url: String,
    pub membership_timeout_ms: u64,
    pub stats_grpc_url: Option<String>,
    pub service: ServiceConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    /// What the photo API takes; the gateway reads the same section.
    pub photo_limits: PhotoLimits,
    pub classify: ClassifyConfig,
    pub decode: DecodeConfig,
    /// The DashScope account, and how the Qwen-VL client treats it.
    pub dashscope: ProviderSettings,
    pub edits: EditSettings,
}

/// `[classify]`: the local model, the result cache and the cloud path's credits.
#[derive(Clone, Debug, Deserialize)]
pub struct ClassifyConfig {
    pub local_model_path: Option<PathBuf>,
    pub category_rules_path: Option<PathBuf>,
    pub local_model_concurrency: usize,
    pub classify_max_image_side: u32,
    pub classification_cache_ttl_secs: u64,
    pub classification_cache_retention_days: u32,
    pub classification_cache_retention_interval_ms: u64,
    pub cloud_credit_hold_secs: u32,
}

/// `[decode]`: the memory every image decode of one instance shares.
#[derive(Clone, Debug, Deserialize)]
pub struct DecodeConfig {
    pub decode_budget_bytes: u64,
    #[serde(rename = "decode_budget_wait_ms", deserialize_with = "millis")]
    pub decode_budget_wait: Duration,
}

pub use platform::config::{ConfigError, is_sandbox_url};

/// The smallest decode budget: a 12-megapixel phone photo (a baseline JPEG, the common case)
/// needs about 50 MiB.
const MIN_DECODE_BUDGET: u64 = 64 * 1024 * 1024;

impl PhotoConfig {
    /// Loads the defaults overlaid by the environment, then validates.
    pub fn load() -> Result<Self, ConfigError> {
        let cfg: Self = platform::config::load(&DEFAULTS)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Returns the embedded defaults, for tests that start from them.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(platform::config::defaults_only(&DEFAULTS)?)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(invalid) = self.photo_limits.invalid() {
            return Err(ConfigError::Invalid(invalid.into()));
        }
        self.validate_classification()?;
        self.validate_edits()
    }

    fn validate_edits(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let edits = &self.edits;
        let secret = edits.url_secret.expose_secret();
        let checks: [(bool, &str); 5] = [
            (
                secret.len() >= 32,
                "edit_url_secret must be at least 32 bytes",
            ),
            (
                !(self.service.is_production() && secret.starts_with("local-only-")),
                "edit_url_secret is the local default; production needs its own",
            ),
            (
                edits.deadline.as_secs() >= 10
                    && (edits.deadline + edits.hold_margin).as_secs() <= 86_400,
                "edit_deadline_secs must be >= 10 and, with edit_hold_margin_secs, at most a day",
            ),
            (
                edits.wanx_max_in_flight >= 1
                    && edits.wanx_submits_per_window >= 1
                    && edits.free_text_max_in_flight >= 1
                    && edits.free_text_submits_per_window >= 1
                    && edits.submit_window_ms >= 100,
                "the edit provider limits must be >= 1 (and the window >= 100 ms)",
            ),
            (
                edits.lease.as_secs() >= 1
                    && edits.tick.as_millis() >= 10
                    && edits.poll_initial.as_millis() >= 10,
                "edit_lease_secs >= 1, edit_worker_tick_ms and edit_poll_initial_ms >= 10",
            ),
        ];
        if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(ConfigError::Invalid((*message).into()));
        }
        Ok(())
    }

    fn validate_classification(&self) -> Result<(), ConfigError> {
        let (classify, dashscope) = (&self.classify, &self.dashscope);
        let checks: [(bool, &str); 7] = [
            (
                self.decode.decode_budget_bytes >= MIN_DECODE_BUDGET
                    && self.decode.decode_budget_wait.as_millis() <= 60_000,
                "decode_budget_bytes must be at least 64 MiB and decode_budget_wait_ms at most 60000",
            ),
            (
                (1..=64).contains(&classify.local_model_concurrency),
                "local_model_concurrency must be within 1..=64",
            ),
            (
                (16..=30_000).contains(&classify.classify_max_image_side),
                "classify_max_image_side must be within 16..=30000",
            ),
            (
                dashscope.max_concurrency >= 1 && dashscope.max_calls_per_second >= 1,
                "dashscope_max_concurrency and dashscope_max_calls_per_second must be >= 1",
            ),
            (
                dashscope.breaker_failures >= 1,
                "dashscope_breaker_failures must be >= 1",
            ),
            (
                dashscope.attempt_timeout.as_millis() >= 100
                    && dashscope.deadline >= dashscope.attempt_timeout,
                "dashscope_deadline_ms must be >= dashscope_attempt_timeout_ms >= 100",
            ),
            (
                (64..=4096).contains(&dashscope.image_max_side),
                "dashscope_image_max_side must be within 64..=4096",
            ),
        ];
        if let Some((_, message)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(ConfigError::Invalid((*message).into()));
        }
        if self.service.is_production() {
            use secrecy::ExposeSecret;
            let mut check = platform::config::production::ProductionCheck::new();
            check
                .https_url("DASHSCOPE_BASE_URL", &dashscope.base_url)
                .secret("EDIT_URL_SECRET", self.edits.url_secret.expose_secret(), 32)
                .service_token(&self.service.service_token);
            if let Some(key) = &dashscope.api_key {
                check.secret("DASHSCOPE_API_KEY", key.expose_secret(), 20);
            }
            check.finish()?;
        }
        Ok(())
    }

    /// Returns the local model's weights: the configured file, else where the fetch script
    /// writes it.
    pub fn local_model_path(&self) -> PathBuf {
        self.classify
            .local_model_path
            .clone()
            .unwrap_or_else(photo_model::data_dir::default_model_path)
    }

    /// The stats service that model calls are recorded to; None (unset or empty) switches
    /// recording off.
    pub fn stats_grpc_url(&self) -> Option<&str> {
        self.stats_grpc_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
    }

    /// Returns the geodata directory: the configured one, else where the fetch script writes.
    pub fn geodata_dir(&self) -> PathBuf {
        self.geodata_dir
            .clone()
            .unwrap_or_else(crate::location::geodata::default_dir)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn defaults_are_valid_and_hide_secrets() {
        let cfg = PhotoConfig::defaults().unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.photo_listen_addr, "127.0.0.1:50052");
        assert_eq!(cfg.photo_limits.location_batch_max, 100);
        assert!(cfg.geodata_dir().ends_with("geo"));
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("photo-local"), "{printed}");
    }

    #[test]
    fn recording_is_off_unless_a_stats_url_is_set() {
        let mut cfg = PhotoConfig::defaults().unwrap();
        assert_eq!(cfg.stats_grpc_url(), None);
        cfg.stats_grpc_url = Some(" ".into());
        assert_eq!(cfg.stats_grpc_url(), None);
        cfg.stats_grpc_url = Some("http://stats:50053".into());
        assert_eq!(cfg.stats_grpc_url(), Some("http://stats:50053"));
    }

    #[test]
    fn production_refuses_the_dashscope_sandbox() {
        let mut cfg = PhotoConfig::defaults().unwrap();
        cfg.dashscope.base_url = "http://127.0.0.1:9900".into();
        cfg.validate().unwrap();
        cfg.service.xintu_env = "production".into();
        assert!(cfg.validate().is_err());
        cfg.dashscope.base_url = "https://dashscope.aliyuncs.com".into();
        // The local default of the edit URL secret is refused in production too.
        assert!(cfg.validate().is_err());
        cfg.edits.url_secret =
            SecretString::from("a-production-secret-of-forty-bytes-0123".to_owned());
        // And the local default of the service token.
        assert!(cfg.validate().is_err());
        cfg.service.service_token =
            platform::grpc::ServiceToken::parse("Vn4Qe8Rt2Yu6Io0Pa3Sd7Fg1Hj5Kl9Zx2Cv6Bn").unwrap();
        cfg.validate().unwrap();
        cfg.edits.url_secret = SecretString::from("too-short".to_owned());
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn classification_limits_are_checked() {
        let mut cfg = PhotoConfig::defaults().unwrap();
        assert!(
            cfg.dashscope.api_key().is_none(),
            "the cloud is off by default"
        );
        cfg.photo_limits.classify_batch_max = 0;
        assert!(cfg.validate().is_err());
        let mut cfg = PhotoConfig::defaults().unwrap();
        cfg.dashscope.deadline = cfg.dashscope.attempt_timeout - Duration::from_millis(1);
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn an_empty_batch_limit_is_refused() {
        let mut cfg = PhotoConfig::defaults().unwrap();
        cfg.photo_limits.location_batch_max = 0;
        assert!(cfg.validate().is_err());
    }
}
