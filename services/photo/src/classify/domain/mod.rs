//! Album classification: what a result is, where an answer came from, when the cloud model is
//! asked, and why it sometimes is not.

pub mod answer;

use serde::{Deserialize, Serialize};

pub use photo_model::AlbumCategory;
pub use photo_upload::{Digest, DigestError};

/// What the caller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The local model; the cloud model only when the local answer is unsure.
    Auto,
    /// The local model only.
    Local,
    /// The cloud model whatever the local answer says (the local answer is the fallback).
    Cloud,
}

impl Mode {
    /// Tells whether the cloud model is wanted after a local answer.
    pub fn wants_cloud(self, local_is_sure: bool) -> bool {
        match self {
            Self::Auto => !local_is_sure,
            Self::Local => false,
            Self::Cloud => true,
        }
    }
}

/// Which model produced a stored result (the `source` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Producer {
    Local,
    Model,
}

impl Producer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Model => "model",
        }
    }
}

/// Where this request's answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A stored result: no model ran for this request.
    Cache,
    /// The local model ran for this request.
    Local,
    /// The cloud model ran for this request.
    Model,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredLabel {
    pub label: String,
    pub score: f32,
}

/// Token usage of one cloud call, kept with its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl TokenUsage {
    /// Prompt and completion tokens together (what is billed).
    pub fn total(self) -> u32 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// One model's classification of one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    pub category: AlbumCategory,
    /// Best first.
    pub labels: Vec<ScoredLabel>,
    pub confidence: f32,
    /// False when the answer is too weak to stand alone (local answers only).
    pub sure: bool,
    pub producer: Producer,
    pub model: String,
    pub usage: Option<TokenUsage>,
}

/// What is stored under a cache key: a result, or the provider's moderation refusal, remembered
/// so that the image is never sent (and paid for) again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CachedEntry {
    Classified(ModelResult),
    ModerationRejected { model: String },
}

/// A stored result's key: the image bytes' digest and the model and prompt (or rules) versions
/// that produced it, so a new model or prompt never serves an old answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub digest: Digest,
    pub model_version: String,
    pub prompt_version: String,
}

/// The versions one model's results are stored under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelVersions {
    pub model_version: String,
    pub prompt_version: String,
}

impl ModelVersions {
    pub fn key(&self, digest: Digest) -> CacheKey {
        CacheKey {
            digest,
            model_version: self.model_version.clone(),
            prompt_version: self.prompt_version.clone(),
        }
    }
}

/// Why the cloud model was wanted but not used; the answer is then the local one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloudSkip {
    NotConfigured,
    InsufficientCredits,
    CreditsUnavailable,
    ProviderUnavailable,
    RateLimited,
    ModerationRejected,
    InvalidAnswer,
    ProviderRejected,
    Deadline,
}

impl CloudSkip {
    /// A sentence for the app's user or log.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotConfigured => "cloud classification is not configured",
            Self::InsufficientCredits => "no credit left for cloud classification",
            Self::CreditsUnavailable => "credits could not be checked; try again later",
            Self::ProviderUnavailable => "the cloud model is unavailable; try again later",
            Self::RateLimited => "the cloud model is busy; try again later",
            Self::ModerationRejected => "the cloud model's content moderation refused this image",
            Self::InvalidAnswer => "the cloud model gave no usable answer",
            Self::ProviderRejected => "the cloud model refused the request",
            Self::Deadline => "too little time was left to ask the cloud model",
        }
    }
}

/// The answer to one classification request.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub digest: Digest,
    pub result: ModelResult,
    pub source: Source,
    pub credits_charged: i64,
    /// The caller's spendable credits after the request, when the request consulted them.
    pub remaining_credits: Option<i64>,
    pub cloud_skipped: Option<CloudSkip>,
}

/// The best of what is stored for one image: a cloud result beats a local one; a remembered
/// moderation refusal sends the caller to the local result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    pub cloud: Option<CachedEntry>,
    pub local: Option<CachedEntry>,
}

impl Stored {
    /// Returns the cloud model's stored result, if it classified the image.
    pub fn cloud_result(&self) -> Option<&ModelResult> {
        match &self.cloud {
            Some(CachedEntry::Classified(result)) => Some(result),
            _ => None,
        }
    }

    pub fn local_result(&self) -> Option<&ModelResult> {
        match &self.local {
            Some(CachedEntry::Classified(result)) => Some(result),
            _ => None,
        }
    }

    /// Tells whether the cloud model refused this image before.
    pub fn cloud_refused(&self) -> bool {
        matches!(self.cloud, Some(CachedEntry::ModerationRejected { .. }))
    }

    /// The result to show for a lookup: the cloud's, else the local one.
    pub fn best(&self) -> Option<&ModelResult> {
        self.cloud_result().or_else(|| self.local_result())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(producer: Producer, category: AlbumCategory) -> ModelResult {
        ModelResult {
            category,
            labels: vec![],
            confidence: 0.5,
            sure: false,
            producer,
            model: "m".into(),
            usage: None,
        }
    }

    #[test]
    fn the_cloud_is_wanted_by_mode_and_local_certainty() {
        assert!(Mode::Auto.wants_cloud(false));
        assert!(!Mode::Auto.wants_cloud(true));
        assert!(!Mode::Local.wants_cloud(false));
        assert!(Mode::Cloud.wants_cloud(true));
    }

    #[test]
    fn a_cloud_result_beats_a_local_one_and_a_refusal_falls_back() {
        let local = CachedEntry::Classified(result(Producer::Local, AlbumCategory::Other));
        let cloud = CachedEntry::Classified(result(Producer::Model, AlbumCategory::People));
        let both = Stored {
            cloud: Some(cloud),
            local: Some(local.clone()),
        };
        assert_eq!(both.best().unwrap().category, AlbumCategory::People);
        let refused = Stored {
            cloud: Some(CachedEntry::ModerationRejected { model: "m".into() }),
            local: Some(local),
        };
        assert!(refused.cloud_refused());
        assert_eq!(refused.best().unwrap().category, AlbumCategory::Other);
        assert_eq!(Stored::default().best(), None);
    }

    #[test]
    fn cached_entries_round_trip_through_json() {
        let entry = CachedEntry::Classified(result(Producer::Model, AlbumCategory::Food));
        let text = serde_json::to_string(&entry).unwrap();
        assert!(text.contains(r#""outcome":"classified""#), "{text}");
        assert_eq!(serde_json::from_str::<CachedEntry>(&text).unwrap(), entry);
        let refused = CachedEntry::ModerationRejected { model: "m".into() };
        let text = serde_json::to_string(&refused).unwrap();
        assert_eq!(serde_json::from_str::<CachedEntry>(&text).unwrap(), refused);
    }
}
