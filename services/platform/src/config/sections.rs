//! The sections every service reads alike: how it runs (`[service]`), its database
//! (`[database]`) and Redis (`[redis]`). Each service's defaults document declares the section
//! with its own default values (each service has its own database); the keys, their meaning and
//! what is built from them are here, once.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::db::{PoolSettings, Pools};
use crate::grpc::{Reflection, ServiceToken};
use crate::redis::{Keys, Redis};
use crate::telemetry::{LogFormat, TelemetryGuard};

/// `[service]`: what every binary reads about how it runs.
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceConfig {
    /// The token every internal gRPC call carries (and every service checks).
    pub service_token: ServiceToken,
    /// `production` switches on the production rules; anything else is a local or test run.
    pub xintu_env: String,
    pub log_format: LogFormat,
    pub otel_exporter_otlp_endpoint: Option<String>,
}

impl ServiceConfig {
    pub fn is_production(&self) -> bool {
        self.xintu_env == "production"
    }

    /// gRPC reflection: withheld in production.
    pub fn reflection(&self) -> Reflection {
        Reflection::for_env(&self.xintu_env)
    }

    /// Starts logs, traces and metrics for the binary `service`.
    pub fn init_telemetry(
        &self,
        service: &'static str,
    ) -> Result<TelemetryGuard, Box<dyn std::error::Error + Send + Sync>> {
        crate::telemetry::init(
            service,
            self.log_format,
            self.otel_exporter_otlp_endpoint.as_deref(),
        )
    }
}

/// `[database]`: the service's own database, its primary and its read replica.
#[derive(Clone, Debug, Deserialize)]
pub struct DatabaseConfig {
    pub database_url: SecretString,
    /// None: reads go to the primary too.
    pub database_replica_url: Option<SecretString>,
    pub database_max_connections: u32,
    /// How often the replica's state is sampled for its gauges, milliseconds (0: never).
    pub replica_status_interval_ms: u64,
}

impl DatabaseConfig {
    /// The service's pools, connecting lazily (see [`Pools::connect_lazy`]).
    pub fn connect_lazy(&self) -> Result<Pools, sqlx::Error> {
        Pools::connect_lazy(
            &self.database_url,
            self.database_replica_url.as_ref(),
            &PoolSettings {
                max_connections: self.database_max_connections,
                ..PoolSettings::default()
            },
        )
    }

    pub fn replica_status_interval(&self) -> Duration {
        Duration::from_millis(self.replica_status_interval_ms)
    }
}

/// `[redis]`: the Redis every instance shares, and the prefix of this deployment's keys.
#[derive(Clone, Debug, Deserialize)]
pub struct RedisConfig {
    pub redis_url: SecretString,
    pub redis_key_prefix: String,
}

impl RedisConfig {
    /// Connects, serving on without Redis while it is unreachable (see [`crate::redis::connect`]).
    pub async fn connect(&self) -> Result<Redis, ::redis::RedisError> {
        crate::redis::connect(&self.redis_url).await
    }

    /// The keys of one service: `<prefix>:<service>:...`.
    pub fn keys(&self, service: &str) -> Keys {
        Keys::new(format!("{}:{service}", self.redis_key_prefix))
    }
}
