//! Embeddings: one L2-normalised 1280-d row per readable image, cached, bad images reported.

#![allow(clippy::unwrap_used)]

mod common;

use burn::prelude::*;
use common::{demo_data, wheel};
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::embed::{BackboneEmbedder, Embedder, embed_manifest};
use mlops_core::model::Backbone;
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::vision::Preprocess;

#[test]
fn manifest_embeddings_are_unit_rows_cached_and_skip_bad_images() {
    let device = Device::flex();
    let backbone = Backbone::EfficientNetLite0(
        load_lite0(&wheel(LITE0_WHEEL_PREFIX), false, &device).unwrap(),
    );
    let cache = tempfile::tempdir().unwrap();
    let embedder = BackboneEmbedder::new(
        &backbone,
        Preprocess {
            size: 128,
            ..Preprocess::default()
        },
        &device,
        Some(cache.path().to_path_buf()),
    )
    .unwrap();
    assert_eq!(embedder.dim(), 1280);
    let all = Manifest::read(&demo_data().join("monday_test.jsonl")).unwrap();
    let mut samples: Vec<Sample> = all.samples.iter().step_by(40).cloned().collect();
    samples.insert(2, Sample::new("wood/nope.png", 4));
    let manifest = Manifest::new(samples);
    let root = demo_data().join("monday");
    let (e, rows, skipped) = embed_manifest(&embedder, &root, &manifest).unwrap();
    assert_eq!(e.len(), manifest.len() - 1);
    assert_eq!(rows, vec![0, 1, 3, 4, 5]);
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].reason.contains("nope.png"));
    for i in 0..e.len() {
        let norm: f32 = e.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "row {i} norm {norm}");
    }
    // Different classes embed differently; a second call reads the cache and agrees.
    assert_ne!(e.row(0), e.row(4));
    let cached_files = walkdir::WalkDir::new(cache.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|f| f.file_type().is_file())
        .count();
    assert_eq!(cached_files, 5);
    let (again, _, _) = embed_manifest(&embedder, &root, &manifest).unwrap();
    assert_eq!(again, e);
}
