//! The fast inference path gives the Burn reference network's features: pooled features
//! within 1e-4 on real photos at 224 and 256 px (and odd sizes) and batches of 1, 7 and 32,
//! and the same ImageNet top-1; its identity keys the feature cache.

#![allow(clippy::unwrap_used)]

mod common;

use burn::prelude::*;
use common::{max_abs_diff, skimage_photo, wheel};
use image::DynamicImage;
use mlops_core::infer::{FeatureEngine, FeatureExtractor, Lite0Inference};
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::model::{Backbone, EfficientNetLite0};
use mlops_core::train::extractor_features;
use mlops_core::vision::Preprocess;

const PHOTOS: [&str; 8] = [
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
    "rocket.jpg",
    "camera.png",
    "brick.png",
    "gravel.png",
    "hubble_deep_field.jpg",
];

/// `n` real photos: the scikit-image photos, then crops of them (different content each).
fn photos(n: usize) -> Vec<DynamicImage> {
    let base: Vec<DynamicImage> = PHOTOS.iter().map(|p| skimage_photo(p)).collect();
    (0..n)
        .map(|i| {
            let photo = &base[i % base.len()];
            let round = (i / base.len()) as u32;
            if round == 0 {
                photo.clone()
            } else {
                let (w, h) = (photo.width(), photo.height());
                let side = w.min(h) * 3 / 5;
                photo.crop_imm(
                    (round * 37) % (w - side),
                    (round * 53) % (h - side),
                    side,
                    side,
                )
            }
        })
        .collect()
}

fn burn_features(net: &EfficientNetLite0, chw: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
    let x = Tensor::<4>::from_data(TensorData::new(chw.to_vec(), [n, 3, h, w]), &Device::flex());
    net.features(x).into_data().try_to_vec_as::<f32>().unwrap()
}

fn lite0(imagenet_head: bool) -> EfficientNetLite0 {
    load_lite0(&wheel(LITE0_WHEEL_PREFIX), imagenet_head, &Device::flex()).unwrap()
}

#[test]
fn pooled_features_match_burn_at_224_and_256_px_and_batches_1_7_32() {
    let net = lite0(false);
    let fast = Lite0Inference::new(&net).unwrap();
    let images = photos(32);
    for size in [224u32, 256] {
        let pre = Preprocess {
            size,
            ..Preprocess::default()
        };
        let chw: Vec<f32> = images.iter().flat_map(|i| pre.to_chw(i)).collect();
        let s = size as usize;
        let want = burn_features(&net, &chw, 32, s, s);
        for batch in [1, 7, 32] {
            let got = fast
                .features(&chw[..batch * 3 * s * s], batch, s, s)
                .unwrap();
            let diff = max_abs_diff(&got, &want[..batch * 1280]);
            assert!(
                diff <= 1e-4,
                "{size} px, batch {batch}: max abs diff {diff}"
            );
            // Features are not trivially small: the tolerance means something.
            let largest = got.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(largest > 0.5, "{size} px: largest feature {largest}");
        }
    }
}

#[test]
fn odd_and_non_square_sizes_pad_as_the_reference_does() {
    let net = lite0(false);
    let fast = Lite0Inference::new(&net).unwrap();
    let photo = skimage_photo("astronaut.png");
    for (h, w) in [(225usize, 225usize), (97, 131), (33, 40), (17, 17)] {
        let resized = photo.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
        let rgb = resized.to_rgb8();
        let plane = h * w;
        let mut chw = vec![0.0f32; 3 * plane];
        for (i, px) in rgb.pixels().enumerate() {
            for c in 0..3 {
                chw[c * plane + i] = f32::from(px.0[c]) / 127.5 - 1.0;
            }
        }
        let two: Vec<f32> = chw.iter().chain(chw.iter()).copied().collect();
        let want = burn_features(&net, &two, 2, h, w);
        let got = fast.features(&two, 2, h, w).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-4, "{h}x{w}: max abs diff {diff}");
    }
}

#[test]
fn imagenet_top1_is_unchanged_on_chelsea_and_coffee() {
    let net = lite0(true);
    let fast = Lite0Inference::new(&net).unwrap();
    for size in [224u32, 256] {
        let pre = Preprocess {
            size,
            ..Preprocess::default()
        };
        for (photo, class) in [("chelsea.png", 285), ("coffee.png", 967)] {
            let chw = pre.to_chw(&skimage_photo(photo));
            let s = size as usize;
            let features = fast.features(&chw, 1, s, s).unwrap();
            let logits = |f: Vec<f32>| -> Vec<f32> {
                let t = Tensor::<2>::from_data(TensorData::new(f, [1, 1280]), &Device::flex());
                net.imagenet_logits_of_features(t)
                    .unwrap()
                    .into_data()
                    .try_to_vec_as::<f32>()
                    .unwrap()
            };
            let argmax = |v: &[f32]| {
                v.iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap()
                    .0
            };
            let fast_logits = logits(features);
            let burn_logits = logits(burn_features(&net, &chw, 1, s, s));
            assert_eq!(argmax(&fast_logits), class, "{photo} at {size} px");
            assert_eq!(argmax(&burn_logits), class, "{photo} at {size} px (Burn)");
            assert!(max_abs_diff(&fast_logits, &burn_logits) <= 1e-3);
        }
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let fast = Lite0Inference::new(&lite0(false)).unwrap();
    assert!(fast.features(&[0.0; 10], 1, 4, 4).is_err());
    assert!(fast.features(&[], 0, 0, 4).is_err());
    assert_eq!(fast.features(&[], 0, 8, 8).unwrap(), Vec::<f32>::new());
    let extractor =
        FeatureExtractor::new(&Backbone::EfficientNetLite0(lite0(false)), &Device::flex()).unwrap();
    let e = extractor
        .features(&[&[0.0; 3 * 8 * 8], &[0.0; 5]], 8)
        .unwrap_err();
    assert!(e.to_string().contains("image 1"), "{e}");
}

fn cached_files(dir: &std::path::Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|f| f.file_type().is_file())
        .count()
}

#[test]
fn feature_cache_is_keyed_by_weights_engine_and_preprocessing() {
    let device = Device::flex();
    let pretrained = Backbone::EfficientNetLite0(lite0(false));
    device.seed(11);
    let random = Backbone::EfficientNetLite0(EfficientNetLite0::new(false, &device));
    let fast = FeatureExtractor::new(&pretrained, &device).unwrap();
    let burn = FeatureExtractor::with_engine(&pretrained, &device, FeatureEngine::Burn).unwrap();
    let other_weights = FeatureExtractor::new(&random, &device).unwrap();
    assert_eq!(fast.engine(), FeatureEngine::Fast);
    assert_eq!(burn.engine(), FeatureEngine::Burn);
    assert_eq!(fast.weights_sha256(), burn.weights_sha256());
    assert_ne!(fast.weights_sha256(), other_weights.weights_sha256());
    assert_ne!(fast.identity(), burn.identity());

    let pre = Preprocess {
        size: 64,
        ..Preprocess::default()
    };
    let images: Vec<(String, Vec<f32>)> = photos(3)
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("photo-{i}"), pre.to_chw(p)))
        .collect();
    let refs: Vec<(String, &[f32])> = images
        .iter()
        .map(|(k, v)| (k.clone(), v.as_slice()))
        .collect();
    let cache = tempfile::tempdir().unwrap();
    let run = |extractor: &FeatureExtractor, pre: &Preprocess| {
        extractor_features(
            extractor,
            &refs,
            pre,
            Some(cache.path()),
            &mlops_core::Control::new(),
        )
        .unwrap()
    };
    let first = run(&fast, &pre);
    assert_eq!(cached_files(cache.path()), 3);
    assert_eq!(run(&fast, &pre), first, "read back from the cache");
    assert_eq!(cached_files(cache.path()), 3);
    let reference = run(&burn, &pre);
    assert_eq!(
        cached_files(cache.path()),
        6,
        "another engine, other entries"
    );
    assert!(max_abs_diff(&reference, &first) <= 1e-4);
    let other = run(&other_weights, &pre);
    assert_eq!(
        cached_files(cache.path()),
        9,
        "other weights, other entries"
    );
    assert!(
        max_abs_diff(&other, &first) > 1e-2,
        "not served stale features"
    );
    let bigger = Preprocess { size: 72, ..pre };
    let images72: Vec<Vec<f32>> = photos(3).iter().map(|p| bigger.to_chw(p)).collect();
    let refs72: Vec<(String, &[f32])> = images
        .iter()
        .zip(&images72)
        .map(|((k, _), v)| (k.clone(), v.as_slice()))
        .collect();
    extractor_features(
        &fast,
        &refs72,
        &bigger,
        Some(cache.path()),
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert_eq!(
        cached_files(cache.path()),
        12,
        "other preprocessing, other entries"
    );
}

#[test]
fn predict_paths_in_small_chunks_keeps_order_errors_and_results() {
    let root = common::demo_data().join("monday");
    let manifest =
        mlops_core::dataset::Manifest::read(&common::demo_data().join("monday_test.jsonl"))
            .unwrap();
    let mut paths: Vec<std::path::PathBuf> = manifest
        .samples
        .iter()
        .step_by(17)
        .map(|s| root.join(&s.image_path))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"not an image").unwrap();
    paths.insert(1, dir.path().join("missing.png"));
    paths.insert(5, broken);
    paths.push(dir.path().join("missing-too.png"));
    let mut predictor = common::small_cnn_predictor(5);
    predictor.batch_size = 64;
    let whole = predictor.predict_paths(&paths).unwrap();
    for batch_size in [1, 2, 3] {
        predictor.batch_size = batch_size;
        let chunked = predictor.predict_paths(&paths).unwrap();
        assert_eq!(chunked.len(), paths.len());
        for (i, (a, b)) in chunked.iter().zip(&whole).enumerate() {
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "path {i}, batch {batch_size}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("path {i}, batch {batch_size}: {a:?} vs {b:?}"),
            }
        }
    }
    let failed: Vec<usize> = whole
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, vec![1, 5, paths.len() - 1]);
}

#[test]
fn predictor_on_the_fast_path_agrees_with_the_burn_reference() {
    use mlops_core::predict::Predictor;
    let device = Device::flex();
    let backbone = Backbone::EfficientNetLite0(lite0(false));
    let model = mlops_core::model::Classifier::new(backbone, 5, 9, &device);
    let classes =
        mlops_core::dataset::ClassMap::new(["background", "brick", "concrete", "ground", "wood"])
            .unwrap();
    let pre = Preprocess {
        size: 96,
        ..Preprocess::default()
    };
    let fast = Predictor::new(model.clone(), classes.clone(), pre, device.clone()).unwrap();
    let reference =
        Predictor::with_engine(model, classes, pre, device, FeatureEngine::Burn).unwrap();
    assert_eq!(fast.extractor().engine(), FeatureEngine::Fast);
    let images = photos(9);
    let a = fast.predict_images(&images).unwrap();
    let b = reference.predict_images(&images).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.class_id, y.class_id);
        assert!(max_abs_diff(&x.probabilities, &y.probabilities) < 1e-4);
    }
}

/// `MLOPS_SIMD=portable` forces the portable kernels (the test command runs this file once
/// more with it, so the parity tests above cover that path too); otherwise AVX2 + FMA where
/// the CPU has them.
#[test]
fn the_simd_switch_picks_the_kernels() {
    let forced = std::env::var("MLOPS_SIMD").is_ok_and(|v| v.eq_ignore_ascii_case("portable"));
    let expected = if forced {
        "portable"
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        "avx2+fma"
    } else {
        "portable"
    };
    assert_eq!(mlops_core::infer::instruction_set(), expected);
    let extractor =
        FeatureExtractor::new(&Backbone::EfficientNetLite0(lite0(false)), &Device::flex()).unwrap();
    assert!(
        extractor.identity().ends_with(&format!(";{expected}")),
        "{}",
        extractor.identity()
    );
}

/// SHA-256 of the fast path's pooled features (f32, little endian) of the first four photos at
/// 224 px, recorded per engine version and instruction set. Feature caches are keyed by
/// `ENGINE_VERSION`: a kernel change that moves any feature bit must raise it (and record the
/// new hashes here), or caches would serve features the current code does not compute.
const GOLDEN_FEATURES: &[(&str, &str, &str)] = &[
    (
        "lite0-fast-1",
        "avx2+fma",
        "4b2a156fa100b525614ca8e5ee750c952fa481188915471b5c8a7915cbc36167",
    ),
    (
        "lite0-fast-1",
        "portable",
        "a0d5691c6f83fd9c62068e2a0ee53def1ad86d18bab995025baa0b945b2f5185",
    ),
];

#[test]
fn the_engine_version_changes_whenever_the_features_do() {
    use mlops_core::infer::ENGINE_VERSION;
    let preprocess = Preprocess {
        size: 224,
        ..Preprocess::default()
    };
    let chw: Vec<Vec<f32>> = photos(4).iter().map(|p| preprocess.to_chw(p)).collect();
    let refs: Vec<&[f32]> = chw.iter().map(Vec::as_slice).collect();
    let extractor =
        FeatureExtractor::new(&Backbone::EfficientNetLite0(lite0(false)), &Device::flex()).unwrap();
    // The same bits on one thread and on three (rows split differently).
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| extractor.features(&refs, 224).unwrap())
    };
    let features = on(1);
    assert_eq!(features, on(3), "features depend on the thread count");
    let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    let hash = common::sha256(&bytes);
    let isa = mlops_core::infer::instruction_set();
    let recorded: Vec<_> = GOLDEN_FEATURES
        .iter()
        .filter(|(version, _, _)| *version == ENGINE_VERSION)
        .collect();
    assert!(
        !recorded.is_empty(),
        "no golden features for ENGINE_VERSION {ENGINE_VERSION}: record (\"{ENGINE_VERSION}\", \"{isa}\", \"{hash}\")"
    );
    let golden = recorded
        .iter()
        .find(|(_, set, _)| *set == isa)
        .unwrap_or_else(|| {
            panic!("no golden features for {ENGINE_VERSION} on {isa}: record (\"{ENGINE_VERSION}\", \"{isa}\", \"{hash}\")")
        });
    assert_eq!(
        golden.2, hash,
        "the fast path's features changed but ENGINE_VERSION ({ENGINE_VERSION}) did not: raise it and record the new hashes"
    );
}
