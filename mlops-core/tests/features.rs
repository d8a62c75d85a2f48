//! A dependency pays only for the features it enables: `cargo tree` of the crate without
//! default features has no Burn, object store, chart library, PostgreSQL or Kafka client, and
//! the defaults leave out Kafka's C library.
//! (That each of these feature sets compiles on its own is `make features-check`, part of
//! `make test`.)

#![allow(clippy::unwrap_used)]

use std::process::Command;

/// The crates in `cargo tree -p mlops-core` (normal dependencies) with `features`.
fn dependencies(features: &[&str]) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--manifest-path",
            manifest,
            "-p",
            "mlops-core",
        ])
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

const HEAVY: [&str; 6] = [
    "burn",
    "object_store",
    "plotters",
    "postgres",
    "rdkafka",
    "tokio",
];

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
        assert!(
            defaults.iter().any(|d| d == present),
            "defaults lack {present}"
        );
    }
    assert!(
        !defaults.iter().any(|d| d == "rdkafka"),
        "Kafka's C client is built by default"
    );
    let kafka = dependencies(&["--features", "kafka"]);
    assert!(kafka.iter().any(|d| d == "rdkafka"));
}

/// `(crate, features)` of every package `cargo tree` lists with `args`.
fn feature_sets(args: &[&str]) -> std::collections::BTreeMap<String, String> {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--manifest-path", workspace])
        .args(["-f", "{p} {f}", "--prefix", "none"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut sets = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 {
            continue;
        }
        let features: Vec<String> = parts
            .get(2)
            .filter(|f| !f.starts_with('('))
            .map(|f| f.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        sets.entry(format!("{} {}", parts[0], parts[1]))
            .or_default()
            .extend(features);
    }
    sets.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect::<Vec<_>>().join(",")))
        .collect()
}

/// The Python wheel (maturin builds `mlops-py` alone) resolves every shared dependency with
/// the features of the workspace build (tests and examples), so Burn compiles once for all of
/// them. A new dependency of the examples or a dev-dependency that turns on a feature breaks
/// this; pin the feature in mlops-py/Cargo.toml.
#[test]
fn the_wheel_and_the_workspace_share_one_feature_set() {
    let wheel = feature_sets(&["-p", "mlops-py", "-e", "normal,build"]);
    let workspace = feature_sets(&["--workspace", "-e", "normal,build,dev"]);
    let differing: Vec<String> = wheel
        .iter()
        .filter(|(name, _)| !name.starts_with("pyo3"))
        .filter_map(|(name, features)| {
            let other = workspace.get(name)?;
            (other != features).then(|| format!("{name}: wheel [{features}], workspace [{other}]"))
        })
        .collect();
    assert!(differing.is_empty(), "{differing:#?}");
}
