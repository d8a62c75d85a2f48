//! The crate's shape: its modules import in one direction only (leaves, then stages, then
//! pipelines, then services; see the crate docs), and every enum has one spelling.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use mlops_core::backend::ComputeBackend;
use mlops_core::corrupt::CorruptionKind;
use mlops_core::infer::FeatureEngine;
use mlops_core::model::BackboneKind;
use mlops_core::select::{Distance, Strategy};
use mlops_core::train::TrainMode;

/// Every name parses to a value that displays and serialises as that same name.
fn one_spelling<T>(names: &[&str])
where
    T: FromStr<Err = mlops_core::Error>
        + Display
        + Serialize
        + DeserializeOwned
        + PartialEq
        + std::fmt::Debug,
{
    for &name in names {
        let value: T = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(value.to_string(), name);
        let json = serde_json::to_string(&value).unwrap_or_default();
        assert_eq!(json, format!("\"{name}\""));
        let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(back, value);
    }
    let err = "no-such-name"
        .parse::<T>()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(names[0]), "{err}");
}

#[test]
fn every_enum_has_one_spelling() {
    one_spelling::<ComputeBackend>(ComputeBackend::NAMES);
    one_spelling::<TrainMode>(TrainMode::NAMES);
    one_spelling::<FeatureEngine>(FeatureEngine::NAMES);
    one_spelling::<BackboneKind>(BackboneKind::NAMES);
    one_spelling::<Distance>(Distance::NAMES);
    one_spelling::<Strategy>(Strategy::NAMES);
    one_spelling::<CorruptionKind>(CorruptionKind::NAMES);
    one_spelling::<mlops_core::corrupt::ImagenetCKind>(mlops_core::corrupt::ImagenetCKind::NAMES);
    assert_eq!(TrainMode::FineTune.to_string(), "fine_tune");
}

/// Every top-level module of `src/`, lowest first. A module may use only modules before it:
/// leaves (know no stage), stages (know leaves and the stages before them), pipelines, then
/// services. A new module must be placed here.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaf",
        &[
            "paths",
            "error",
            "json_float",
            "names",
            "seed",
            "stats",
            "imageio",
            "blocking",
            "control",
            "linalg",
        ],
    ),
    (
        "stage",
        &[
            "corrupt", "dataset", "select", "drift", "backend", "vision", "model", "infer",
            "train", "artifact", "predict", "embed",
        ],
    ),
    ("pipeline", &["experiment", "report", "robustness", "adapt"]),
    ("service", &["db", "kafka"]),
];

/// `crate::<module>` references in the code of `text` (comments and doc comments left out).
fn code_references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() {
                found.push((number + 1, name));
            }
            rest = &rest[at + 7..];
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let rank: BTreeMap<&str, (usize, &str)> = LAYERS
        .iter()
        .flat_map(|(layer, modules)| modules.iter().map(move |m| (*m, *layer)))
        .enumerate()
        .map(|(i, (module, layer))| (module, (i, layer)))
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    let mut unplaced = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        let Some(&(from, from_layer)) = rank.get(module.as_str()) else {
            unplaced.push(module);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in code_references(&text) {
            let Some(&(to, to_layer)) = rank.get(target.as_str()) else {
                continue; // an item of the crate root (`crate::Error`, `crate::Result`)
            };
            if to >= from && target != module {
                upward.push(format!(
                    "{}:{line}: {module} ({from_layer}) uses {target} ({to_layer})",
                    relative.display()
                ));
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS: {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "imports that go up or sideways:\n{}",
        upward.join("\n")
    );
}

/// The decoder versions in feature-cache keys ([`mlops_core::imageio::DECODERS`]) are the ones
/// Cargo.lock builds: an upgrade of `image` or one of its decoders must update them (and so
/// every cached feature computed from the old decoder's pixels is computed again).
#[test]
fn the_decoder_versions_in_cache_keys_are_the_built_ones() {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
        .unwrap();
    let mut versions = BTreeMap::<String, Vec<String>>::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            versions
                .entry(n)
                .or_default()
                .push(v.trim_matches('"').to_string());
        }
    }
    for decoder in mlops_core::imageio::DECODERS.split(',') {
        let (crate_name, version) = decoder.rsplit_once('-').unwrap();
        let built = versions.get(crate_name).cloned().unwrap_or_default();
        assert!(
            built.iter().any(|v| v == version),
            "DECODERS names {decoder}, Cargo.lock has {crate_name} {built:?}: update DECODERS"
        );
    }
    for crate_name in ["image", "zune-jpeg", "png", "gif", "image-webp"] {
        assert!(
            mlops_core::imageio::DECODERS.contains(&format!("{crate_name}-")),
            "{crate_name} is missing from DECODERS"
        );
    }
}
