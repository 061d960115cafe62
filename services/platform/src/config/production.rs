//! What `XINTU_ENV=production` refuses, for every binary: a secret that is a shipped default or a
//! template's placeholder, or shorter than its minimum; a provider or public URL that is not
//! https or points at this machine. Every problem is collected, so an operator fixes them in one
//! go, and reported as one line naming the variables.

use super::{ConfigError, is_sandbox_url};

/// Pieces that mark a value as not a real secret: the local defaults, the sandbox's credentials
/// and the templates' placeholders all contain one.
const PLACEHOLDER_MARKS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "local-only",
    "sandbox",
    "placeholder",
    "example",
    "your-",
    "xxxx",
];

/// True when `value` is a shipped default or a template's placeholder.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    PLACEHOLDER_MARKS.iter().any(|mark| lower.contains(mark))
}

/// Collects what production refuses in one configuration.
#[derive(Debug, Default)]
pub struct ProductionCheck {
    problems: Vec<String>,
}

impl ProductionCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// A secret must be real and at least `min_chars` long.
    pub fn secret(&mut self, variable: &str, value: &str, min_chars: usize) -> &mut Self {
        if value.is_empty() {
            self.problem(variable, "is empty");
        } else if is_placeholder(value) {
            self.problem(variable, "is a shipped default or a placeholder");
        } else if value.chars().count() < min_chars {
            self.problem(variable, &format!("is shorter than {min_chars} characters"));
        }
        self
    }

    /// Every token of `SERVICE_TOKEN` (current and any being retired) is a real secret of at
    /// least 32 characters: whoever knows it can call every service.
    pub fn service_token(&mut self, token: &crate::grpc::ServiceToken) -> &mut Self {
        for configured in token.configured() {
            self.secret("SERVICE_TOKEN", configured, 32);
        }
        self
    }

    /// A provider's or our own public address: https, and not this machine.
    pub fn https_url(&mut self, variable: &str, url: &str) -> &mut Self {
        if is_sandbox_url(url) {
            self.problem(variable, "must be an https URL that is not loopback");
        }
        self
    }

    /// Any other rule, with the reason it states.
    pub fn require(&mut self, variable: &str, holds: bool, reason: &str) -> &mut Self {
        if !holds {
            self.problem(variable, reason);
        }
        self
    }

    fn problem(&mut self, variable: &str, reason: &str) {
        self.problems.push(format!("{variable} {reason}"));
    }

    /// Ok, or one error listing every problem.
    pub fn finish(&self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "XINTU_ENV=production refuses: {}",
            self.problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_and_placeholders_are_refused() {
        for value in [
            "local-only-session-secret-change-me-in-production-0123456789",
            "sandbox-app-secret",
            "sandboxsandboxsandboxsandbox0001",
            "sk-sandbox-dashscope-0001",
            "CHANGE-ME",
        ] {
            assert!(is_placeholder(value), "{value}");
        }
        assert!(!is_placeholder("f3Jk9q2LmZ8x7Wv4Tn6Rb1Yc5Hd0Ga8E"));
    }

    #[test]
    fn every_problem_is_listed_in_one_line() {
        let mut check = ProductionCheck::new();
        check
            .secret("SESSION_SECRET", "CHANGE-ME", 32)
            .secret("WECHATPAY_API_KEY", "short", 32)
            .secret("GOOD", "f3Jk9q2LmZ8x7Wv4Tn6Rb1Yc5Hd0Ga8E", 32)
            .https_url("PUBLIC_BASE_URL", "http://album.example.cn")
            .https_url("WECHAT_API_BASE", "https://api.weixin.qq.com")
            .require("SESSION_COOKIE_SECURE", false, "must be true");
        let message = check.finish().unwrap_err().to_string();
        assert_eq!(
            message,
            "XINTU_ENV=production refuses: SESSION_SECRET is a shipped default or a placeholder; \
             WECHATPAY_API_KEY is shorter than 32 characters; PUBLIC_BASE_URL must be an https \
             URL that is not loopback; SESSION_COOKIE_SECURE must be true"
        );
        assert!(ProductionCheck::new().finish().is_ok());
    }

    #[test]
    fn every_service_token_must_be_real_and_long() {
        use crate::grpc::ServiceToken;
        let check = |configured: &str| {
            let token = ServiceToken::parse(configured).unwrap();
            ProductionCheck::new().service_token(&token).finish()
        };
        let long = "f3Jk9q2LmZ8x7Wv4Tn6Rb1Yc5Hd0Ga8E";
        assert!(check(long).is_ok());
        assert!(check(&format!("{long},Q8w2E4r6T8y0U2i4O6p8A0s2D4f6G8h0")).is_ok());
        for refused in [
            "local-only-service-token-change-me",
            "short-token",
            &format!("{long},short-old-token"),
        ] {
            let message = check(refused).unwrap_err().to_string();
            assert!(message.contains("SERVICE_TOKEN"), "{refused}: {message}");
        }
    }
}
