//! Configuration: a service's embedded, commented defaults (TOML) overlaid by the environment.
//!
//! Environment names are the operator contract (`DATABASE_URL`, `REDIS_URL`, ...): a setting
//! `database_url` is set by `DATABASE_URL`, wherever it sits in the defaults. A defaults document
//! may group its settings in sections (`[database]`, `[redis]`): a section is read into a
//! struct of its own, and its keys keep their full names, so the environment stays flat. A key
//! is declared once in all the documents a service reads.
//!
//! The type of a setting comes from its default, not from the look of the value: a key whose
//! default is a string (`wechatpay_mch_id = "1900000109"`) takes `1900009191` from the
//! environment as the string it is. (figment's own `Env` provider guesses a type per value, so a
//! real all-digit merchant id, token or password would fail as "found unsigned int".) An empty
//! value of a number or a switch is no value: compose passes `${NAME:-}` for what an operator
//! may set, and the default stands.

use std::collections::HashMap;

pub mod duration;
pub mod production;
mod sections;

pub use sections::{DatabaseConfig, RedisConfig, ServiceConfig};

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
            // The key alone is the environment name; the section it sits in is not.
            let name = err
                .path
                .last()
                .map(|key| key.to_ascii_uppercase())
                .unwrap_or_default();
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

/// Loads `T` from `defaults` (TOML documents that together name every key) overlaid by the
/// environment variables whose lowercased names are keys of `defaults`.
pub fn load<T: DeserializeOwned>(defaults: &[&str]) -> Result<T, Box<figment::Error>> {
    figment(defaults).extract().map_err(Box::new)
}

/// Loads `T` from `defaults` alone, ignoring the environment (tests start from this).
pub fn defaults_only<T: DeserializeOwned>(defaults: &[&str]) -> Result<T, Box<figment::Error>> {
    documents(defaults).extract().map_err(Box::new)
}

/// Returns the layered provider, for callers that add their own overrides (tests).
pub fn figment(defaults: &[&str]) -> Figment {
    documents(defaults).merge(TypedEnv::from_defaults(defaults))
}

/// The defaults documents merged, section by section.
fn documents(defaults: &[&str]) -> Figment {
    defaults
        .iter()
        .fold(Figment::new(), |figment, document| {
            figment.merge(Toml::string(document))
        })
        .merge(DeclaredOnce::from_defaults(defaults))
}

/// Refuses settings whose names moved: a deployment that still sets `old` would otherwise run
/// on the default of `new` without a word. `renamed` pairs (old key, new key).
pub fn refuse_renamed(renamed: &[(&str, &str)]) -> Result<(), ConfigError> {
    for (old, new) in renamed {
        let old = old.to_ascii_uppercase();
        if std::env::var_os(&old).is_some() {
            return Err(ConfigError::Invalid(format!(
                "{old} is no longer read: set {} instead",
                new.to_ascii_uppercase()
            )));
        }
    }
    Ok(())
}

/// Fails the load when a key is declared twice across the defaults (two sections, or two
/// documents): its environment variable could only set one of them.
struct DeclaredOnce {
    twice: Vec<String>,
}

impl DeclaredOnce {
    fn from_defaults(defaults: &[&str]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let twice = defaults
            .iter()
            .flat_map(|document| declarations(document))
            .filter(|declaration| !declaration.commented)
            .filter(|declaration| !seen.insert(declaration.key))
            .map(|declaration| declaration.key.to_owned())
            .collect();
        Self { twice }
    }
}

impl Provider for DeclaredOnce {
    fn metadata(&self) -> Metadata {
        Metadata::named("defaults")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        match self.twice.first() {
            Some(key) => Err(figment::Error::from(format!(
                "{key} is declared twice in the defaults"
            ))),
            None => Ok(Map::new()),
        }
    }
}

/// How an environment value of a key is read, from the key's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyType {
    /// Taken as written, whatever it looks like.
    Text,
    /// Parsed as figment parses environment values (numbers, booleans, arrays).
    Parsed,
}

/// Where a key sits in the defaults, and how its environment value is read.
#[derive(Clone, Debug)]
struct KeyPlace {
    section: Option<String>,
    key_type: KeyType,
}

/// The environment variables named by the keys of the defaults documents, typed by those keys
/// and put in their sections.
struct TypedEnv {
    keys: HashMap<String, KeyPlace>,
}

impl TypedEnv {
    fn from_defaults(defaults: &[&str]) -> Self {
        let keys = defaults
            .iter()
            .flat_map(|document| declarations(document))
            .map(|declaration| {
                let key_type =
                    if declaration.value.starts_with('"') || declaration.value.starts_with('\'') {
                        KeyType::Text
                    } else {
                        KeyType::Parsed
                    };
                let place = KeyPlace {
                    section: declaration.section.map(str::to_owned),
                    key_type,
                };
                (declaration.key.to_owned(), place)
            })
            .collect();
        Self { keys }
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
            let Some(place) = self.keys.get(&key) else {
                continue;
            };
            let value = match place.key_type {
                KeyType::Text => Value::from(value.to_owned()),
                KeyType::Parsed if value.trim().is_empty() => continue,
                KeyType::Parsed => value.parse().unwrap_or_else(|never| match never {}),
            };
            let section = match &place.section {
                Some(section) => match dict
                    .entry(section.clone())
                    .or_insert_with(|| Value::from(Dict::new()))
                {
                    Value::Dict(_, section) => section,
                    _ => continue,
                },
                None => &mut dict,
            };
            section.insert(key, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The string settings of a defaults document, each with its default or example value (for
/// start-up tests that feed every one of them an all-digit value).
pub fn string_settings(defaults: &str) -> Vec<(String, String)> {
    declarations(defaults)
        .filter_map(|declaration| {
            let value = declaration.value;
            let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let inner = value.strip_prefix(quote)?.split(quote).next()?;
            Some((declaration.key.to_owned(), inner.to_owned()))
        })
        .collect()
}

/// One `key = value` line of a defaults document.
struct Declaration<'a> {
    /// The `[section]` it sits in; None above the first section.
    section: Option<&'a str>,
    key: &'a str,
    value: &'a str,
    /// A commented assignment (`# wechat_aes_key = "..."`) names an optional key that has no
    /// default; its example value still says its type.
    commented: bool,
}

/// The `key = value` lines of a defaults document, trimmed, with their sections.
fn declarations(defaults: &str) -> impl Iterator<Item = Declaration<'_>> {
    let mut section = None;
    defaults.lines().filter_map(move |line| {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = Some(name.trim());
            return None;
        }
        let uncommented = line.trim_start_matches('#').trim();
        let (key, value) = uncommented.split_once('=')?;
        let (key, value) = (key.trim(), value.trim());
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        is_key.then_some(Declaration {
            section,
            key,
            value,
            commented: uncommented.len() != line.len(),
        })
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
            let cfg: Sample = load(&[DEFAULTS]).map_err(|e| *e)?;
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
            let err = load::<Sample>(&[DEFAULTS]).err().map(ConfigError::from);
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
            let cfg: Sample = load(&[DEFAULTS]).map_err(|e| *e)?;
            assert_eq!(cfg.listen_addr, "127.0.0.1:1");
            assert_eq!(cfg.database_url, "mysql://from-env");
            assert!(cfg.optional_thing.is_none());
            jail.set_env("OPTIONAL_THING", "set");
            let cfg: Sample = load(&[DEFAULTS]).map_err(|e| *e)?;
            assert_eq!(cfg.optional_thing.as_deref(), Some("set"));
            Ok(())
        });
    }

    #[derive(Deserialize)]
    struct Sectioned {
        listen_addr: String,
        pool: Pool,
    }

    #[derive(Deserialize)]
    struct Pool {
        pool_size: u32,
        pool_name: String,
    }

    const SECTIONED: &str = r#"
listen_addr = "127.0.0.1:1"

[pool]
# connections
pool_size = 20
pool_name = "main"
"#;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn a_section_takes_its_keys_from_flat_environment_names() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("POOL_SIZE", "7");
            jail.set_env("POOL_NAME", "0042");
            let cfg: Sectioned = load(&[SECTIONED]).map_err(|e| *e)?;
            assert_eq!(cfg.listen_addr, "127.0.0.1:1");
            assert_eq!(cfg.pool.pool_size, 7);
            assert_eq!(cfg.pool.pool_name, "0042");
            // An empty number is no value: the default stands.
            jail.set_env("POOL_SIZE", "");
            let cfg: Sectioned = load(&[SECTIONED]).map_err(|e| *e)?;
            assert_eq!(cfg.pool.pool_size, 20);
            // A bad value in a section is named by its environment name alone.
            jail.set_env("POOL_SIZE", "twenty");
            let message = load::<Sectioned>(&[SECTIONED])
                .err()
                .map(|err| ConfigError::from(err).to_string())
                .unwrap_or_default();
            assert!(message.starts_with("POOL_SIZE: invalid type"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn sections_may_come_from_several_documents_but_a_key_only_once() {
        const MORE: &str = "[extra]\nextra_flag = true\n";
        #[derive(Deserialize)]
        struct Both {
            pool: Pool,
            extra: Extra,
        }
        #[derive(Deserialize)]
        struct Extra {
            extra_flag: bool,
        }
        let both: Both = defaults_only(&[SECTIONED, MORE]).unwrap();
        assert_eq!(both.pool.pool_size, 20);
        assert!(both.extra.extra_flag);
        const AGAIN: &str = "[other]\npool_size = 3\n";
        let err = defaults_only::<Sectioned>(&[SECTIONED, AGAIN])
            .err()
            .map(|err| ConfigError::from(err).to_string())
            .unwrap_or_default();
        assert!(err.contains("pool_size is declared twice"), "{err}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
    fn a_renamed_setting_still_set_is_refused_naming_its_new_name() {
        figment::Jail::expect_with(|jail| {
            refuse_renamed(&[("old_limit", "new_limit")]).map_err(|e| e.to_string())?;
            jail.set_env("OLD_LIMIT", "5");
            let message = refuse_renamed(&[("old_limit", "new_limit")])
                .err()
                .map(|err| err.to_string())
                .unwrap_or_default();
            assert_eq!(
                message,
                "OLD_LIMIT is no longer read: set NEW_LIMIT instead"
            );
            Ok(())
        });
    }
}
