//! Configuration: a service's embedded, commented defaults (TOML) overlaid by the environment.
//!
//! Environment names are the operator contract (`DATABASE_URL`, `REDIS_URL`, ...): a config
//! struct field `database_url` is set by `DATABASE_URL`.
//!
//! The type of a setting comes from its default, not from the look of the value: a key whose
//! default is a string (`wechatpay_mch_id = "1900000109"`) takes `1900009191` from the
//! environment as the string it is. (figment's own `Env` provider guesses a type per value, so a
//! real all-digit merchant id, token or password would fail as "found unsigned int".)

use std::collections::HashMap;

pub mod production;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;

/// A service setting that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", describe(.0))]
    Load(#[from] Box<figment::Error>),
    #[error("{0}")]
    Invalid(String),
}

/// One line per bad setting, naming its environment variable: `MEMBER_DAYS: invalid type: ...`.
fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|err| {
            let name = err.path.join(".").to_ascii_uppercase();
            let from = err
                .metadata
                .as_ref()
                .map(|meta| format!(" (from the {})", meta.name))
                .unwrap_or_default();
            if name.is_empty() {
                format!("{}{from}", err.kind)
            } else {
                format!("{name}: {}{from}", err.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
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
    Figment::from(Toml::string(defaults)).merge(TypedEnv::from_defaults(defaults))
}

/// How an environment value of a key is read, from the key's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyType {
    /// Taken as written, whatever it looks like.
    Text,
    /// Parsed as figment parses environment values (numbers, booleans, arrays).
    Parsed,
}

/// The environment variables named by the keys of a defaults document, typed by those keys.
struct TypedEnv {
    keys: HashMap<String, KeyType>,
}

impl TypedEnv {
    fn from_defaults(defaults: &str) -> Self {
        Self {
            keys: top_level_keys(defaults).into_iter().collect(),
        }
    }
}

impl Provider for TypedEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (name, value) in std::env::vars_os() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            let key = name.to_ascii_lowercase();
            let Some(key_type) = self.keys.get(&key) else {
                continue;
            };
            let value = match key_type {
                KeyType::Text => Value::from(value.to_owned()),
                KeyType::Parsed => value.parse().unwrap_or_else(|never| match never {}),
            };
            dict.insert(key, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The string settings of a defaults document, each with its default or example value (for
/// start-up tests that feed every one of them an all-digit value).
pub fn string_settings(defaults: &str) -> Vec<(String, String)> {
    assignments(defaults)
        .filter_map(|(key, value)| {
            let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let inner = value.strip_prefix(quote)?.split(quote).next()?;
            Some((key.to_owned(), inner.to_owned()))
        })
        .collect()
}

/// Keys of a flat TOML document with their types, so only variables we know are read from the
/// env.
fn top_level_keys(defaults: &str) -> Vec<(String, KeyType)> {
    assignments(defaults)
        .map(|(key, value)| {
            let key_type = if value.starts_with('"') || value.starts_with('\'') {
                KeyType::Text
            } else {
                KeyType::Parsed
            };
            (key.to_owned(), key_type)
        })
        .collect()
}

/// The `key = value` lines of a flat TOML document, trimmed. A commented assignment
/// (`# wechat_aes_key = "..."`) names an optional key that has no default; its example value
/// still says its type.
fn assignments(defaults: &str) -> impl Iterator<Item = (&str, &str)> {
    defaults
        .lines()
        .map(|line| line.trim().trim_start_matches('#').trim())
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .filter(|(key, _)| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
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
        merchant_id: String,
        pool_size: u32,
        enabled: bool,
        ratio: f64,
        optional_count: Option<u64>,
    }

    const DEFAULTS: &str = r#"
# where to listen
listen_addr = "127.0.0.1:1"
# the database
database_url = "mysql://default"
# optional_thing = "unset by default"
merchant_id = "1900000109"
pool_size = 20
enabled = true
ratio = 0.5
# optional_count = 3
"#;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn string_settings_take_all_digit_values_and_numbers_stay_numbers() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MERCHANT_ID", "1900009191");
            jail.set_env("OPTIONAL_THING", "0012");
            jail.set_env("LISTEN_ADDR", "8080");
            jail.set_env("POOL_SIZE", "7");
            jail.set_env("ENABLED", "false");
            jail.set_env("RATIO", "0.25");
            jail.set_env("OPTIONAL_COUNT", "9");
            let cfg: Sample = load(DEFAULTS).map_err(|e| *e)?;
            assert_eq!(cfg.merchant_id, "1900009191");
            // Leading zeros survive: the value is never a number on the way.
            assert_eq!(cfg.optional_thing.as_deref(), Some("0012"));
            assert_eq!(cfg.listen_addr, "8080");
            assert_eq!(cfg.pool_size, 7);
            assert!(!cfg.enabled);
            assert_eq!(cfg.ratio, 0.25);
            assert_eq!(cfg.optional_count, Some(9));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn a_bad_value_is_one_line_naming_the_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("POOL_SIZE", "twenty");
            let err = load::<Sample>(DEFAULTS).err().map(ConfigError::from);
            let message = err.map(|err| err.to_string()).unwrap_or_default();
            assert!(message.starts_with("POOL_SIZE: invalid type"), "{message}");
            assert!(message.contains("environment variable"), "{message}");
            assert!(!message.contains('\n'), "{message}");
            Ok(())
        });
    }

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
