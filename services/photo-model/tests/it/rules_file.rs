//! The rules file: the shipped one parses and puts known ImageNet classes in the categories they
//! were chosen for (tabby → animal, espresso → food, missile → none, …); tuned copies load from a
//! path; broken ones are refused with a reason.

use photo_model::{AlbumCategory, CategoryRules, RulesError};

const MINIMAL: &str = r#"
version = "test-1"
top_k = 3
min_margin = 0.2
[other]
threshold = 0.6
[screenshot]
require_no_camera_exif = true
formats = ["png"]
screen_sizes = [[1080, 2400]]
[[category]]
code = "animal"
threshold = 0.35
ranges = [[0, 397]]
[[category]]
code = "food"
threshold = 0.35
classes = [967, 968]
"#;

fn invalid(text: &str) -> String {
    match CategoryRules::from_toml(text) {
        Err(err @ (RulesError::Invalid(_) | RulesError::Parse(_))) => err.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn shipped_rules_parse_and_map_known_classes() {
    let rules = CategoryRules::embedded().unwrap();
    assert!(!rules.version().is_empty());
    assert_eq!(rules.top_k(), 5);
    let expect = [
        (281, Some(AlbumCategory::Animal)),       // tabby
        (264, Some(AlbumCategory::Animal)),       // Cardigan (the corgi), not clothing
        (967, Some(AlbumCategory::Food)),         // espresso
        (665, Some(AlbumCategory::Vehicle)),      // moped
        (985, Some(AlbumCategory::Plant)),        // daisy
        (978, Some(AlbumCategory::Landscape)),    // seashore
        (497, Some(AlbumCategory::Architecture)), // church
        (922, Some(AlbumCategory::Document)),     // menu
        (834, Some(AlbumCategory::People)),       // suit
        (657, None),                              // missile
    ];
    for (class, category) in expect {
        assert_eq!(rules.category_of_class(class), category, "class {class}");
    }
}

#[test]
fn the_file_on_disk_is_the_embedded_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/album-categories.toml");
    let loaded = CategoryRules::load(std::path::Path::new(path)).unwrap();
    assert_eq!(
        loaded.version(),
        CategoryRules::embedded().unwrap().version()
    );
}

#[test]
fn a_tuned_copy_loads_from_a_path_and_changes_decisions() {
    let top = [(967, 0.30), (968, 0.10), (500, 0.05)];
    let shipped = CategoryRules::from_toml(MINIMAL).unwrap();
    assert_eq!(
        shipped.decide_by_predictions(&top).category,
        AlbumCategory::Food
    );

    let tuned_text = MINIMAL.replace("classes = [967, 968]", "classes = [967]");
    let path = std::env::temp_dir().join(format!("album-rules-{}.toml", std::process::id()));
    std::fs::write(&path, tuned_text).unwrap();
    let tuned = CategoryRules::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let decision = tuned.decide_by_predictions(&top);
    assert_eq!(
        decision.category,
        AlbumCategory::Other,
        "espresso alone is under 0.35"
    );
    assert!(!decision.sure);
}

#[test]
fn decisions_follow_thresholds_and_margin() {
    let rules = CategoryRules::from_toml(MINIMAL).unwrap();
    // Clear winner.
    let d = rules.decide_by_predictions(&[(281, 0.5), (282, 0.3), (967, 0.1)]);
    assert_eq!((d.category, d.sure), (AlbumCategory::Animal, true));
    assert!((d.confidence - 0.8).abs() < 1e-6);
    // Over the threshold but too close to the runner-up: unsure.
    let d = rules.decide_by_predictions(&[(281, 0.40), (967, 0.35), (500, 0.1)]);
    assert_eq!((d.category, d.sure), (AlbumCategory::Animal, false));
    // Nothing reaches a threshold: other, unsure.
    let d = rules.decide_by_predictions(&[(500, 0.3), (281, 0.2), (967, 0.2)]);
    assert_eq!((d.category, d.sure), (AlbumCategory::Other, false));
    // Mostly classes in no category, confidently: other, sure.
    let d = rules.decide_by_predictions(&[(500, 0.7), (501, 0.2), (281, 0.01)]);
    assert_eq!((d.category, d.sure), (AlbumCategory::Other, true));
    // Only top_k (3) predictions count.
    let d = rules.decide_by_predictions(&[(500, 0.2), (501, 0.2), (502, 0.2), (281, 0.3)]);
    assert_eq!(d.category, AlbumCategory::Other);
}

#[test]
fn broken_rules_are_refused_with_a_reason() {
    let unknown = MINIMAL.replace("code = \"food\"", "code = \"selfies\"");
    assert!(invalid(&unknown).contains("TOML"));
    let overlap = MINIMAL.replace("classes = [967, 968]", "classes = [967, 12]");
    assert!(invalid(&overlap).contains("class 12 is in both animal and food"));
    let out_of_range = MINIMAL.replace("classes = [967, 968]", "classes = [1000]");
    assert!(invalid(&out_of_range).contains("not an ImageNet class"));
    let zero = MINIMAL.replace("threshold = 0.35\nclasses", "threshold = 0.0\nclasses");
    assert!(invalid(&zero).contains("threshold"));
    let screenshot = MINIMAL.replace("code = \"food\"", "code = \"screenshot\"");
    assert!(invalid(&screenshot).contains("own section"));
    let typo = MINIMAL.replace("min_margin", "min_margn");
    assert!(invalid(&typo).contains("TOML"));
    let reversed = MINIMAL.replace("[[0, 397]]", "[[397, 0]]");
    assert!(invalid(&reversed).contains("reversed"));
}
