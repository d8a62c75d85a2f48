//! Model packages as an embedding application uses them: metrics that are NaN survive a round
//! trip, reading never writes, and loading and saving work from async code (tokio) without
//! panicking.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::ErrorKind;

use common::{demo_data, small_cnn_package};
use mlops_core::artifact::{ModelPackage, PackageInfo, list_packages, list_packages_async};
use mlops_core::model::{Backbone, BackboneKind};
use mlops_core::train::{ImageSet, TrainConfig, TrainMode, train};
use mlops_core::vision::Preprocess;
use mlops_core::{ClassMap, ComputeBackend, Control, Error, Manifest};

fn flex() -> burn::prelude::Device {
    ComputeBackend::Flex.device()
}

/// Trains a small CNN whose test set lacks a class: its per-class accuracy is NaN, and the
/// package must still be readable, NaN included.
#[test]
fn a_model_whose_test_set_lacks_a_class_can_be_saved_and_loaded() {
    let root = demo_data().join("monday");
    let all = Manifest::read(&demo_data().join("monday_test.jsonl")).unwrap();
    let train_m = Manifest::new(all.samples.iter().step_by(8).cloned().collect());
    // No `wood` (class 4) in the test set.
    let test_m = Manifest::new(
        all.samples
            .iter()
            .filter(|s| s.target != 4)
            .step_by(8)
            .cloned()
            .collect(),
    );
    let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"]).unwrap();
    let config = TrainConfig {
        preprocess: Preprocess {
            size: 32,
            ..Preprocess::default()
        },
        epochs: 1,
        batch_size: 16,
        mode: TrainMode::FineTune,
        feature_cache: Some("/must/not/be/stored".into()),
        ..TrainConfig::default()
    };
    let outcome = train(
        Backbone::init(BackboneKind::SmallCnn, &flex()),
        &classes,
        &ImageSet {
            root: &root,
            manifest: &train_m,
        },
        &ImageSet {
            root: &root,
            manifest: &test_m,
        },
        &config,
        &Control::new(),
    )
    .unwrap();
    assert!(outcome.test.per_class_accuracy[4].is_nan());
    let (package, _) = ModelPackage::new(
        outcome.model,
        classes,
        config.preprocess,
        PackageInfo {
            train_config: Some(config.clone()),
            history: outcome.history.clone(),
            test: Some(outcome.test.clone()),
            manifests_sha256: vec![],
            reference: None,
            lineage: None,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("model").display().to_string();
    package.save(&uri).unwrap();
    let metadata = std::fs::read_to_string(dir.path().join("model/metadata.json")).unwrap();
    assert!(
        !metadata.contains("must/not/be/stored"),
        "a local cache folder leaked into the package"
    );
    let loaded = ModelPackage::load(&uri, &flex()).unwrap();
    let test = loaded.metadata.test.unwrap();
    assert!(test.per_class_accuracy[4].is_nan());
    assert_eq!(
        test.per_class_accuracy[..4],
        outcome.test.per_class_accuracy[..4]
    );
    assert_eq!(loaded.metadata.history.len(), 1);
    assert_eq!(loaded.metadata.train_config.unwrap().feature_cache, None);
}

#[test]
fn loading_or_listing_a_missing_folder_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/model");
    let uri = missing.display().to_string();
    let err = ModelPackage::load(&uri, &flex()).unwrap_err();
    assert!(err.is_io_kind(ErrorKind::NotFound), "{err:?}");
    assert!(err.to_string().contains("no/such/model"), "{err}");
    let err = list_packages(&uri).unwrap_err();
    assert!(err.is_io_kind(ErrorKind::NotFound), "{err:?}");
    let err = list_packages(&format!("file://{uri}")).unwrap_err();
    assert!(err.is_io_kind(ErrorKind::NotFound), "{err:?}");
    assert!(!dir.path().join("no").exists(), "reading created a folder");

    // A folder that exists but holds no package: a package error, still nothing written.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = ModelPackage::load(&empty.display().to_string(), &flex()).unwrap_err();
    assert!(
        matches!(&err, Error::Package { reason, .. } if reason.contains("metadata.json not found")),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn blocking_load_and_save_work_inside_a_multi_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("m").display().to_string();
    let package = small_cnn_package(5);
    let sha = package.metadata.weights.sha256.clone();
    let loaded_sha = runtime.block_on(async {
        // Blocking calls from async code, as a handler in an axum service would make them.
        package.save(&uri).unwrap();
        let loaded = ModelPackage::load(&uri, &flex()).unwrap();
        assert_eq!(
            list_packages(&dir.path().display().to_string()).unwrap(),
            std::slice::from_ref(&uri)
        );
        // And from a spawned task.
        let uri2 = uri.clone();
        let from_task = tokio::spawn(async move {
            ModelPackage::load(&uri2, &flex()).map(|p| p.metadata.weights.sha256)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(from_task, loaded.metadata.weights.sha256);
        loaded.metadata.weights.sha256
    });
    assert_eq!(loaded_sha, sha);
}

#[test]
fn async_load_and_save_work_on_any_runtime_and_blocking_fails_clearly_on_current_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("m").display().to_string();
    let package = small_cnn_package(6);
    runtime.block_on(async {
        package.save_async(&uri).await.unwrap();
        let loaded = ModelPackage::load_async(&uri, &flex()).await.unwrap();
        assert_eq!(loaded.metadata, package.metadata);
        let listed = list_packages_async(&dir.path().display().to_string())
            .await
            .unwrap();
        assert_eq!(listed, std::slice::from_ref(&uri));

        // A blocking call here would stall the only thread: a clear error, no panic.
        let err = ModelPackage::load(&uri, &flex()).unwrap_err();
        assert!(matches!(err, Error::BlockingInAsync { .. }), "{err:?}");
        assert!(err.to_string().contains("async"), "{err}");
        let err = package.save(&uri).unwrap_err();
        assert!(matches!(err, Error::BlockingInAsync { .. }), "{err:?}");
    });

    // The save future owns what it writes: it can be sent to another task.
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri2 = dir.path().join("m2").display().to_string();
    let future = package.save_async(&uri2);
    multi.block_on(async move { tokio::spawn(future).await.unwrap().unwrap() });
    assert!(dir.path().join("m2/metadata.json").exists());
}
