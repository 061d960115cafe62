//! Stats service configuration (defaults and documentation in `config.default.toml`).

use secrecy::SecretString;
use serde::Deserialize;

use platform::telemetry::LogFormat;

const DEFAULTS: &str = include_str!("../config.default.toml");

#[derive(Clone, Debug, Deserialize)]
pub struct StatsConfig {
    pub stats_listen_addr: String,
    pub database_url: SecretString,
    pub database_replica_url: Option<SecretString>,
    pub database_max_connections: u32,
    pub replica_status_interval_ms: u64,
    pub retention_days: u32,
    pub retention_batch_rows: u32,
    pub retention_interval_ms: u64,
    pub model_price_fen_per_million_tokens: i64,
    pub xintu_env: String,
    pub log_format: LogFormat,
    pub otel_exporter_otlp_endpoint: Option<String>,
}

impl StatsConfig {
    pub fn load() -> Result<Self, platform::config::ConfigError> {
        Ok(platform::config::load(DEFAULTS)?)
    }

    /// The embedded defaults, for tests that start from them.
    pub fn defaults() -> Result<Self, Box<figment::Error>> {
        platform::config::defaults_only(DEFAULTS)
    }
}
