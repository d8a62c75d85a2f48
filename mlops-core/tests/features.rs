//! A dependency pays only for the features it enables: `cargo tree` of the crate without
//! default features has no Burn, object store, chart library, PostgreSQL or Kafka client, and
//! the defaults leave out Kafka's C library.

#![allow(clippy::unwrap_used)]

use std::process::Command;

/// The crates in `cargo tree -p mlops-core` (normal dependencies) with `features`.
fn dependencies(features: &[&str]) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--manifest-path", manifest, "-p", "mlops-core"])
        .args(["-e", "normal", "--prefix", "none"])
        .args(features)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

const HEAVY: [&str; 6] = ["burn", "object_store", "plotters", "postgres", "rdkafka", "tokio"];

#[test]
fn without_default_features_only_corruption_and_listing_dependencies_remain() {
    let deps = dependencies(&["--no-default-features"]);
    assert!(deps.iter().any(|d| d == "image"), "{deps:?}");
    for heavy in HEAVY {
        assert!(
            !deps.iter().any(|d| d == heavy),
            "{heavy} is built without default features"
        );
    }
}

#[test]
fn features_add_exactly_their_dependencies() {
    let train = dependencies(&["--no-default-features", "--features", "train"]);
    assert!(train.iter().any(|d| d == "burn") && train.iter().any(|d| d == "object_store"));
    for absent in ["plotters", "postgres", "rdkafka"] {
        assert!(!train.iter().any(|d| d == absent), "train pulls {absent}");
    }
    let defaults = dependencies(&[]);
    for present in ["burn", "object_store", "plotters", "postgres"] {
        assert!(defaults.iter().any(|d| d == present), "defaults lack {present}");
    }
    assert!(
        !defaults.iter().any(|d| d == "rdkafka"),
        "Kafka's C client is built by default"
    );
    let kafka = dependencies(&["--features", "kafka"]);
    assert!(kafka.iter().any(|d| d == "rdkafka"));
}
