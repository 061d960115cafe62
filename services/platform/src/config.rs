//! Configuration: a service's embedded, commented defaults (TOML) overlaid by the environment.
//!
//! Environment names are the operator contract of SYSTEM.md §6 (`DATABASE_URL`, `REDIS_URL`, ...).
//! figment lowercases them, so a config struct field `database_url` is set by `DATABASE_URL`.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

/// A service setting that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] Box<figment::Error>),
    #[error("{0}")]
    Invalid(String),
}

/// A provider URL that can only be the local sandbox: plain http or a loopback host. Production
/// config refuses such URLs for WeChat, WeChat Pay and DashScope.
pub fn is_sandbox_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) => {
            parsed.scheme() != "https"
                || matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        }
        Err(_) => true,
    }
}

/// Loads `T` from `defaults` (a TOML document naming every key) overlaid by the environment
/// variables whose lowercased names are keys of `defaults`.
pub fn load<T: DeserializeOwned>(defaults: &str) -> Result<T, Box<figment::Error>> {
    figment(defaults).extract().map_err(Box::new)
}

/// Loads `T` from `defaults` alone, ignoring the environment (tests start from this).
pub fn defaults_only<T: DeserializeOwned>(defaults: &str) -> Result<T, Box<figment::Error>> {
    Figment::from(Toml::string(defaults))
        .extract()
        .map_err(Box::new)
}

/// Returns the layered provider, for callers that add their own overrides (tests).
pub fn figment(defaults: &str) -> Figment {
    let keys = top_level_keys(defaults);
    Figment::from(Toml::string(defaults)).merge(Env::raw().filter(move |name| {
        let name = name.as_str().to_ascii_lowercase();
        keys.contains(&name)
    }))
}

/// Keys of a flat TOML document, so only variables we know are read from the env. A commented
/// assignment (`# wechat_aes_key = "..."`) names an optional key that has no default.
fn top_level_keys(defaults: &str) -> Vec<String> {
    defaults
        .lines()
        .map(|line| line.trim().trim_start_matches('#').trim())
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim().to_owned()))
        .filter(|key| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Sample {
        listen_addr: String,
        database_url: String,
        optional_thing: Option<String>,
    }

    const DEFAULTS: &str = r#"
# where to listen
listen_addr = "127.0.0.1:1"
# the database
database_url = "mysql://default"
# optional_thing = "unset by default"
"#;

    #[test]
    fn sandbox_urls_are_recognised() {
        assert!(is_sandbox_url("http://api.weixin.qq.com"));
        assert!(is_sandbox_url("https://127.0.0.1:9900"));
        assert!(is_sandbox_url("https://localhost"));
        assert!(is_sandbox_url("not a url"));
        assert!(!is_sandbox_url("https://api.mch.weixin.qq.com"));
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn env_overrides_defaults_by_lowercased_name() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "mysql://from-env");
            jail.set_env("UNRELATED_VARIABLE", "x");
            let cfg: Sample = load(DEFAULTS).map_err(|e| *e)?;
            assert_eq!(cfg.listen_addr, "127.0.0.1:1");
            assert_eq!(cfg.database_url, "mysql://from-env");
            assert!(cfg.optional_thing.is_none());
            jail.set_env("OPTIONAL_THING", "set");
            let cfg: Sample = load(DEFAULTS).map_err(|e| *e)?;
            assert_eq!(cfg.optional_thing.as_deref(), Some("set"));
            Ok(())
        });
    }
}
