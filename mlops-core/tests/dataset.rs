//! Listing class folders, the manifest formats (byte-compatible with the original's
//! `monday.json` lines) and seeded splits.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use mlops_core::Error;
use mlops_core::dataset::{
    ClassMap, ListOptions, Manifest, Sample, SplitOptions, list_dataset, split,
};

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"x").unwrap();
}

/// The original's five classes, created out of order, with distractions.
fn cargo_tree(root: &Path) {
    for class in ["wood", "ground", "background", "concrete", "brick"] {
        for i in [13, 2, 7] {
            touch(root, &format!("{class}/{class}_{i}.jpg"));
        }
    }
    touch(root, "brick/more/brick_deep.PNG");
    touch(root, "wood/.DS_Store");
    touch(root, "wood/.thumbs/w.jpg");
    touch(root, "ground/readme.txt");
    touch(root, "stray.jpg");
    touch(root, ".git/config");
}

#[test]
fn listing_uses_alphabetical_ids_and_reports_what_it_skips() {
    let tmp = tempfile::tempdir().unwrap();
    cargo_tree(tmp.path());
    let listing = list_dataset(tmp.path(), &ListOptions::default()).unwrap();
    assert_eq!(
        listing.classes.names(),
        ["background", "brick", "concrete", "ground", "wood"]
    );
    let m = &listing.manifest;
    assert_eq!(m.len(), 16);
    assert_eq!(m.samples[0], Sample::new("background/background_13.jpg", 0));
    assert!(
        m.samples
            .contains(&Sample::new("brick/more/brick_deep.PNG", 1))
    );
    assert!(
        m.samples
            .windows(2)
            .all(|w| w[0].image_path < w[1].image_path),
        "not sorted"
    );
    for s in &m.samples {
        let class = s.image_path.split('/').next().unwrap();
        assert_eq!(listing.classes.id(class), Some(s.target));
    }
    let r = &listing.report;
    assert_eq!(r.per_class[1], ("brick".to_string(), 4));
    assert_eq!(r.hidden, [".git", "wood/.DS_Store", "wood/.thumbs"]);
    assert_eq!(r.non_images, ["ground/readme.txt"]);
    assert_eq!(r.stray_files, ["stray.jpg"]);
    assert!(r.empty_classes.is_empty() && r.has_warnings());

    // Listing twice gives the same bytes.
    let again = list_dataset(tmp.path(), &ListOptions::default()).unwrap();
    assert_eq!(again.manifest.to_jsonl(), m.to_jsonl());
}

#[test]
fn given_classes_set_ids_and_report_empty_and_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    cargo_tree(tmp.path());
    let classes: Vec<String> = ["wood", "brick", "glass"].map(String::from).to_vec();
    let options = ListOptions {
        classes: Some(classes.clone()),
        strict: false,
    };
    let listing = list_dataset(tmp.path(), &options).unwrap();
    assert_eq!(listing.classes.names(), classes.as_slice());
    assert!(
        listing
            .manifest
            .samples
            .contains(&Sample::new("wood/wood_2.jpg", 0))
    );
    assert!(
        listing
            .manifest
            .samples
            .contains(&Sample::new("brick/brick_2.jpg", 1))
    );
    assert_eq!(listing.report.empty_classes, ["glass"]);
    assert_eq!(
        listing.report.unknown_folders,
        ["background", "concrete", "ground"]
    );

    let strict = ListOptions {
        classes: Some(classes),
        strict: true,
    };
    let err = list_dataset(tmp.path(), &strict).unwrap_err().to_string();
    assert!(err.contains("background, concrete, ground"), "{err}");
}

#[test]
fn empty_or_missing_roots_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = list_dataset(tmp.path(), &ListOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::EmptyDataset { .. }) && err.to_string().contains("no class folders"),
        "{err}"
    );
    std::fs::create_dir_all(tmp.path().join("a")).unwrap();
    touch(tmp.path(), "a/notes.md");
    let err = list_dataset(tmp.path(), &ListOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no images found"), "{err}");
    let err = list_dataset(&tmp.path().join("missing"), &ListOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    let dup = ListOptions {
        classes: Some(vec!["a".into(), "a".into()]),
        strict: false,
    };
    assert!(
        list_dataset(tmp.path(), &dup)
            .unwrap_err()
            .to_string()
            .contains("appears twice")
    );
}

#[test]
fn json_lines_match_the_original_byte_for_byte() {
    let m = Manifest::new(vec![
        Sample::new("background/background_13.jpg", 0),
        Sample::new("wood/wood_2.jpg", 4),
    ]);
    let text = m.to_jsonl();
    assert_eq!(
        text,
        "{\"image_path\":\"background/background_13.jpg\",\"target\":0}\n{\"image_path\":\"wood/wood_2.jpg\",\"target\":4}\n"
    );
    // pandas escapes slashes and may leave out the final newline: both read back the same.
    let pandas = "{\"image_path\":\"background\\/background_13.jpg\",\"target\":0}\n\n{\"image_path\":\"wood\\/wood_2.jpg\",\"target\":4}";
    assert_eq!(
        Manifest::from_jsonl(pandas, Path::new("monday.json")).unwrap(),
        m
    );

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sub/monday.jsonl");
    m.write(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(Manifest::read(&path).unwrap(), m);
}

#[test]
fn bad_manifest_lines_are_named() {
    let bad = "{\"image_path\":\"a.jpg\",\"target\":0}\n{\"image_path\":\"b.jpg\",\"target\":-1}\n";
    let err = Manifest::from_jsonl(bad, Path::new("m.jsonl")).unwrap_err();
    assert!(matches!(err, Error::Manifest { line: 2, .. }), "{err}");
    assert!(err.to_string().starts_with("m.jsonl:2:"), "{err}");
    let err =
        Manifest::from_jsonl("{\"image_path\":\"a.jpg\"}\n", Path::new("m.jsonl")).unwrap_err();
    assert!(err.to_string().contains("target"), "{err}");
    let err =
        Manifest::from_csv("image_path,target\na.jpg,zero\n", Path::new("m.csv")).unwrap_err();
    assert!(err.to_string().starts_with("m.csv:2:"), "{err}");
}

#[test]
fn csv_round_trips_awkward_paths() {
    let m = Manifest::new(vec![
        Sample::new("brick/it's, \"quoted\".jpg", 1),
        Sample::new("wood/é.png", 4),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.csv");
    m.write(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("image_path,target\n"), "{text}");
    assert_eq!(Manifest::read(&path).unwrap(), m);
    let jsonl = tmp.path().join("m.jsonl");
    m.write(&jsonl).unwrap();
    assert_eq!(Manifest::read(&jsonl).unwrap(), m);
}

fn numbered(n: usize, classes: u32) -> Manifest {
    Manifest::new(
        (0..n)
            .map(|i| Sample::new(format!("c/{i:05}.jpg"), (i as u32 * 7) % classes))
            .collect(),
    )
}

#[test]
fn default_split_is_80_20_seeded_and_disjoint() {
    let m = numbered(983, 5);
    let s = split(&m, &SplitOptions::default()).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (786, 197));
    let train: BTreeSet<_> = s.train.samples.iter().collect();
    let test: BTreeSet<_> = s.test.samples.iter().collect();
    assert!(train.is_disjoint(&test));
    assert_eq!(train.len() + test.len(), 983);
    // Each part keeps the manifest's order.
    assert!(s.test.samples.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(split(&m, &SplitOptions::default()).unwrap(), s);
    let other = split(
        &m,
        &SplitOptions {
            seed: 2023,
            ..SplitOptions::default()
        },
    )
    .unwrap();
    assert_ne!(other.test, s.test);
}

#[test]
fn stratified_split_keeps_class_proportions() {
    let m = numbered(1003, 5);
    let s = split(
        &m,
        &SplitOptions {
            stratified: true,
            ..SplitOptions::default()
        },
    )
    .unwrap();
    for (class, n) in m.class_counts() {
        let t = s.test.class_counts()[&class];
        assert_eq!(t, (n as f64 * 0.2).ceil() as usize, "class {class}");
    }
    let err = split(
        &m,
        &SplitOptions {
            test_fraction: 1.0,
            ..SplitOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("`test_fraction`"), "{err}");
    // Two samples: the test part gets ceil(0.4) = 1 and training keeps the other.
    let tiny = Manifest::new(vec![Sample::new("a.jpg", 0), Sample::new("b.jpg", 0)]);
    let s = split(&tiny, &SplitOptions::default()).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (1, 1));
}

#[test]
fn class_maps_validate_names() {
    assert!(ClassMap::new(Vec::<String>::new()).is_err());
    assert!(ClassMap::new(["a", ""]).is_err());
    let m = ClassMap::alphabetical(["wood", "brick"]).unwrap();
    assert_eq!(
        (m.id("brick"), m.name(1), m.id("glass")),
        (Some(0), Some("wood"), None)
    );
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(json, "[\"brick\",\"wood\"]");
    assert!(serde_json::from_str::<ClassMap>("[\"a\",\"a\"]").is_err());
}
