//! Training on the real-photo demo data: accuracy, reproducibility, model packages (file and
//! memory stores) and prediction from a loaded package.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use burn::prelude::*;
use common::{demo_data, test_cache, wheel};
use mlops_core::ComputeBackend;
use mlops_core::artifact::{
    ModelPackage, PackageInfo, list_packages, load_parts, save_parts, weights_bytes,
};
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::model::{Backbone, BackboneKind};
use mlops_core::predict::Predictor;
use mlops_core::train::{ImageSet, TrainConfig, TrainMode, TrainOutcome, train};
use mlops_core::vision::Preprocess;

fn classes() -> ClassMap {
    ClassMap::new(["background", "brick", "concrete", "ground", "wood"]).unwrap()
}

fn manifests() -> (Manifest, Manifest) {
    let data = demo_data();
    (
        Manifest::read(&data.join("monday_train.jsonl")).unwrap(),
        Manifest::read(&data.join("monday_test.jsonl")).unwrap(),
    )
}

fn frozen_config() -> TrainConfig {
    TrainConfig {
        feature_cache: Some(test_cache("features")),
        ..TrainConfig::default()
    }
}

fn train_monday() -> TrainOutcome {
    let device = Device::flex();
    let backbone = Backbone::EfficientNetLite0(
        load_lite0(&wheel(LITE0_WHEEL_PREFIX), false, &device).unwrap(),
    );
    let (train_m, test_m) = manifests();
    let root = demo_data().join("monday");
    train(
        backbone,
        &classes(),
        &ImageSet {
            root: &root,
            manifest: &train_m,
        },
        &ImageSet {
            root: &root,
            manifest: &test_m,
        },
        &frozen_config(),
        &mlops_core::Control::new(),
    )
    .unwrap()
}

/// One training run shared by the tests of this file.
fn trained() -> &'static TrainOutcome {
    static OUTCOME: OnceLock<TrainOutcome> = OnceLock::new();
    OUTCOME.get_or_init(train_monday)
}

#[test]
fn frozen_backbone_reaches_85_percent_on_monday() {
    let outcome = trained();
    assert_eq!(outcome.history.len(), 15);
    assert!(outcome.skipped.is_empty(), "{:?}", outcome.skipped);
    let acc = outcome.test.accuracy;
    eprintln!(
        "monday test accuracy {acc:.3}, features {:.1} s, epochs {:.2} s",
        outcome.feature_seconds, outcome.train_seconds
    );
    assert!(acc >= 0.85, "test accuracy {acc}");
    // The learning rate follows the original's schedule and the loss goes down.
    let h = &outcome.history;
    assert!(
        (h[0].learning_rate - 1e-3).abs() < 1e-12 && (h[1].learning_rate - 0.95e-3).abs() < 1e-12
    );
    assert!(h[14].train_loss < h[0].train_loss);
    // The confusion matrix adds up and agrees with the accuracy.
    let total: u64 = outcome.test.confusion.iter().flatten().sum();
    let diag: u64 = (0..5).map(|c| outcome.test.confusion[c][c]).sum();
    assert_eq!(total, 200);
    assert!((diag as f64 / 200.0 - acc).abs() < 1e-12);
}

#[test]
fn training_is_reproducible_to_the_byte() {
    let again = train_monday();
    let first = trained();
    assert_eq!(
        weights_bytes(&again.model).unwrap(),
        weights_bytes(&first.model).unwrap()
    );
    assert_eq!(
        again
            .history
            .iter()
            .map(|m| m.test_loss)
            .collect::<Vec<_>>(),
        first
            .history
            .iter()
            .map(|m| m.test_loss)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_loaded_package_predicts_what_training_recorded() {
    let outcome = trained();
    let (train_m, test_m) = manifests();
    let info = PackageInfo {
        train_config: Some(frozen_config()),
        history: outcome.history.clone(),
        test: Some(outcome.test.clone()),
        manifests_sha256: vec![mlops_core::seed::sha256_hex(train_m.to_jsonl().as_bytes())],
        reference: outcome.reference.clone(),
        lineage: None,
    };
    let model = mlops_core::artifact::model_from_weights(
        &ModelPackage::new(
            outcome.model.clone(),
            classes(),
            Preprocess::default(),
            info.clone(),
        )
        .unwrap()
        .0
        .metadata,
        &weights_bytes(&outcome.model).unwrap(),
        &Device::flex(),
    )
    .unwrap();
    let (package, _) =
        ModelPackage::new(model, classes(), Preprocess::default(), info.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for uri in [
        dir.path().join("pkg").display().to_string(),
        format!("file://{}/pkg2", dir.path().display()),
        "memory://tests/monday".to_string(),
    ] {
        package.save(&uri).unwrap();
        let predictor = Predictor::load(&uri, ComputeBackend::Flex).unwrap();
        let predictions = predictor
            .predict_manifest(&demo_data().join("monday"), &test_m)
            .unwrap();
        let ids: Vec<u32> = predictions
            .into_iter()
            .map(|p| p.unwrap().class_id)
            .collect();
        assert_eq!(
            ids, outcome.test.predictions,
            "{uri}: predictions differ from training time"
        );
        let loaded = ModelPackage::load(&uri, &Device::flex()).unwrap();
        assert_eq!(loaded.metadata, package.metadata);
        assert_eq!(loaded.metadata.backbone, BackboneKind::EfficientNetLite0);
        assert_eq!(
            loaded.reference, package.reference,
            "{uri}: drift reference"
        );
    }
    // The reference: every test row (fewer than 1000, rows the head was not fitted on), its
    // features as the predictor computes them, and the head's outputs on them.
    let reference = package.reference.as_ref().expect("a reference sample");
    assert_eq!(reference.len(), test_m.len());
    assert_eq!(reference.features().dim(), 1280);
    let predictor = Predictor::load(
        &dir.path().join("pkg").display().to_string(),
        ComputeBackend::Flex,
    )
    .unwrap();
    let first = predictor
        .predict_paths_with_features(&[demo_data()
            .join("monday")
            .join(&test_m.samples[0].image_path)])
        .unwrap()
        .remove(0)
        .unwrap();
    let gap = first
        .1
        .iter()
        .zip(reference.features().row(0))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        gap < 1e-3,
        "stored features differ from the predictor's by {gap}"
    );
    let probability_gap = first
        .0
        .probabilities
        .iter()
        .zip(reference.probabilities().row(0))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(probability_gap < 1e-4, "{probability_gap}");
    // A tampered reference object is refused; a package without one (older) still loads.
    let path = dir.path().join("pkg");
    let object = &package.metadata.reference.as_ref().unwrap().object;
    std::fs::write(path.join(object), b"tampered").unwrap();
    let err = ModelPackage::load(&path.display().to_string(), &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("corrupted"), "{err}");
    let older = PackageInfo {
        reference: None,
        lineage: None,
        ..info
    };
    let (older, _) = ModelPackage::new(
        mlops_core::artifact::model_from_weights(
            &package.metadata,
            &weights_bytes(&package.model).unwrap(),
            &Device::flex(),
        )
        .unwrap(),
        classes(),
        Preprocess::default(),
        older,
    )
    .unwrap();
    let old_uri = dir.path().join("old").display().to_string();
    older.save(&old_uri).unwrap();
    let text = std::fs::read_to_string(dir.path().join("old/metadata.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        value.get("reference").is_none(),
        "no reference key in an older-style package"
    );
    assert!(
        ModelPackage::load(&old_uri, &Device::flex())
            .unwrap()
            .reference
            .is_none()
    );
    let listed = list_packages(&dir.path().display().to_string()).unwrap();
    assert_eq!(listed.len(), 3, "pkg, pkg2 and old: {listed:?}");
}

/// Tuesday's test rows (monday's classes under the original's corruptions) as the trained
/// model sees them: (features, probabilities, true class).
fn tuesday_rows(predictor: &Predictor) -> Vec<(Vec<f32>, Vec<f32>, u32)> {
    let manifest = Manifest::read(&demo_data().join("tuesday_test.jsonl")).unwrap();
    let paths: Vec<_> = manifest
        .samples
        .iter()
        .map(|s| demo_data().join("tuesday").join(&s.image_path))
        .collect();
    predictor
        .predict_paths_with_features(&paths)
        .unwrap()
        .into_iter()
        .zip(&manifest.samples)
        .map(|(r, s)| {
            let (p, f) = r.unwrap();
            (f, p.probabilities, s.target)
        })
        .collect()
}

#[test]
fn the_reference_carries_a_calibrated_monitor_that_notices_tuesday_and_estimates_accuracy() {
    use mlops_core::drift::{DriftMonitor, MonitorConfig};
    let outcome = trained();
    let reference = outcome.reference.as_ref().expect("a reference sample");
    let (_, test_m) = manifests();
    let targets: Vec<u32> = test_m.samples.iter().map(|s| s.target).collect();
    assert_eq!(
        reference.targets(),
        Some(&targets[..]),
        "the test rows' true classes"
    );
    let calibration = reference.calibration().expect("a stored calibration");
    assert_eq!(calibration.cusum.ert, MonitorConfig::default().ert);
    let simulated = calibration.cusum.simulated_ert / calibration.cusum.ert;
    assert!(
        (0.8..1.25).contains(&simulated),
        "simulated ERT ratio {simulated}"
    );
    let estimator = calibration
        .accuracy
        .as_ref()
        .expect("an accuracy estimator");
    assert!((estimator.reference_accuracy - outcome.test.accuracy).abs() < 1e-9);

    let predictor = Predictor::new(
        outcome.model.clone(),
        classes(),
        Preprocess::default(),
        Device::flex(),
    )
    .unwrap();
    let tuesday = tuesday_rows(&predictor);
    let classes_n = classes().len();
    let probabilities: Vec<f32> = tuesday.iter().flat_map(|r| r.1.iter().copied()).collect();
    let correct = tuesday
        .iter()
        .filter(|r| {
            let top = (0..classes_n).max_by(|&a, &b| r.1[a].total_cmp(&r.1[b]));
            top == Some(r.2 as usize)
        })
        .count();
    let truth = correct as f64 / tuesday.len() as f64;
    let estimate = estimator.estimate(&probabilities, classes_n).unwrap();
    eprintln!(
        "tuesday: true accuracy {truth:.3}, estimated {estimate:.3} (monday {:.3})",
        outcome.test.accuracy
    );
    assert!(truth < outcome.test.accuracy - 0.05, "tuesday is harder");
    // On the reference's own rows the estimate is their accuracy; on tuesday it sees the drop
    // but, like every confidence-based estimate, not all of it where the model stays
    // confident while wrong (docs/drift.md: within 1-5 points down to 85%, too high below).
    let own = estimator
        .estimate(reference.probabilities().as_slice(), classes_n)
        .unwrap();
    assert!((own - outcome.test.accuracy).abs() < 0.01, "{own}");
    assert!(
        estimate < outcome.test.accuracy - 0.15,
        "estimated {estimate:.3} on tuesday"
    );
    assert!(
        (estimate - truth).abs() < 0.25,
        "estimated {estimate:.3}, true {truth:.3}"
    );
    // The monitor takes the stored calibration as it is (the settings are the defaults).
    let monitor = DriftMonitor::new(reference, MonitorConfig::default()).unwrap();
    assert_eq!(monitor.calibration(), calibration);
    let mut monitor = monitor;
    // Tuesday's rows in a seeded random order (the manifest lists them class by class).
    let mut order: Vec<usize> = (0..tuesday.len()).collect();
    rand::seq::SliceRandom::shuffle(
        &mut order[..],
        &mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5),
    );
    let alarm = order
        .iter()
        .map(|&i| &tuesday[i])
        .enumerate()
        .find_map(|(i, r)| {
            monitor
                .push(i as i64, &r.0, &r.1)
                .unwrap()
                .filter(|c| c.alarm)
                .map(|_| i + 1)
        })
        .expect("tuesday raises an alarm");
    eprintln!("alarm after {alarm} tuesday rows");
    assert!(alarm <= 60, "alarm after {alarm} tuesday rows");
}

#[test]
fn corrupted_or_foreign_packages_are_refused() {
    let outcome = trained();
    let (package, weights) = ModelPackage::new(
        outcome.model.clone(),
        classes(),
        Preprocess::default(),
        PackageInfo::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().display().to_string();
    save_parts(&uri, &package.metadata, weights.clone()).unwrap();
    assert!(load_parts(&uri).is_ok());

    // One flipped byte in the weights.
    let object = dir.path().join(&package.metadata.weights.object);
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&object, &bytes).unwrap();
    let err = load_parts(&uri).unwrap_err().to_string();
    assert!(
        err.contains("corrupted") && err.contains(&package.metadata.weights.sha256),
        "{err}"
    );

    // A package from a newer format version.
    std::fs::write(&object, &weights).unwrap();
    let meta_path = dir.path().join("metadata.json");
    let text = std::fs::read_to_string(&meta_path)
        .unwrap()
        .replace("\"format_version\": 1", "\"format_version\": 99");
    std::fs::write(&meta_path, text).unwrap();
    let err = load_parts(&uri).unwrap_err().to_string();
    assert!(
        err.contains("format version 99") && err.contains("upgrade"),
        "{err}"
    );

    // No package at all; an unknown scheme.
    let err = load_parts(&dir.path().join("nothing").display().to_string()).unwrap_err();
    assert!(err.is_io_kind(std::io::ErrorKind::NotFound), "{err:?}");
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let err = load_parts(&dir.path().join("empty").display().to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("metadata.json not found"), "{err}");
    let err = load_parts("ftp://host/x").unwrap_err().to_string();
    assert!(err.contains("unsupported scheme"), "{err}");
}

#[test]
fn small_cnn_learns_from_scratch_with_fine_tuning() {
    let (train_m, test_m) = manifests();
    let keep = |m: &Manifest, n: usize| {
        Manifest::new(m.samples.iter().step_by(m.len() / n).cloned().collect())
    };
    let (train_m, test_m) = (keep(&train_m, 100), keep(&test_m, 50));
    let root = demo_data().join("monday");
    let config = TrainConfig {
        preprocess: Preprocess {
            size: 64,
            ..Preprocess::default()
        },
        epochs: 6,
        batch_size: 16,
        mode: TrainMode::FineTune,
        ..TrainConfig::default()
    };
    let device = ComputeBackend::Flex.device();
    let run = || {
        device.seed(1);
        train(
            Backbone::init(BackboneKind::SmallCnn, &device),
            &classes(),
            &ImageSet {
                root: &root,
                manifest: &train_m,
            },
            &ImageSet {
                root: &root,
                manifest: &test_m,
            },
            &config,
            &mlops_core::Control::new(),
        )
        .unwrap()
    };
    let outcome = run();
    let h = &outcome.history;
    assert!(
        h.last().unwrap().train_loss < h[0].train_loss * 0.9,
        "{h:?}"
    );
    assert!(
        outcome.test.accuracy > 0.4,
        "from-scratch test accuracy {} (chance is 0.2)",
        outcome.test.accuracy
    );
}

#[test]
fn bad_training_inputs_are_named() {
    let (train_m, _) = manifests();
    let root = demo_data().join("monday");
    let mut bad = train_m.clone();
    bad.samples.truncate(20);
    bad.samples
        .push(mlops_core::dataset::Sample::new("wood/missing.png", 4));
    let mut wrong = bad.clone();
    wrong.samples.push(mlops_core::dataset::Sample::new(
        "wood/wood_train_000.png",
        9,
    ));
    let device = Device::flex();
    let config = TrainConfig {
        epochs: 1,
        preprocess: Preprocess {
            size: 64,
            ..Preprocess::default()
        },
        ..TrainConfig::default()
    };
    let err = train(
        Backbone::init(BackboneKind::SmallCnn, &device),
        &classes(),
        &ImageSet {
            root: &root,
            manifest: &wrong,
        },
        &ImageSet {
            root: &root,
            manifest: &bad,
        },
        &config,
        &mlops_core::Control::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("class id 9") && err.contains("5 classes"),
        "{err}"
    );
    let outcome = train(
        Backbone::init(BackboneKind::SmallCnn, &device),
        &classes(),
        &ImageSet {
            root: &root,
            manifest: &bad,
        },
        &ImageSet {
            root: &root,
            manifest: &bad,
        },
        &config,
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert_eq!(outcome.skipped.len(), 2, "{:?}", outcome.skipped);
    assert!(
        outcome.skipped[0].reason.contains("missing.png"),
        "{:?}",
        outcome.skipped
    );
    let zero = TrainConfig {
        epochs: 0,
        ..config
    };
    let err = train(
        Backbone::init(BackboneKind::SmallCnn, &device),
        &classes(),
        &ImageSet {
            root: &root,
            manifest: &bad,
        },
        &ImageSet {
            root: &root,
            manifest: &bad,
        },
        &zero,
        &mlops_core::Control::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`epochs`"), "{err}");
}

#[test]
fn hooks_report_every_epoch_and_a_cancel_stops_training() {
    use std::sync::{Arc, Mutex};
    let (train_m, test_m) = manifests();
    let (train_m, test_m) = (
        Manifest::new(train_m.samples.iter().step_by(10).cloned().collect()),
        Manifest::new(test_m.samples.iter().step_by(10).cloned().collect()),
    );
    let root = demo_data().join("monday");
    let config = TrainConfig {
        preprocess: Preprocess {
            size: 32,
            ..Preprocess::default()
        },
        epochs: 3,
        batch_size: 16,
        mode: TrainMode::FineTune,
        ..TrainConfig::default()
    };
    let device = ComputeBackend::Flex.device();
    let sets = (
        ImageSet {
            root: &root,
            manifest: &train_m,
        },
        ImageSet {
            root: &root,
            manifest: &test_m,
        },
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let reporting =
        mlops_core::Control::new().with_progress(move |p: &mlops_core::Progress<'_>| {
            if let Some(m) = p.detail::<mlops_core::train::EpochMetrics>() {
                assert_eq!(p.stage, "epochs");
                assert_eq!(p.done, m.epoch as u64);
                sink.lock().unwrap().push(m.clone());
            }
        });
    let outcome = train(
        Backbone::init(BackboneKind::SmallCnn, &device),
        &classes(),
        &sets.0,
        &sets.1,
        &config,
        &reporting,
    )
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, outcome.history);
    assert_eq!(seen.len(), 3);

    let cancel = mlops_core::Control::new();
    cancel.cancel();
    for mode in [TrainMode::FineTune, TrainMode::FrozenBackbone] {
        let err = train(
            Backbone::init(BackboneKind::SmallCnn, &device),
            &classes(),
            &sets.0,
            &sets.1,
            &TrainConfig {
                mode,
                ..config.clone()
            },
            &cancel,
        )
        .unwrap_err();
        assert!(matches!(err, mlops_core::Error::Cancelled { .. }), "{err}");
    }
}
