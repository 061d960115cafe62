//! Album-category rules: ImageNet classes → album categories with thresholds, and the metadata
//! rule for screenshots. Loaded from TOML (`rules/album-categories.toml` is embedded as the
//! default) so operators can tune them without a code change.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::category::AlbumCategory;
use crate::decode::{ImageMetadata, PhotoFormat};

const EMBEDDED_RULES: &str = include_str!("../rules/album-categories.toml");
const IMAGENET_CLASSES: usize = 1000;

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rules file is not valid TOML for the album rules")]
    Parse(#[from] toml::de::Error),
    #[error("invalid album rules: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    version: String,
    top_k: usize,
    min_margin: f32,
    other: OtherSection,
    screenshot: ScreenshotRule,
    category: Vec<CategorySection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OtherSection {
    threshold: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategorySection {
    code: AlbumCategory,
    threshold: f32,
    #[serde(default)]
    ranges: Vec<[usize; 2]>,
    #[serde(default)]
    classes: Vec<usize>,
}

/// When a photo counts as a screenshot, from metadata alone: every condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenshotRule {
    pub require_no_camera_exif: bool,
    pub formats: Vec<PhotoFormat>,
    /// Width × height; either orientation matches.
    pub screen_sizes: Vec<[u32; 2]>,
}

impl ScreenshotRule {
    /// Tells whether the metadata matches every condition of the rule.
    pub fn matches(&self, metadata: &ImageMetadata) -> bool {
        let (w, h) = (metadata.width, metadata.height);
        (!self.require_no_camera_exif || !metadata.has_camera_exif())
            && self.formats.contains(&metadata.format)
            && self
                .screen_sizes
                .iter()
                .any(|&[sw, sh]| (w, h) == (sw, sh) || (w, h) == (sh, sw))
    }
}

/// The outcome of the rules for one photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CategoryDecision {
    pub category: AlbumCategory,
    /// The summed probability behind the answer (1.0 for a metadata rule).
    pub confidence: f32,
    /// False when the answer is below its threshold or too close to the runner-up.
    pub sure: bool,
}

/// Validated album rules.
#[derive(Debug, Clone)]
pub struct CategoryRules {
    version: String,
    top_k: usize,
    min_margin: f32,
    other_threshold: f32,
    thresholds: Vec<(AlbumCategory, f32)>,
    /// Indexed by ImageNet class.
    class_category: Vec<Option<AlbumCategory>>,
    screenshot: ScreenshotRule,
}

impl CategoryRules {
    /// Returns the rules shipped with the crate (`rules/album-categories.toml`).
    pub fn embedded() -> Result<Self, RulesError> {
        Self::from_toml(EMBEDDED_RULES)
    }

    /// Loads and validates a rules file.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates rules from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text)?;
        let invalid = |message: String| Err(RulesError::Invalid(message));
        if file.version.trim().is_empty() {
            return invalid("version must not be empty".into());
        }
        if !(1..=IMAGENET_CLASSES).contains(&file.top_k) {
            return invalid(format!(
                "top_k must be 1..={IMAGENET_CLASSES}, not {}",
                file.top_k
            ));
        }
        if !(0.0..=1.0).contains(&file.min_margin) {
            return invalid(format!(
                "min_margin must be in 0..=1, not {}",
                file.min_margin
            ));
        }
        check_threshold("other", file.other.threshold)?;
        if file
            .screenshot
            .screen_sizes
            .iter()
            .any(|&[w, h]| w == 0 || h == 0)
        {
            return invalid("screen sizes must not be zero".into());
        }

        let mut class_category = vec![None; IMAGENET_CLASSES];
        let mut thresholds = Vec::with_capacity(file.category.len());
        let mut seen = HashSet::new();
        for section in &file.category {
            let code = section.code;
            if matches!(code, AlbumCategory::Screenshot | AlbumCategory::Other) {
                return invalid(format!(
                    "{code} is decided by its own section, not by classes"
                ));
            }
            if !seen.insert(code) {
                return invalid(format!("category {code} appears twice"));
            }
            check_threshold(code.code(), section.threshold)?;
            let mut indices = section.classes.clone();
            for &[first, last] in &section.ranges {
                if first > last {
                    return invalid(format!("{code}: range {first}-{last} is reversed"));
                }
                indices.extend(first..=last);
            }
            if indices.is_empty() {
                return invalid(format!("{code} has no classes"));
            }
            for index in indices {
                let Some(slot) = class_category.get_mut(index) else {
                    return invalid(format!("{code}: class {index} is not an ImageNet class"));
                };
                if let Some(previous) = slot.replace(code) {
                    return invalid(format!("class {index} is in both {previous} and {code}"));
                }
            }
            thresholds.push((code, section.threshold));
        }
        if thresholds.is_empty() {
            return invalid("no categories".into());
        }
        Ok(Self {
            version: file.version,
            top_k: file.top_k,
            min_margin: file.min_margin,
            other_threshold: file.other.threshold,
            thresholds,
            class_category,
            screenshot: file.screenshot,
        })
    }

    /// The rules version, part of the result cache key.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How many top predictions are summed per category.
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// The category an ImageNet class belongs to, if any.
    pub fn category_of_class(&self, class_index: usize) -> Option<AlbumCategory> {
        self.class_category.get(class_index).copied().flatten()
    }

    pub fn screenshot_rule(&self) -> &ScreenshotRule {
        &self.screenshot
    }

    /// Decides from metadata alone, when the metadata rules apply (screenshots).
    pub fn decide_by_metadata(&self, metadata: &ImageMetadata) -> Option<CategoryDecision> {
        self.screenshot
            .matches(metadata)
            .then_some(CategoryDecision {
                category: AlbumCategory::Screenshot,
                confidence: 1.0,
                sure: true,
            })
    }

    /// Decides from the top predictions `(class index, probability)`, best first; only the
    /// first `top_k` are used.
    pub fn decide_by_predictions(&self, top: &[(usize, f32)]) -> CategoryDecision {
        let mut scores: Vec<(AlbumCategory, f32, f32)> = self
            .thresholds
            .iter()
            .map(|&(category, threshold)| (category, 0.0, threshold))
            .chain([(AlbumCategory::Other, 0.0, self.other_threshold)])
            .collect();
        for &(class_index, probability) in top.iter().take(self.top_k) {
            let category = self
                .category_of_class(class_index)
                .unwrap_or(AlbumCategory::Other);
            if let Some(entry) = scores.iter_mut().find(|(c, _, _)| *c == category) {
                entry.1 += probability;
            }
        }
        // Stable: on a tie the category listed first in the rules wins.
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (best, best_score, best_threshold) = scores[0];
        let runner_up = scores.get(1).map_or(0.0, |s| s.1);
        if best_score >= best_threshold {
            CategoryDecision {
                category: best,
                confidence: best_score,
                sure: best_score - runner_up >= self.min_margin,
            }
        } else {
            let other = scores
                .iter()
                .find(|(c, _, _)| *c == AlbumCategory::Other)
                .map_or(0.0, |s| s.1);
            CategoryDecision {
                category: AlbumCategory::Other,
                confidence: other,
                sure: false,
            }
        }
    }
}

fn check_threshold(name: &str, threshold: f32) -> Result<(), RulesError> {
    if threshold > 0.0 && threshold <= 1.0 {
        Ok(())
    } else {
        Err(RulesError::Invalid(format!(
            "{name}: threshold must be in (0, 1], not {threshold}"
        )))
    }
}
