//! Model packages against a real S3-API server (started by `scripts/with-services.sh`, which
//! the test command runs): save, list, load, and a corrupted object detected.

#![allow(clippy::unwrap_used)]

use burn::prelude::*;
use mlops_core::artifact::{ModelPackage, PackageInfo, list_packages, load_parts};
use mlops_core::dataset::ClassMap;
use mlops_core::model::{Backbone, BackboneKind, Classifier};
use mlops_core::vision::Preprocess;

fn s3_base() -> String {
    std::env::var("MLOPS_TEST_S3_URI").unwrap_or_else(|_| {
        panic!("MLOPS_TEST_S3_URI is not set: run the tests through `make test` (scripts/with-services.sh starts the S3 server)")
    })
}

fn small_package() -> ModelPackage {
    let device = Device::flex();
    device.seed(3);
    let model = Classifier::new(
        Backbone::init(BackboneKind::SmallCnn, &device),
        3,
        3,
        &device,
    );
    let classes = ClassMap::new(["a", "b", "c"]).unwrap();
    ModelPackage::new(
        model,
        classes,
        Preprocess {
            size: 64,
            ..Preprocess::default()
        },
        PackageInfo::default(),
    )
    .unwrap()
    .0
}

#[test]
fn packages_round_trip_through_s3() {
    let base = format!("{}/round-trip-{}", s3_base(), std::process::id());
    let package = small_package();
    package.save(&format!("{base}/first")).unwrap();
    package.save(&format!("{base}/second")).unwrap();
    assert_eq!(
        list_packages(&base).unwrap(),
        vec![format!("{base}/first"), format!("{base}/second")]
    );
    let loaded = ModelPackage::load(&format!("{base}/first"), &Device::flex()).unwrap();
    assert_eq!(loaded.metadata, package.metadata);
    let x = Tensor::<4>::ones([2, 3, 64, 64], &Device::flex());
    let a: Vec<f32> = package
        .model
        .forward(x.clone())
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap();
    let b: Vec<f32> = loaded
        .model
        .forward(x)
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_corrupted_s3_object_is_detected() {
    let base = format!("{}/corrupt-{}", s3_base(), std::process::id());
    let package = small_package();
    // Write the metadata of this package next to other weights under the expected name.
    let wrong = vec![0u8; package.metadata.weights.bytes as usize];
    mlops_core::artifact::save_parts(&base, &package.metadata, wrong).unwrap();
    let err = load_parts(&base).unwrap_err().to_string();
    assert!(err.contains("corrupted"), "{err}");
    let err = load_parts(&format!("{}/nothing-here", s3_base()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("metadata.json not found"), "{err}");
}

#[test]
fn a_missing_bucket_is_a_clear_error() {
    let _server = s3_base(); // the request goes to the test server
    let err = load_parts("s3://no-such-bucket-mlops/x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-bucket-mlops")
            || err.contains("NoSuchBucket")
            || err.contains("not found"),
        "{err}"
    );
}
