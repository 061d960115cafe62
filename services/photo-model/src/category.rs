//! The album categories (docs/architecture.md, "Album categories"): stable codes for the API and
//! their Chinese labels.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An album category, as shown to users and stored with cached results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlbumCategory {
    People,
    Landscape,
    Food,
    Animal,
    Plant,
    Architecture,
    Vehicle,
    Document,
    Screenshot,
    Other,
}

impl AlbumCategory {
    /// Every category, in the order the API documents them.
    pub const ALL: [AlbumCategory; 10] = [
        Self::People,
        Self::Landscape,
        Self::Food,
        Self::Animal,
        Self::Plant,
        Self::Architecture,
        Self::Vehicle,
        Self::Document,
        Self::Screenshot,
        Self::Other,
    ];

    /// Returns the API code, e.g. `food`.
    pub fn code(self) -> &'static str {
        match self {
            Self::People => "people",
            Self::Landscape => "landscape",
            Self::Food => "food",
            Self::Animal => "animal",
            Self::Plant => "plant",
            Self::Architecture => "architecture",
            Self::Vehicle => "vehicle",
            Self::Document => "document",
            Self::Screenshot => "screenshot",
            Self::Other => "other",
        }
    }

    /// Returns the label shown to users, e.g. `美食`.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::People => "人物",
            Self::Landscape => "风景",
            Self::Food => "美食",
            Self::Animal => "动物",
            Self::Plant => "植物",
            Self::Architecture => "建筑",
            Self::Vehicle => "交通",
            Self::Document => "文档",
            Self::Screenshot => "截图",
            Self::Other => "其他",
        }
    }

    /// Finds a category by its Chinese label (what a VL model is asked to answer with).
    pub fn from_label_zh(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.label_zh() == label)
    }
}

impl fmt::Display for AlbumCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error for a string that is no category code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown album category {0:?}")]
pub struct UnknownCategory(pub String);

impl FromStr for AlbumCategory {
    type Err = UnknownCategory;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .ok_or_else(|| UnknownCategory(code.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_labels_round_trip() {
        for category in AlbumCategory::ALL {
            assert_eq!(category.code().parse::<AlbumCategory>(), Ok(category));
            assert_eq!(
                AlbumCategory::from_label_zh(category.label_zh()),
                Some(category)
            );
        }
        assert_eq!(AlbumCategory::Food.label_zh(), "美食");
        assert!("selfie".parse::<AlbumCategory>().is_err());
    }
}
