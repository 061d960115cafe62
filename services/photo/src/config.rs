//! Photo service configuration (defaults and documentation in `config.default.toml`).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use platform::telemetry::LogFormat;

const DEFAULTS: &str = include_str!("../config.default.toml");

#[derive(Clone, Debug, Deserialize)]
pub struct PhotoConfig {
    pub photo_listen_addr: String,
    pub database_url: SecretString,
    pub database_replica_url: Option<SecretString>,
    pub database_max_connections: u32,
    pub redis_url: SecretString,
    pub redis_key_prefix: String,
    pub geodata_dir: Option<PathBuf>,
    pub location_batch_max: usize,
    pub log_format: LogFormat,
    pub otel_exporter_otlp_endpoint: Option<String>,
}

/// A setting that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] Box<figment::Error>),
    #[error("{0}")]
    Invalid(String),
}

impl PhotoConfig {
    /// Loads the defaults overlaid by the environment, then validates.
    pub fn load() -> Result<Self, ConfigError> {
        let cfg: Self = platform::config::load(DEFAULTS)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Returns the embedded defaults, for tests that start from them.
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(platform::config::defaults_only(DEFAULTS)?)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.location_batch_max) {
            return Err(ConfigError::Invalid(
                "location_batch_max must be within 1..=10000".into(),
            ));
        }
        Ok(())
    }

    /// Returns the geodata directory: the configured one, else where the fetch script writes.
    pub fn geodata_dir(&self) -> PathBuf {
        self.geodata_dir
            .clone()
            .unwrap_or_else(crate::geodata::default_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_hide_secrets() {
        let cfg = PhotoConfig::defaults().unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.photo_listen_addr, "127.0.0.1:50052");
        assert_eq!(cfg.location_batch_max, 100);
        assert!(cfg.geodata_dir().ends_with("geo"));
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("photo-local"), "{printed}");
    }

    #[test]
    fn an_empty_batch_limit_is_refused() {
        let mut cfg = PhotoConfig::defaults().unwrap();
        cfg.location_batch_max = 0;
        assert!(cfg.validate().is_err());
    }
}
