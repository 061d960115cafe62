//! What the cloud model is asked, and the strict check of what it answers: one JSON object whose
//! category is on the album list. Anything else is refused, never guessed at.

use serde::Deserialize;

use super::{AlbumCategory, ScoredLabel};

/// Part of the cache key of cloud results: change it whenever the prompt or the category list
/// changes, so no answer to an old question is served.
pub const PROMPT_VERSION: &str = "album-v1";

pub const SYSTEM_PROMPT: &str = "你是相册照片分类器。只输出一个JSON对象，不要输出任何其他文字。";

pub const USER_PROMPT: &str = "把这张照片归入下列相册类别之一：人物、风景、美食、动物、植物、建筑、交通、文档、截图、其他。\
只输出JSON，格式为 {\"category\":\"类别\",\"confidence\":0到1之间的数字,\
\"labels\":[{\"label\":\"简短的中文标签\",\"score\":0到1之间的数字}]}，labels 最多3个。";

/// The most labels kept from an answer.
const MAX_LABELS: usize = 5;
/// The longest label kept, in characters.
const MAX_LABEL_CHARS: usize = 32;

/// A checked answer of the cloud model.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudAnswer {
    pub category: AlbumCategory,
    pub confidence: f32,
    pub labels: Vec<ScoredLabel>,
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAnswer {
    #[error("the answer is not a JSON object: {0}")]
    NotJson(String),
    #[error("category {0:?} is not an album category")]
    UnknownCategory(String),
    #[error("{field} must be a number within 0..=1")]
    OutOfRange { field: &'static str },
    #[error("label {0:?} is empty or longer than 32 characters")]
    BadLabel(String),
}

#[derive(Deserialize)]
struct RawAnswer {
    category: String,
    confidence: f64,
    #[serde(default)]
    labels: Vec<RawLabel>,
}

#[derive(Deserialize)]
struct RawLabel {
    label: String,
    score: f64,
}

/// Checks the model's message content. Models often wrap JSON in a Markdown code fence; that
/// wrapper is the only leniency.
pub fn parse(content: &str) -> Result<CloudAnswer, InvalidAnswer> {
    let json = strip_code_fence(content.trim());
    let raw: RawAnswer =
        serde_json::from_str(json).map_err(|err| InvalidAnswer::NotJson(err.to_string()))?;
    let category = category_named(raw.category.trim())
        .ok_or_else(|| InvalidAnswer::UnknownCategory(raw.category.clone()))?;
    let confidence = unit_interval(raw.confidence, "confidence")?;
    let mut labels = raw
        .labels
        .into_iter()
        .map(|raw| {
            let label = raw.label.trim().to_owned();
            if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
                return Err(InvalidAnswer::BadLabel(raw.label));
            }
            Ok(ScoredLabel {
                label,
                score: unit_interval(raw.score, "labels[].score")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    labels.sort_by(|a, b| b.score.total_cmp(&a.score));
    labels.truncate(MAX_LABELS);
    Ok(CloudAnswer {
        category,
        confidence,
        labels,
    })
}

/// Accepts the Chinese label the prompt asks for, or the category code.
fn category_named(name: &str) -> Option<AlbumCategory> {
    AlbumCategory::from_label_zh(name).or_else(|| name.parse().ok())
}

fn unit_interval(value: f64, field: &'static str) -> Result<f32, InvalidAnswer> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value as f32)
    } else {
        Err(InvalidAnswer::OutOfRange { field })
    }
}

fn strip_code_fence(text: &str) -> &str {
    let Some(inner) = text.strip_prefix("```") else {
        return text;
    };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_answer_is_checked_and_labels_sorted() {
        let answer = parse(
            r#"{"category":"美食","confidence":0.92,"labels":[{"label":"杯子","score":0.4},{"label":"咖啡","score":0.9}]}"#,
        )
        .unwrap();
        assert_eq!(answer.category, AlbumCategory::Food);
        assert!((answer.confidence - 0.92).abs() < 1e-6);
        assert_eq!(answer.labels[0].label, "咖啡");
        assert_eq!(answer.labels.len(), 2);
    }

    #[test]
    fn a_fenced_answer_or_a_category_code_is_accepted() {
        let answer = parse("```json\n{\"category\":\"people\",\"confidence\":1}\n```").unwrap();
        assert_eq!(answer.category, AlbumCategory::People);
        assert!(answer.labels.is_empty());
    }

    #[test]
    fn anything_else_is_refused() {
        let cases = [
            "这是一张咖啡的照片",
            "",
            r#"{"category":"汽车","confidence":0.9}"#,
            r#"{"category":"美食"}"#,
            r#"{"category":"美食","confidence":1.5}"#,
            r#"{"category":"美食","confidence":"high"}"#,
            r#"{"category":"美食","confidence":0.5,"labels":[{"label":"","score":0.5}]}"#,
            r#"{"category":"美食","confidence":0.5,"labels":[{"label":"x","score":-1}]}"#,
            r#"["美食"]"#,
        ];
        for case in cases {
            assert!(parse(case).is_err(), "{case}");
        }
        assert_eq!(
            parse(r#"{"category":"汽车","confidence":0.9}"#),
            Err(InvalidAnswer::UnknownCategory("汽车".into()))
        );
    }

    #[test]
    fn the_prompt_names_every_category() {
        for category in AlbumCategory::ALL {
            assert!(USER_PROMPT.contains(category.label_zh()), "{category}");
        }
    }
}
