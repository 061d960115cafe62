//! Stats service configuration (defaults and documentation in `config.default.toml`).

use serde::Deserialize;

use platform::config::{DatabaseConfig, ServiceConfig};

const DEFAULTS: &str = include_str!("../config.default.toml");

#[derive(Clone, Debug, Deserialize)]
pub struct StatsConfig {
    pub stats_listen_addr: String,
    pub retention_days: u32,
    pub retention_batch_rows: u32,
    pub retention_interval_ms: u64,
    pub model_price_fen_per_million_tokens: i64,
    pub service: ServiceConfig,
    pub database: DatabaseConfig,
}

impl StatsConfig {
    pub fn load() -> Result<Self, platform::config::ConfigError> {
        let cfg: Self = platform::config::load(&[DEFAULTS])?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The rules of `XINTU_ENV=production`: a service token nobody outside can know.
    pub fn validate(&self) -> Result<(), platform::config::ConfigError> {
        if !self.service.is_production() {
            return Ok(());
        }
        platform::config::production::ProductionCheck::new()
            .service_token(&self.service.service_token)
            .finish()
    }

    /// The embedded defaults, for tests that start from them.
    pub fn defaults() -> Result<Self, Box<figment::Error>> {
        platform::config::defaults_only(&[DEFAULTS])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_the_shipped_service_token() {
        let mut cfg = StatsConfig::defaults().unwrap();
        cfg.validate().unwrap();
        cfg.service.xintu_env = "production".into();
        let refused = cfg.validate().unwrap_err().to_string();
        assert!(refused.contains("SERVICE_TOKEN"), "{refused}");
        cfg.service.service_token =
            platform::grpc::ServiceToken::parse("Vn4Qe8Rt2Yu6Io0Pa3Sd7Fg1Hj5Kl9Zx2Cv6Bn").unwrap();
        cfg.validate().unwrap();
        assert!(!format!("{cfg:?}").contains("local-only-service-token"));
    }
}
