//! Gateway configuration (defaults and documentation in `config.default.toml`).

use platform::config::production::ProductionCheck;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use platform::config::{RedisConfig, ServiceConfig};
use proto::limits::{PHOTO_LIMITS_DEFAULTS, PhotoLimits};

/// The gateway's own defaults, and the photo limits it shares with the photo service.
const DEFAULTS: [&str; 2] = [
    include_str!("../config.default.toml"),
    PHOTO_LIMITS_DEFAULTS,
];

/// Room for the multipart boundaries and headers around the images of an upload.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

#[derive(Clone, Debug, Deserialize)]
pub struct GatewayConfig {
    pub gateway_listen_addr: String,
    pub membership_grpc_url: String,
    pub photo_grpc_url: String,
    pub stats_grpc_url: String,
    pub request_logging: bool,
    pub request_log_flush_ms: u64,
    pub admin_username: String,
    pub admin_password_hash: Option<SecretString>,
    pub admin_session_ttl_secs: u64,
    pub admin_max_failures: u32,
    pub admin_account_max_failures: u32,
    pub admin_lockout_secs: u64,
    pub admin_allowed_origins: String,
    pub grpc_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub wechat_appid: String,
    pub wechat_token: SecretString,
    pub wechat_aes_key: Option<SecretString>,
    pub push_max_age_secs: u64,
    pub session_secret: SecretString,
    pub session_ttl_secs: u64,
    pub session_cookie_secure: bool,
    pub public_base_url: String,
    pub member_page_path: String,
    pub wechat_open_base: String,
    pub max_body_bytes: usize,
    pub qrcode_per_client_per_minute: u32,
    pub qrcode_per_ip_per_minute: u32,
    pub orders_per_user_per_minute: u32,
    pub classify_timeout_ms: u64,
    pub photos_per_client_per_minute: u32,
    pub photo_lookups_per_client_per_minute: u32,
    pub locations_per_client_per_minute: u32,
    pub token_cache_ttl_secs: u64,
    pub erasure_retry_secs: u64,
    pub binding_wait_max_secs: u64,
    pub photo_uploads_in_flight_bytes: usize,
    pub photo_upload_wait_ms: u64,
    pub edit_result_base_url: String,
    pub trust_proxy_headers: bool,
    pub service: ServiceConfig,
    pub redis: RedisConfig,
    /// What the photo API takes; the photo service reads the same section and enforces it, the
    /// gateway refuses what is over before reading or forwarding it.
    pub photo_limits: PhotoLimits,
}

/// Settings this gateway no longer reads, with the ones that replaced them: the photo limits
/// the gateway and the photo service each declared under their own names are one section now.
const RENAMED: &[(&str, &str)] = &[
    ("photo_max_image_bytes", "classify_max_image_bytes"),
    ("photo_batch_max_images", "classify_batch_max"),
    ("photo_batch_max_bytes", "classify_batch_max_bytes"),
    ("photo_lookup_max", "lookup_max"),
];

impl GatewayConfig {
    pub fn load() -> Result<Self, platform::config::ConfigError> {
        platform::config::refuse_renamed(RENAMED)?;
        let cfg: Self = platform::config::load(&DEFAULTS)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what the types cannot (the admin origins are origins), and the rules of
    /// `XINTU_ENV=production`: a forged session or admin cookie must not be one anybody can sign
    /// with a published key, and nothing may be sent over plain http.
    pub fn validate(&self) -> Result<(), platform::config::ConfigError> {
        crate::admin::origin::parse_allowed(&self.admin_allowed_origins).map_err(|entry| {
            platform::config::ConfigError::Invalid(format!(
                "ADMIN_ALLOWED_ORIGINS: {entry:?} is not an origin (scheme://host[:port])"
            ))
        })?;
        if let Some(invalid) = self.photo_limits.invalid() {
            return Err(platform::config::ConfigError::Invalid(invalid.into()));
        }
        let largest = self.single_upload_body().max(self.batch_upload_body());
        if self.photo_uploads_in_flight_bytes < largest.max(self.edit_upload_body()) {
            return Err(platform::config::ConfigError::Invalid(format!(
                "photo_uploads_in_flight_bytes must hold the largest upload a route takes \
                 ({} bytes)",
                largest.max(self.edit_upload_body())
            )));
        }
        if !self.service.is_production() {
            return Ok(());
        }
        let mut check = ProductionCheck::new();
        check
            .secret("SESSION_SECRET", self.session_secret.expose_secret(), 32)
            // WeChat's console takes a push token of 3 to 32 characters.
            .secret("WECHAT_TOKEN", self.wechat_token.expose_secret(), 3)
            .service_token(&self.service.service_token)
            .https_url("PUBLIC_BASE_URL", &self.public_base_url)
            .https_url("WECHAT_OPEN_BASE", &self.wechat_open_base)
            .require(
                "SESSION_COOKIE_SECURE",
                self.session_cookie_secure,
                "must be true (cookies only over https)",
            );
        if let Some(aes_key) = &self.wechat_aes_key {
            check.secret("WECHAT_AES_KEY", aes_key.expose_secret(), 43);
        }
        if !self.edit_result_base_url.is_empty() {
            check.https_url("EDIT_RESULT_BASE_URL", &self.edit_result_base_url);
        }
        let origins = self.admin_allowed_origins.split(',').map(str::trim);
        for origin in origins.filter(|origin| !origin.is_empty()) {
            check.https_url("ADMIN_ALLOWED_ORIGINS", origin);
        }
        if let Some(hash) = &self.admin_password_hash {
            check.require(
                "ADMIN_PASSWORD_HASH",
                hash.expose_secret().starts_with("$argon2"),
                "must be an argon2 hash (gateway hash-password)",
            );
        }
        check.finish()
    }

    /// The largest body of `/api/v1/photos/classify`: one image and the form around it.
    pub fn single_upload_body(&self) -> usize {
        self.photo_limits.classify_max_image_bytes + MULTIPART_OVERHEAD
    }

    /// The largest body of `/api/v1/photos/classify/batch`.
    pub fn batch_upload_body(&self) -> usize {
        self.photo_limits.classify_batch_max_bytes + MULTIPART_OVERHEAD
    }

    /// The largest body of `POST /api/v1/photos/edit`: an image and its mask.
    pub fn edit_upload_body(&self) -> usize {
        2 * self.photo_limits.edit_max_image_bytes + MULTIPART_OVERHEAD
    }

    /// The embedded defaults, for tests that start from them.
    pub fn defaults() -> Result<Self, Box<figment::Error>> {
        platform::config::defaults_only(&DEFAULTS)
    }
}
