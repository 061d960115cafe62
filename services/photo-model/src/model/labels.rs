//! The 1000 ImageNet-1k class names in canonical index order (as in torchvision's
//! `_IMAGENET_CATEGORIES`), one per line in `data/imagenet-labels.txt`.

const LABELS_FILE: &str = include_str!("../../data/imagenet-labels.txt");

/// Class names indexed by ImageNet class index.
#[derive(Debug, Clone)]
pub struct ImageNetLabels(Vec<&'static str>);

impl ImageNetLabels {
    /// Returns the embedded list.
    pub fn embedded() -> Self {
        Self(LABELS_FILE.lines().collect())
    }

    /// Returns the name of a class, or `"?"` for an index past the end.
    pub fn name(&self, class_index: usize) -> &'static str {
        self.0.get(class_index).copied().unwrap_or("?")
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_list_has_the_canonical_order() {
        let labels = ImageNetLabels::embedded();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels.name(0), "tench");
        assert_eq!(labels.name(281), "tabby");
        assert_eq!(labels.name(967), "espresso");
        assert_eq!(labels.name(999), "toilet tissue");
        assert_eq!(labels.name(1000), "?");
    }
}
