//! The JSON answers of the photo classification endpoints.

use serde::Serialize;
use utoipa::ToSchema;

use proto::photo::v1 as pb;

#[derive(Serialize, ToSchema)]
pub struct ScoredLabelOut {
    pub label: String,
    pub score: f32,
}

/// Why the cloud model was wanted but not used; the answer is then the local model's.
#[derive(Serialize, ToSchema)]
pub struct CloudSkippedOut {
    /// `not_configured`, `insufficient_credits`, `credits_unavailable`, `provider_unavailable`,
    /// `rate_limited`, `moderation_rejected`, `invalid_answer`, `provider_rejected`, `deadline`.
    pub reason: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ClassificationOut {
    /// Lower-case hex SHA-256 of the image bytes (what `/api/v1/photos/lookup` takes).
    pub sha256: String,
    /// `people`, `landscape`, `food`, `animal`, `plant`, `architecture`, `vehicle`, `document`,
    /// `screenshot` or `other`.
    pub category: String,
    /// The category's Chinese label: 人物, 风景, 美食, 动物, 植物, 建筑, 交通, 文档, 截图, 其他.
    pub label: String,
    /// The labels behind the answer, best first.
    pub top_labels: Vec<ScoredLabelOut>,
    pub confidence: f32,
    /// False when the local answer was too weak to stand alone.
    pub sure: bool,
    /// `cache` (no model ran for this request), `local` or `model` (the cloud model).
    pub source: &'static str,
    /// `local-efficientnet-lite0` or the Qwen-VL model id.
    pub model: String,
    /// Credits this request spent (1 for a cloud answer to a non-member, else 0).
    pub credits_charged: i64,
    /// The caller's spendable credits after the request, when the request consulted them.
    pub remaining_credits: Option<i64>,
    /// Set when the cloud model was wanted (unsure local answer, or `mode=cloud`) but not used.
    pub cloud_skipped: Option<CloudSkippedOut>,
}

#[derive(Serialize, ToSchema)]
pub struct ItemErrorOut {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct BatchItemOut {
    /// The image's position in the upload.
    pub index: usize,
    /// The part's file name, when the upload gave one.
    pub filename: Option<String>,
    /// Set when the image was classified.
    pub classification: Option<ClassificationOut>,
    /// Set when this image could not be classified (the others are not affected).
    pub error: Option<ItemErrorOut>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchOut {
    /// One per image, in upload order.
    pub results: Vec<BatchItemOut>,
    /// Credits the whole batch spent.
    pub credits_charged: i64,
}

#[derive(Serialize, ToSchema)]
pub struct LookupItemOut {
    pub sha256: String,
    pub found: bool,
    pub classification: Option<ClassificationOut>,
}

#[derive(Serialize, ToSchema)]
pub struct LookupOut {
    /// One per digest, in request order.
    pub results: Vec<LookupItemOut>,
}

pub fn classification_out(answer: pb::Classification) -> ClassificationOut {
    let source = match pb::ClassificationSource::try_from(answer.source) {
        Ok(pb::ClassificationSource::Local) => "local",
        Ok(pb::ClassificationSource::Model) => "model",
        _ => "cache",
    };
    ClassificationOut {
        sha256: answer.sha256,
        category: answer.category,
        label: answer.label,
        top_labels: answer
            .top_labels
            .into_iter()
            .map(|label| ScoredLabelOut {
                label: label.label,
                score: label.score,
            })
            .collect(),
        confidence: answer.confidence,
        sure: answer.sure,
        source,
        model: answer.model,
        credits_charged: answer.credits_charged,
        remaining_credits: answer.remaining_credits,
        cloud_skipped: answer.cloud_skipped.map(|skipped| CloudSkippedOut {
            reason: skip_reason(skipped.reason),
            message: skipped.message,
        }),
    }
}

fn skip_reason(reason: i32) -> &'static str {
    use pb::CloudSkipReason as R;
    match R::try_from(reason) {
        Ok(R::NotConfigured) => "not_configured",
        Ok(R::InsufficientCredits) => "insufficient_credits",
        Ok(R::CreditsUnavailable) => "credits_unavailable",
        Ok(R::ProviderUnavailable) => "provider_unavailable",
        Ok(R::RateLimited) => "rate_limited",
        Ok(R::ModerationRejected) => "moderation_rejected",
        Ok(R::InvalidAnswer) => "invalid_answer",
        Ok(R::ProviderRejected) => "provider_rejected",
        Ok(R::Deadline) => "deadline",
        Ok(R::Unspecified) | Err(_) => "unspecified",
    }
}
