//! Training and evaluation, one file per job:
//!
//! - [`features`]: frozen-backbone features of labelled sets, cached on disk;
//! - [`head`]: the linear head trained on those features (the default, as the original);
//! - [`tail`]: partial fine-tuning, the last units of the backbone and the head trained on
//!   activations cached at the cut;
//! - `finetune`: backbone and head trained together;
//! - [`evaluate`]: loss, accuracy, confusion and per-class accuracy.
//!
//! Frozen-backbone training (the default) computes every image's backbone features once and
//! trains only the linear head on them. The original recomputed the frozen backbone for every
//! image in every epoch.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::backend::ComputeBackend;
use crate::control::Control;
use crate::dataset::{ClassMap, Manifest};
use crate::drift::{MonitorCalibration, MonitorConfig, ReferenceSample};
use crate::error::{Error, Result};
use crate::infer::{FeatureEngine, FeatureExtractor};
use crate::infer::{LinearHead, head_probabilities};
use crate::model::{Backbone, Classifier, TAIL_UNITS, activation_shape, seeded_linear};
use crate::vision::Preprocess;

mod evaluate;
pub mod fast;
pub(crate) mod features;
mod finetune;
mod head;
pub mod tail;

pub use evaluate::{Evaluation, evaluate_head, evaluate_logits, probabilities, score};
pub use features::{backbone_features, extractor_features, extractor_set_features, set_features};
pub use head::{epoch_order, train_head};

use fast::{ActivationPrecision, FastNet, RowStore, Rows, train_fast};
use finetune::{LoadedImages, fine_tune, load_images};

/// Which parameters are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainMode {
    /// Backbone frozen, features computed once, head trained on them (the original's setup).
    #[default]
    FrozenBackbone,
    /// The last [`TrainConfig::tail_blocks`] units of the backbone (BatchNorm in training
    /// mode) and the head trained on activations computed once at the cut
    /// (EfficientNet-Lite0 only).
    PartialFineTune,
    /// Backbone and head trained together.
    FineTune,
}

crate::names::named_enum!(TrainMode, "mode", {
    FrozenBackbone => "frozen_backbone",
    PartialFineTune => "partial_fine_tune",
    FineTune => "fine_tune",
});

/// Training settings. Defaults follow the original: batch 64, 15 epochs, Adam with learning
/// rate 1e-3 multiplied by 0.95 after every epoch, seed 2022.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Image preprocessing.
    pub preprocess: Preprocess,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Number of epochs.
    pub epochs: usize,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// Learning-rate factor applied after each epoch.
    pub lr_decay: f64,
    /// Seed of the head's initialisation and of the batch order.
    pub seed: u64,
    /// Which parameters are trained.
    pub mode: TrainMode,
    /// The backend computed on (training, and backbone features where the engine is Burn).
    pub backend: ComputeBackend,
    /// What computes frozen-backbone features: the fast inference path (default) or Burn.
    pub feature_engine: FeatureEngine,
    /// Folder for cached backbone features (frozen mode); `None` keeps them in memory only.
    /// A local setting: not stored in packages or results.
    #[serde(skip)]
    pub feature_cache: Option<PathBuf>,
    /// Rows kept (seeded subsample) as the model's drift reference: their backbone features
    /// and softmax outputs, stored in the package (frozen mode; 0 keeps none).
    pub reference_rows: usize,
    /// Which rows the drift reference comes from: the test set (default: rows the head was
    /// not fitted on, like live rows) or the training set.
    pub reference_source: ReferenceSource,
    /// Units trained in [`TrainMode::PartialFineTune`], counted from the end of
    /// EfficientNet-Lite0: 1 = the head convolution (default), 2 = also the last block, ...,
    /// 17 = everything after the stem.
    pub tail_blocks: usize,
    /// How partial fine-tuning on the fast path keeps the activations at the cut: f16 (the
    /// default: half the bytes) or f32.
    pub activation_precision: ActivationPrecision,
    /// Bytes of activations at the cut partial fine-tuning keeps in memory per set; beyond
    /// them the rows go to an anonymous temporary file (in the feature cache folder, or the
    /// system's temporary folder) and are read back batch by batch. Default 4 GiB.
    pub activation_memory: u64,
}

/// Which rows a model's drift reference sample comes from.
///
/// The test set is the default: softmax outputs on the rows a head was fitted on are more
/// confident than on new rows, and a training split can differ from later data in ways that
/// do not matter (the demo cuts training and test patches from different parts of each
/// photo; against a training-row reference, held-out monday windows of 50 rows alarm in
/// about a third of checks, see docs/drift.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferenceSource {
    /// The test set (the training set when the test set is empty).
    Test,
    /// The training set.
    Train,
}

crate::names::named_enum!(ReferenceSource, "reference_source", {
    Test => "test",
    Train => "train",
});

impl ReferenceSource {
    /// The rows the reference comes from: `test` for [`ReferenceSource::Test`] unless it is
    /// empty, `train` otherwise.
    fn choose<'a, T>(self, test: &'a T, train: &'a T, test_is_empty: bool) -> &'a T {
        match self {
            ReferenceSource::Test if !test_is_empty => test,
            _ => train,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            preprocess: Preprocess::default(),
            batch_size: 64,
            epochs: 15,
            learning_rate: 1e-3,
            lr_decay: 0.95,
            seed: 2022,
            mode: TrainMode::FrozenBackbone,
            backend: ComputeBackend::Flex,
            feature_engine: FeatureEngine::Fast,
            feature_cache: None,
            reference_rows: 1000,
            reference_source: ReferenceSource::Test,
            tail_blocks: 1,
            activation_precision: ActivationPrecision::F16,
            activation_memory: 4 << 30,
        }
    }
}

impl TrainConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", "must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::invalid("learning_rate", "must be a positive number"));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(Error::invalid("lr_decay", "must be in (0, 1]"));
        }
        if self.preprocess.size < 32 {
            return Err(Error::invalid("size", "must be at least 32 pixels"));
        }
        if self.mode == TrainMode::PartialFineTune && !(1..=TAIL_UNITS).contains(&self.tail_blocks)
        {
            return Err(Error::invalid(
                "tail_blocks",
                format!(
                    "must be in 1..={TAIL_UNITS} for partial fine-tuning, got {}",
                    self.tail_blocks
                ),
            ));
        }
        Ok(())
    }
}

/// A labelled image set: a manifest and the folder its paths are relative to.
#[derive(Debug, Clone)]
pub struct ImageSet<'a> {
    /// Folder the manifest's `image_path`s are relative to.
    pub root: &'a Path,
    /// The samples.
    pub manifest: &'a Manifest,
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub learning_rate: f64,
    /// Mean cross-entropy on the training set after the epoch.
    #[serde(with = "crate::json_float")]
    pub train_loss: f64,
    /// Accuracy on the training set after the epoch.
    #[serde(with = "crate::json_float")]
    pub train_accuracy: f64,
    /// Mean cross-entropy on the test set after the epoch.
    #[serde(with = "crate::json_float")]
    pub test_loss: f64,
    /// Accuracy on the test set after the epoch.
    #[serde(with = "crate::json_float")]
    pub test_accuracy: f64,
    /// Wall time of the epoch in seconds (training and both evaluations).
    pub seconds: f64,
}

impl EpochMetrics {
    /// The metrics of 0-based `epoch` from its two evaluations, timed from `started`.
    pub(crate) fn new(
        epoch: usize,
        learning_rate: f64,
        train: &Evaluation,
        test: &Evaluation,
        started: Instant,
    ) -> Self {
        EpochMetrics {
            epoch: epoch + 1,
            learning_rate,
            train_loss: train.loss,
            train_accuracy: train.accuracy,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Tells `control` an epoch's metrics (`epochs`, with them) and appends them to `history`.
pub(crate) fn record_epoch(
    history: &mut Vec<EpochMetrics>,
    metrics: EpochMetrics,
    epochs: usize,
    control: &Control,
) {
    control.report(
        crate::control::Progress::items("epochs", metrics.epoch as u64, Some(epochs as u64))
            .with_detail(&metrics),
    );
    history.push(metrics);
}

/// An image that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedImage {
    /// The manifest's `image_path`.
    pub image_path: String,
    /// What went wrong.
    pub reason: String,
}

/// What training produced.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The trained model (inference mode).
    pub model: Classifier,
    /// Metrics per epoch.
    pub history: Vec<EpochMetrics>,
    /// Final evaluation on the test set.
    pub test: Evaluation,
    /// Images that could not be read or decoded (left out of training or evaluation).
    pub skipped: Vec<SkippedImage>,
    /// Seconds spent computing backbone features (frozen mode; 0 when all were cached).
    pub feature_seconds: f64,
    /// Seconds spent in the epochs.
    pub train_seconds: f64,
    /// The drift reference: a seeded subsample of the training rows' features and softmax
    /// outputs ([`TrainConfig::reference_rows`]; frozen mode only, `None` after fine-tuning).
    pub reference: Option<ReferenceSample>,
}

/// The drift reference of a model: a seeded subsample of `features` (test, training or,
/// after an adaptation, held-out rows) with the head's softmax outputs and the rows' true
/// classes, and the drift monitor's calibration for its default settings.
pub(crate) fn reference_sample(
    model: &Classifier,
    features: &[f32],
    targets: &[u32],
    classes: usize,
    config: &TrainConfig,
) -> Result<Option<ReferenceSample>> {
    if config.reference_rows == 0 {
        return Ok(None);
    }
    let head = LinearHead::new(&model.head)?;
    let dim = head.inputs();
    let probabilities = head_probabilities(&head, features);
    let sample = ReferenceSample::subsample(
        features,
        &probabilities,
        Some(targets),
        dim,
        classes,
        config.reference_rows,
        config.seed,
    )?;
    // A reference too small to calibrate (fewer than 2 rows, a single class) is still kept:
    // a stream then fits what it can at start and says why not.
    match MonitorCalibration::fit(&sample, &MonitorConfig::default()) {
        Ok(calibration) => sample.with_calibration(calibration).map(Some),
        Err(e) => {
            log::debug!("the drift reference is stored without a monitor calibration: {e}");
            Ok(Some(sample))
        }
    }
}

/// An error naming `name` when a sample's class id is not one of `classes`.
pub(crate) fn check_targets(
    name: &'static str,
    manifest: &Manifest,
    classes: &ClassMap,
) -> Result<()> {
    for (i, s) in manifest.samples.iter().enumerate() {
        if s.target as usize >= classes.len() {
            return Err(Error::invalid(
                name,
                format!(
                    "sample {} ({}) has class id {} but there are {} classes",
                    i + 1,
                    s.image_path,
                    s.target,
                    classes.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Trains a classifier on `train`, evaluating on `test` after every epoch.
///
/// `backbone` is the starting backbone (for EfficientNet-Lite0 normally with ImageNet weights,
/// see [`crate::model::weights::load_lite0`]); it must live on `config.backend`'s device.
pub fn train(
    backbone: Backbone,
    classes: &ClassMap,
    train_set: &ImageSet<'_>,
    test_set: &ImageSet<'_>,
    config: &TrainConfig,
    control: &Control,
) -> Result<TrainOutcome> {
    config.validate()?;
    check_targets("target", train_set.manifest, classes)?;
    check_targets("target", test_set.manifest, classes)?;
    let device = config.backend.device();
    let no_training_image = || Error::invalid("train", "no readable training image");
    match config.mode {
        TrainMode::FrozenBackbone => {
            let started = Instant::now();
            let extractor =
                FeatureExtractor::with_engine(&backbone, &device, config.feature_engine)?;
            let cache = config.feature_cache.as_deref();
            let features = |set: &ImageSet<'_>| {
                extractor_set_features(&extractor, set, &config.preprocess, cache, control)
            };
            let (train_features, train_targets, mut skipped) = features(train_set)?;
            if train_targets.is_empty() {
                return Err(no_training_image());
            }
            let (test_features, test_targets, test_skipped) = features(test_set)?;
            skipped.extend(test_skipped);
            let feature_seconds = started.elapsed().as_secs_f64();
            let classifier = Classifier::new(backbone, classes.len(), config.seed, &device);
            let started = Instant::now();
            let (head, history) = train_head(
                classifier.head,
                (&train_features, &train_targets),
                (&test_features, &test_targets),
                classes.len(),
                config,
                control,
            )?;
            let train_seconds = started.elapsed().as_secs_f64();
            let model = Classifier {
                backbone: classifier.backbone,
                head,
            };
            let test = evaluate_head(
                &model.head,
                &test_features,
                &test_targets,
                classes.len(),
                &device,
            )?;
            let source = config.reference_source.choose(
                &test_features,
                &train_features,
                test_features.is_empty(),
            );
            let source_targets = config.reference_source.choose(
                &test_targets,
                &train_targets,
                test_features.is_empty(),
            );
            let reference =
                reference_sample(&model, source, source_targets, classes.len(), config)?;
            Ok(TrainOutcome {
                model,
                history,
                test,
                skipped,
                feature_seconds,
                train_seconds,
                reference,
            })
        }
        TrainMode::PartialFineTune => {
            partial_fine_tune(backbone, classes, train_set, test_set, config, control)
        }
        TrainMode::FineTune => {
            let (train_images, mut skipped) = load_images(train_set, &config.preprocess);
            let (test_images, test_skipped) = load_images(test_set, &config.preprocess);
            skipped.extend(test_skipped);
            if train_images.is_empty() {
                return Err(no_training_image());
            }
            if let (FeatureEngine::Fast, Backbone::EfficientNetLite0(_)) =
                (config.feature_engine, &backbone)
            {
                return fast_fine_tune(
                    backbone,
                    classes,
                    (&train_images, &test_images),
                    skipped,
                    config,
                    control,
                );
            }
            let classifier = Classifier::new(backbone, classes.len(), config.seed, &device);
            let started = Instant::now();
            let (model, history, test) = fine_tune(
                classifier,
                &train_images,
                &test_images,
                classes.len(),
                config,
                control,
            )?;
            Ok(TrainOutcome {
                model,
                history,
                test,
                skipped,
                feature_seconds: 0.0,
                train_seconds: started.elapsed().as_secs_f64(),
                reference: None,
            })
        }
    }
}

/// Activation rows of a set at `extractor`'s cut, with targets and unreadable images.
pub(crate) struct ActivationRows {
    /// NHWC rows, one per readable image.
    pub(crate) values: Vec<f32>,
    /// One class id per row.
    pub(crate) targets: Vec<u32>,
    /// `[h, w, c]` of a row.
    pub(crate) shape: [usize; 3],
}

impl ActivationRows {
    /// The rows as [`tail::Activations`].
    pub(crate) fn view(&self) -> tail::Activations<'_> {
        tail::Activations {
            values: &self.values,
            shape: self.shape,
        }
    }
}

/// The extractor of partial fine-tuning's input for `config.tail_blocks` units.
pub(crate) fn tail_extractor(
    backbone: &Backbone,
    config: &TrainConfig,
) -> Result<FeatureExtractor> {
    FeatureExtractor::with_cut(
        backbone,
        &config.backend.device(),
        config.feature_engine,
        config.tail_blocks,
    )
}

/// Activations of `set` at the cut of `config.tail_blocks` (cached like features).
pub(crate) fn set_activations(
    extractor: &FeatureExtractor,
    set: &ImageSet<'_>,
    config: &TrainConfig,
    control: &Control,
) -> Result<(ActivationRows, Vec<SkippedImage>)> {
    let size = config.preprocess.size as usize;
    let (values, targets, skipped) = extractor_set_features(
        extractor,
        set,
        &config.preprocess,
        config.feature_cache.as_deref(),
        control,
    )?;
    let shape = activation_shape(size, size, TAIL_UNITS - config.tail_blocks);
    Ok((
        ActivationRows {
            values,
            targets,
            shape,
        },
        skipped,
    ))
}

/// [`TrainMode::PartialFineTune`]: activations at the cut computed once (cached), the tail and
/// a fresh head trained on them, the tail spliced back into the backbone.
fn partial_fine_tune(
    backbone: Backbone,
    classes: &ClassMap,
    train_set: &ImageSet<'_>,
    test_set: &ImageSet<'_>,
    config: &TrainConfig,
    control: &Control,
) -> Result<TrainOutcome> {
    if config.feature_engine == FeatureEngine::Fast {
        return fast_partial_fine_tune(backbone, classes, (train_set, test_set), config, control);
    }
    let started = Instant::now();
    let extractor = tail_extractor(&backbone, config)?;
    let Backbone::EfficientNetLite0(net) = backbone else {
        return Err(Error::invalid(
            "mode",
            "partial fine-tuning needs EfficientNet-Lite0",
        ));
    };
    let (train_rows, mut skipped) = set_activations(&extractor, train_set, config, control)?;
    if train_rows.targets.is_empty() {
        return Err(Error::invalid("train", "no readable training image"));
    }
    let (test_rows, test_skipped) = set_activations(&extractor, test_set, config, control)?;
    skipped.extend(test_skipped);
    drop(extractor);
    let feature_seconds = started.elapsed().as_secs_f64();
    let device = config.backend.device();
    let n_classes = classes.len();
    let head = seeded_linear(
        crate::model::efficientnet::FEATURES,
        n_classes,
        config.seed,
        &device,
    );
    let started = Instant::now();
    let (tail, history) = tail::train_tail(
        tail::Tail::of(&net, head, config.tail_blocks)?,
        (train_rows.view(), &train_rows.targets),
        (test_rows.view(), &test_rows.targets),
        n_classes,
        config,
        control,
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test = tail.evaluate(test_rows.view(), &test_rows.targets, n_classes, &device)?;
    let source =
        config
            .reference_source
            .choose(&test_rows, &train_rows, test_rows.targets.is_empty());
    let reference_features = tail.features_of(source.view(), &device)?;
    let (net, head) = tail.splice(net);
    let model = Classifier {
        backbone: Backbone::EfficientNetLite0(net),
        head,
    };
    let reference = reference_sample(
        &model,
        &reference_features,
        &source.targets,
        n_classes,
        config,
    )?;
    Ok(TrainOutcome {
        model,
        history,
        test,
        skipped,
        feature_seconds,
        train_seconds,
        reference,
    })
}

/// What [`finish_fast`] reports besides training.
struct FinishFast {
    skipped: Vec<SkippedImage>,
    feature_seconds: f64,
    n_classes: usize,
}

/// Trains `fast` (copied from `net` and `head`) on the fast path, writes the trained values
/// back into them, and evaluates, with the drift reference from the test rows (or the
/// training rows, [`TrainConfig::reference_source`]) as the trained network sees them.
fn finish_fast(
    (fast, mut net, mut head): (FastNet, crate::model::EfficientNetLite0, burn::nn::Linear),
    train: (&dyn Rows, &[u32]),
    test: (&dyn Rows, &[u32]),
    report: FinishFast,
    config: &TrainConfig,
    control: &Control,
) -> Result<TrainOutcome> {
    let started = Instant::now();
    let (fast, history) = train_fast(fast, train, test, config, control)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let test_eval = fast.evaluate(test.0, test.1)?;
    let source = config
        .reference_source
        .choose(&test, &train, test.1.is_empty());
    let reference_features = fast.features_of(source.0)?;
    fast.write_into(&mut net, &mut head);
    let model = Classifier {
        backbone: Backbone::EfficientNetLite0(net),
        head,
    };
    let reference = reference_sample(
        &model,
        &reference_features,
        source.1,
        report.n_classes,
        config,
    )?;
    Ok(TrainOutcome {
        model,
        history,
        test: test_eval,
        skipped: report.skipped,
        feature_seconds: report.feature_seconds,
        train_seconds,
        reference,
    })
}

/// [`TrainMode::FineTune`] of EfficientNet-Lite0 on the fast path: the stem, every block, the
/// head convolution and a fresh linear head trained on preprocessed images.
fn fast_fine_tune(
    backbone: Backbone,
    classes: &ClassMap,
    (train_images, test_images): (&[finetune::Loaded], &[finetune::Loaded]),
    skipped: Vec<SkippedImage>,
    config: &TrainConfig,
    control: &Control,
) -> Result<TrainOutcome> {
    let Backbone::EfficientNetLite0(net) = backbone else {
        return Err(Error::invalid(
            "mode",
            "fast fine-tuning needs EfficientNet-Lite0",
        ));
    };
    let device = config.backend.device();
    let n_classes = classes.len();
    let head = seeded_linear(
        crate::model::efficientnet::FEATURES,
        n_classes,
        config.seed,
        &device,
    );
    let size = config.preprocess.size as usize;
    let fast = FastNet::of(&net, &head, TAIL_UNITS, true, [3, size, size])?;
    let train_targets: Vec<u32> = train_images.iter().map(|l| l.target).collect();
    let test_targets: Vec<u32> = test_images.iter().map(|l| l.target).collect();
    finish_fast(
        (fast, net, head),
        (&LoadedImages(train_images), &train_targets),
        (&LoadedImages(test_images), &test_targets),
        FinishFast {
            skipped,
            feature_seconds: 0.0,
            n_classes,
        },
        config,
        control,
    )
}

/// Activations of `set` at the cut of `config.tail_blocks` (cached like features) in a
/// [`RowStore`]: at [`TrainConfig::activation_precision`], in memory up to
/// [`TrainConfig::activation_memory`] bytes, in a temporary file beyond.
fn stored_activations(
    extractor: &FeatureExtractor,
    set: &ImageSet<'_>,
    config: &TrainConfig,
    control: &Control,
) -> Result<(RowStore, Vec<u32>, Vec<SkippedImage>)> {
    let size = config.preprocess.size as usize;
    let shape = activation_shape(size, size, TAIL_UNITS - config.tail_blocks);
    let spill = config
        .feature_cache
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let mut store = RowStore::new(
        shape.iter().product(),
        config.activation_precision,
        config.activation_memory,
        &spill,
    );
    let (targets, skipped) = features::extractor_set_rows(
        extractor,
        set,
        &config.preprocess,
        config.feature_cache.as_deref(),
        control,
        &mut |row| store.push(row),
    )?;
    Ok((store, targets, skipped))
}

/// [`TrainMode::PartialFineTune`] on the fast path: activations at the cut computed once
/// (cached on disk like features, stored compactly, see [`stored_activations`]), the tail and
/// a fresh head trained on them, the trained values written back into the backbone.
fn fast_partial_fine_tune(
    backbone: Backbone,
    classes: &ClassMap,
    (train_set, test_set): (&ImageSet<'_>, &ImageSet<'_>),
    config: &TrainConfig,
    control: &Control,
) -> Result<TrainOutcome> {
    let started = Instant::now();
    let extractor = tail_extractor(&backbone, config)?;
    let Backbone::EfficientNetLite0(net) = backbone else {
        return Err(Error::invalid(
            "mode",
            "partial fine-tuning needs EfficientNet-Lite0",
        ));
    };
    let (train_rows, train_targets, mut skipped) =
        stored_activations(&extractor, train_set, config, control)?;
    if train_targets.is_empty() {
        return Err(Error::invalid("train", "no readable training image"));
    }
    let (test_rows, test_targets, test_skipped) =
        stored_activations(&extractor, test_set, config, control)?;
    skipped.extend(test_skipped);
    drop(extractor);
    let feature_seconds = started.elapsed().as_secs_f64();
    let n_classes = classes.len();
    let head = seeded_linear(
        crate::model::efficientnet::FEATURES,
        n_classes,
        config.seed,
        &config.backend.device(),
    );
    let size = config.preprocess.size as usize;
    let shape = activation_shape(size, size, TAIL_UNITS - config.tail_blocks);
    let fast = FastNet::of(&net, &head, config.tail_blocks, false, shape)?;
    finish_fast(
        (fast, net, head),
        (&train_rows, &train_targets),
        (&test_rows, &test_targets),
        FinishFast {
            skipped,
            feature_seconds,
            n_classes,
        },
        config,
        control,
    )
}
