//! Training and evaluation.
//!
//! Frozen-backbone training (the default, as the original) computes every image's backbone
//! features once, optionally caching them on disk keyed by the image's content hash and the
//! preprocessing, and trains only the linear head on them. The original recomputed the frozen
//! backbone for every image in every epoch. Full fine-tuning trains backbone and head together.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};

use burn::prelude::*;
use burn::tensor::activation::softmax;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{ClassMap, Manifest};
use crate::error::{Error, Result};
use crate::imageio::{DEFAULT_MAX_ALLOC, decode, write_atomic};
use crate::infer::{FeatureEngine, FeatureExtractor};
use crate::model::{Backbone, Classifier};
use crate::seed::sha256_hex;
use crate::vision::Preprocess;

/// The CPU backend to compute on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeBackend {
    /// Burn's `flex` backend (the default: measured faster here for both forward and backward).
    #[default]
    Flex,
    /// burn-ndarray (deprecated upstream; its convolution backward pass is very slow).
    NdArray,
}

impl ComputeBackend {
    /// The inference device.
    pub fn device(self) -> Device {
        match self {
            ComputeBackend::Flex => Device::flex(),
            #[allow(deprecated)]
            ComputeBackend::NdArray => Device::ndarray(),
        }
    }

    /// Parses `flex` or `ndarray`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "flex" => Ok(ComputeBackend::Flex),
            "ndarray" => Ok(ComputeBackend::NdArray),
            other => Err(Error::invalid(
                "backend",
                format!("unknown backend `{other}`; expected flex or ndarray"),
            )),
        }
    }
}

/// Which parameters are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainMode {
    /// Backbone frozen, features computed once, head trained on them (the original's setup).
    #[default]
    FrozenBackbone,
    /// Backbone and head trained together.
    FineTune,
}

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
    pub feature_cache: Option<PathBuf>,
    /// Show progress bars on standard error (hidden when it is not a terminal).
    pub progress: bool,
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
            progress: true,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<()> {
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

/// Ways to follow and stop a training run from outside: a flag checked between batches (the
/// run then fails with [`Error::Cancelled`]) and a callback after every epoch.
#[derive(Default)]
pub struct TrainHooks<'a> {
    /// When set, training stops at the next batch.
    pub cancel: Option<&'a AtomicBool>,
    /// Called with each epoch's metrics.
    pub on_epoch: Option<&'a mut dyn FnMut(&EpochMetrics)>,
}

impl TrainHooks<'_> {
    fn check(&self) -> Result<()> {
        match self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Cancelled {
                what: "training".into(),
            }),
            _ => Ok(()),
        }
    }

    fn epoch_done(&mut self, metrics: &EpochMetrics) {
        if let Some(f) = self.on_epoch.as_mut() {
            f(metrics);
        }
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used in this epoch.
    pub learning_rate: f64,
    /// Mean cross-entropy on the training set after the epoch.
    pub train_loss: f64,
    /// Accuracy on the training set after the epoch.
    pub train_accuracy: f64,
    /// Mean cross-entropy on the test set after the epoch.
    pub test_loss: f64,
    /// Accuracy on the test set after the epoch.
    pub test_accuracy: f64,
    /// Wall time of the epoch in seconds (training and both evaluations).
    pub seconds: f64,
}

impl EpochMetrics {
    /// The metrics of 0-based `epoch` from its two evaluations, timed from `started`.
    fn new(
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

/// Evaluation of a model on a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Accuracy per true class (`NaN` for a class with no sample).
    pub per_class_accuracy: Vec<f64>,
    /// Predicted class per evaluated sample, in order.
    pub predictions: Vec<u32>,
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
}

/// One image read, hashed and preprocessed.
pub(crate) struct Loaded {
    pub(crate) target: u32,
    pub(crate) chw: Vec<f32>,
}

fn load_one(root: &Path, image_path: &str, preprocess: &Preprocess) -> Result<Vec<f32>> {
    let path = root.join(image_path);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Ok(preprocess.to_chw(&decode(&path, &bytes, DEFAULT_MAX_ALLOC)?))
}

/// Reads and preprocesses a set in parallel (for fine-tuning, which needs every image each
/// epoch): per readable image its target and CHW values; unreadable images separately.
fn load_images(set: &ImageSet<'_>, preprocess: &Preprocess) -> (Vec<Loaded>, Vec<SkippedImage>) {
    let results: Vec<_> = set
        .manifest
        .samples
        .par_iter()
        .map(|s| (s, load_one(set.root, &s.image_path, preprocess)))
        .collect();
    let mut loaded = Vec::new();
    let mut skipped = Vec::new();
    for (sample, result) in results {
        match result {
            Ok(chw) => loaded.push(Loaded {
                target: sample.target,
                chw,
            }),
            Err(e) => skipped.push(SkippedImage {
                image_path: sample.image_path.clone(),
                reason: e.to_string(),
            }),
        }
    }
    (loaded, skipped)
}

/// Images per backbone call when computing features (rounded up to a multiple of the thread
/// count): large enough to keep every core busy, small enough that little is held decoded.
const FEATURE_BATCH: usize = 16;

fn feature_batch() -> usize {
    let threads = rayon::current_num_threads().max(1);
    FEATURE_BATCH.div_ceil(threads) * threads
}

/// The cache file of an image's features: keyed by its content hash, the preprocessing and the
/// extractor's identity (architecture, weights' SHA-256, engine and its version).
fn cache_file(
    cache: Option<&Path>,
    hash: &str,
    preprocess: &Preprocess,
    extractor: &FeatureExtractor,
) -> Option<PathBuf> {
    let key =
        sha256_hex(format!("{hash};{};{}", preprocess.key(), extractor.identity()).as_bytes());
    cache.map(|c| c.join(&key[..2]).join(format!("{key}.f32")))
}

fn read_cached(file: &Path, width: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(file).ok().filter(|b| b.len() == width * 4)?;
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn write_cached(file: &Path, row: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(file, &bytes)
}

/// One image of a set, ready for the backbone: its features from the cache, or its content
/// hash and CHW values.
enum Prepared {
    Cached(Vec<f32>),
    Fresh { hash: String, chw: Vec<f32> },
}

/// Backbone features and targets of a labelled set (frozen backbone, cached under `cache`),
/// with the images that could not be read.
pub fn set_features(
    backbone: &Backbone,
    set: &ImageSet<'_>,
    preprocess: &Preprocess,
    cache: Option<&Path>,
    device: &Device,
    progress: bool,
) -> Result<(Vec<f32>, Vec<u32>, Vec<SkippedImage>)> {
    let extractor = FeatureExtractor::new(backbone, device)?;
    set_features_with_hooks(
        &extractor,
        set,
        preprocess,
        cache,
        progress,
        &TrainHooks::default(),
    )
}

/// [`set_features`] with a given extractor, checking `hooks.cancel` between batches. Images are
/// read, hashed and decoded in batches while the previous batch runs through the backbone, so
/// only two batches are ever held decoded; cached images are not decoded at all.
pub(crate) fn set_features_with_hooks(
    extractor: &FeatureExtractor,
    set: &ImageSet<'_>,
    preprocess: &Preprocess,
    cache: Option<&Path>,
    progress: bool,
    hooks: &TrainHooks<'_>,
) -> Result<(Vec<f32>, Vec<u32>, Vec<SkippedImage>)> {
    let width = extractor.dim();
    let size = preprocess.size as usize;
    let prepare = |sample: &crate::dataset::Sample| -> Result<Prepared> {
        let path = set.root.join(&sample.image_path);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let hash = sha256_hex(&bytes);
        if let Some(row) =
            cache_file(cache, &hash, preprocess, extractor).and_then(|f| read_cached(&f, width))
        {
            return Ok(Prepared::Cached(row));
        }
        let image = decode(&path, &bytes, DEFAULT_MAX_ALLOC)?;
        Ok(Prepared::Fresh {
            hash,
            chw: preprocess.to_chw(&image),
        })
    };
    let prepare_all = |part: &[crate::dataset::Sample]| -> Vec<Result<Prepared>> {
        part.par_iter().map(prepare).collect()
    };
    let samples = &set.manifest.samples;
    let bar = crate::progress::bar(progress, samples.len() as u64, "features");
    let mut features = Vec::with_capacity(samples.len() * width);
    let mut targets = Vec::with_capacity(samples.len());
    let mut skipped = Vec::new();
    let mut chunks = samples.chunks(feature_batch());
    let mut current = chunks.next().map(|part| (part, prepare_all(part)));
    while let Some((part, prepared)) = current {
        hooks.check()?;
        let (computed, next) = rayon::join(
            || {
                let fresh: Vec<&[f32]> = prepared
                    .iter()
                    .filter_map(|p| match p {
                        Ok(Prepared::Fresh { chw, .. }) => Some(chw.as_slice()),
                        _ => None,
                    })
                    .collect();
                extractor.features(&fresh, size)
            },
            || chunks.next().map(|part| (part, prepare_all(part))),
        );
        let computed = computed?;
        let mut fresh_rows = computed.chunks_exact(width);
        for (sample, prepared) in part.iter().zip(prepared) {
            match prepared {
                Ok(Prepared::Cached(row)) => features.extend_from_slice(&row),
                Ok(Prepared::Fresh { hash, .. }) => {
                    let row = fresh_rows.next().ok_or_else(|| {
                        Error::invalid("features", "fewer feature rows than images")
                    })?;
                    if let Some(file) = cache_file(cache, &hash, preprocess, extractor) {
                        write_cached(&file, row)?;
                    }
                    features.extend_from_slice(row);
                }
                Err(e) => {
                    skipped.push(SkippedImage {
                        image_path: sample.image_path.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            }
            targets.push(sample.target);
        }
        bar.inc(part.len() as u64);
        current = next;
    }
    bar.finish_and_clear();
    Ok((features, targets, skipped))
}

/// Backbone features of preprocessed images, `[n, d]` row-major, cached under `cache` (keyed
/// by content hash, preprocessing and the extractor's identity). `images` are (content hash,
/// CHW values).
pub fn backbone_features(
    backbone: &Backbone,
    images: &[(String, &[f32])],
    preprocess: &Preprocess,
    cache: Option<&Path>,
    device: &Device,
    progress: bool,
) -> Result<Vec<f32>> {
    let extractor = FeatureExtractor::new(backbone, device)?;
    extractor_features(&extractor, images, preprocess, cache, progress)
}

/// [`backbone_features`] with a given extractor.
pub fn extractor_features(
    extractor: &FeatureExtractor,
    images: &[(String, &[f32])],
    preprocess: &Preprocess,
    cache: Option<&Path>,
    progress: bool,
) -> Result<Vec<f32>> {
    let width = extractor.dim();
    let mut out = vec![0f32; images.len() * width];
    let mut todo = Vec::new();
    for (i, (hash, _)) in images.iter().enumerate() {
        match cache_file(cache, hash, preprocess, extractor).and_then(|f| read_cached(&f, width)) {
            Some(row) => out[i * width..(i + 1) * width].copy_from_slice(&row),
            None => todo.push(i),
        }
    }
    let bar = crate::progress::bar(progress, todo.len() as u64, "features");
    for chunk in todo.chunks(feature_batch()) {
        let batch: Vec<&[f32]> = chunk.iter().map(|&i| images[i].1).collect();
        let features = extractor.features(&batch, preprocess.size as usize)?;
        for (&i, row) in chunk.iter().zip(features.chunks_exact(width)) {
            out[i * width..(i + 1) * width].copy_from_slice(row);
            if let Some(file) = cache_file(cache, &images[i].0, preprocess, extractor) {
                write_cached(&file, row)?;
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn targets_tensor(targets: &[u32], device: &Device) -> Tensor<1, Int> {
    let ints: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(ints, [targets.len()]), device)
}

/// Evaluates logits `[n, classes]` against targets.
pub fn evaluate_logits(logits: Tensor<2>, targets: &[u32], classes: usize) -> Result<Evaluation> {
    let device = logits.device();
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), targets_tensor(targets, &device));
    let loss: f64 = loss.into_scalar::<f32>().elem();
    let predictions: Vec<i64> = logits
        .argmax(1)
        .into_data()
        .try_to_vec_as::<i64>()
        .map_err(|e| Error::invalid("predictions", format!("{e:?}")))?;
    let predictions: Vec<u32> = predictions.into_iter().map(|p| p as u32).collect();
    Ok(score(&predictions, targets, classes, loss))
}

/// Accuracy, confusion matrix and per-class accuracy of predictions.
pub fn score(predictions: &[u32], targets: &[u32], classes: usize, loss: f64) -> Evaluation {
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (&p, &t) in predictions.iter().zip(targets) {
        if (t as usize) < classes && (p as usize) < classes {
            confusion[t as usize][p as usize] += 1;
        }
    }
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: u64 = row.iter().sum();
            if n == 0 {
                f64::NAN
            } else {
                row[c] as f64 / n as f64
            }
        })
        .collect();
    Evaluation {
        loss,
        accuracy: if targets.is_empty() {
            f64::NAN
        } else {
            correct as f64 / targets.len() as f64
        },
        confusion,
        per_class_accuracy,
        predictions: predictions.to_vec(),
    }
}

fn check_targets(manifest: &Manifest, classes: &ClassMap) -> Result<()> {
    for (i, s) in manifest.samples.iter().enumerate() {
        if s.target as usize >= classes.len() {
            return Err(Error::invalid(
                "target",
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
) -> Result<TrainOutcome> {
    train_with_hooks(
        backbone,
        classes,
        train_set,
        test_set,
        config,
        TrainHooks::default(),
    )
}

/// [`train`], followed and stoppable through `hooks`.
pub fn train_with_hooks(
    backbone: Backbone,
    classes: &ClassMap,
    train_set: &ImageSet<'_>,
    test_set: &ImageSet<'_>,
    config: &TrainConfig,
    mut hooks: TrainHooks<'_>,
) -> Result<TrainOutcome> {
    config.validate()?;
    check_targets(train_set.manifest, classes)?;
    check_targets(test_set.manifest, classes)?;
    let device = config.backend.device();
    let no_training_image = || Error::invalid("train", "no readable training image");
    match config.mode {
        TrainMode::FrozenBackbone => {
            let started = Instant::now();
            let extractor =
                FeatureExtractor::with_engine(&backbone, &device, config.feature_engine)?;
            let cache = config.feature_cache.as_deref();
            let features = |set: &ImageSet<'_>| {
                set_features_with_hooks(
                    &extractor,
                    set,
                    &config.preprocess,
                    cache,
                    config.progress,
                    &hooks,
                )
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
            let (head, history) = head_with_hooks(
                classifier.head,
                (&train_features, &train_targets),
                (&test_features, &test_targets),
                classes.len(),
                config,
                &mut hooks,
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
            Ok(TrainOutcome {
                model,
                history,
                test,
                skipped,
                feature_seconds,
                train_seconds,
            })
        }
        TrainMode::FineTune => {
            let (train_images, mut skipped) = load_images(train_set, &config.preprocess);
            let (test_images, test_skipped) = load_images(test_set, &config.preprocess);
            skipped.extend(test_skipped);
            if train_images.is_empty() {
                return Err(no_training_image());
            }
            let classifier = Classifier::new(backbone, classes.len(), config.seed, &device);
            let started = Instant::now();
            let (model, history, test) = fine_tune(
                classifier,
                &train_images,
                &test_images,
                classes.len(),
                config,
                &mut hooks,
            )?;
            Ok(TrainOutcome {
                model,
                history,
                test,
                skipped,
                feature_seconds: 0.0,
                train_seconds: started.elapsed().as_secs_f64(),
            })
        }
    }
}

fn features_tensor(features: &[f32], rows: usize, device: &Device) -> Tensor<2> {
    let width = features.len().checked_div(rows).unwrap_or(0);
    Tensor::from_data(TensorData::new(features.to_vec(), [rows, width]), device)
}

/// Evaluates a linear head on feature rows.
pub fn evaluate_head(
    head: &burn::nn::Linear,
    features: &[f32],
    targets: &[u32],
    classes: usize,
    device: &Device,
) -> Result<Evaluation> {
    if targets.is_empty() {
        return Ok(score(&[], &[], classes, f64::NAN));
    }
    let head = head.valid();
    let logits = head.forward(features_tensor(features, targets.len(), device));
    evaluate_logits(logits, targets, classes)
}

/// Seeded batch order of one epoch.
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ));
    order
}

fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let ints: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(ints, [indices.len()]), device)
}

/// Trains a linear head on fixed feature rows (`train.0` row-major, one row per label),
/// evaluating on `test` after every epoch; returns the head in inference mode and the history.
pub fn train_head(
    head: burn::nn::Linear,
    train: (&[f32], &[u32]),
    test: (&[f32], &[u32]),
    classes: usize,
    config: &TrainConfig,
) -> Result<(burn::nn::Linear, Vec<EpochMetrics>)> {
    head_with_hooks(
        head,
        train,
        test,
        classes,
        config,
        &mut TrainHooks::default(),
    )
}

/// [`train_head`], followed and stoppable through `hooks`.
pub(crate) fn head_with_hooks(
    head: burn::nn::Linear,
    train: (&[f32], &[u32]),
    test: (&[f32], &[u32]),
    classes: usize,
    config: &TrainConfig,
    hooks: &mut TrainHooks<'_>,
) -> Result<(burn::nn::Linear, Vec<EpochMetrics>)> {
    let plain = config.backend.device();
    let device = plain.clone().autodiff();
    let n = train.1.len();
    let x_all = features_tensor(train.0, n, &device);
    let y_all = targets_tensor(train.1, &device);
    let mut head = head.to_device(&device).train();
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut history = Vec::new();
    let bar = crate::progress::bar(config.progress, config.epochs as u64, "epochs");
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let lr = config.learning_rate * config.lr_decay.powi(epoch as i32);
        for batch in epoch_order(n, config.seed, epoch).chunks(config.batch_size) {
            hooks.check()?;
            let idx = index_tensor(batch, &device);
            let x = x_all.clone().select(0, idx.clone());
            let y = y_all.clone().select(0, idx);
            let loss = loss_fn.forward(head.forward(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optimizer.step(lr, head, grads);
        }
        let train_eval = evaluate_head(&head, train.0, train.1, classes, &plain)?;
        let test_eval = evaluate_head(&head, test.0, test.1, classes, &plain)?;
        let metrics = EpochMetrics::new(epoch, lr, &train_eval, &test_eval, started);
        hooks.epoch_done(&metrics);
        history.push(metrics);
        bar.set_message(format!("test acc {:.3}", test_eval.accuracy));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((head.valid(), history))
}

/// Evaluates a whole classifier on preprocessed images in batches.
fn evaluate_images(
    model: &Classifier,
    images: &[Loaded],
    classes: usize,
    preprocess: &Preprocess,
    device: &Device,
) -> Result<Evaluation> {
    let targets: Vec<u32> = images.iter().map(|l| l.target).collect();
    if images.is_empty() {
        return Ok(score(&[], &[], classes, f64::NAN));
    }
    let model = model.valid();
    let s = preprocess.size as usize;
    let mut logits = Vec::new();
    for chunk in images.chunks(32) {
        let mut flat = Vec::with_capacity(chunk.len() * 3 * s * s);
        for l in chunk {
            flat.extend_from_slice(&l.chw);
        }
        let x = Tensor::<4>::from_data(TensorData::new(flat, [chunk.len(), 3, s, s]), device);
        logits.push(model.forward(x));
    }
    evaluate_logits(Tensor::cat(logits, 0), &targets, classes)
}

/// Trains backbone and head together on preprocessed images.
fn fine_tune(
    model: Classifier,
    train_images: &[Loaded],
    test_images: &[Loaded],
    classes: usize,
    config: &TrainConfig,
    hooks: &mut TrainHooks<'_>,
) -> Result<(Classifier, Vec<EpochMetrics>, Evaluation)> {
    let plain = config.backend.device();
    let device = plain.clone().autodiff();
    let mut model = model.to_device(&device).train();
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let s = config.preprocess.size as usize;
    let mut history = Vec::new();
    let bar = crate::progress::bar(config.progress, config.epochs as u64, "epochs");
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let lr = config.learning_rate * config.lr_decay.powi(epoch as i32);
        for batch in epoch_order(train_images.len(), config.seed, epoch).chunks(config.batch_size) {
            hooks.check()?;
            let mut flat = Vec::with_capacity(batch.len() * 3 * s * s);
            let mut targets = Vec::with_capacity(batch.len());
            for &i in batch {
                flat.extend_from_slice(&train_images[i].chw);
                targets.push(train_images[i].target);
            }
            let x = Tensor::<4>::from_data(TensorData::new(flat, [batch.len(), 3, s, s]), &device);
            let loss = loss_fn.forward(model.forward(x), targets_tensor(&targets, &device));
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
        }
        let train_eval =
            evaluate_images(&model, train_images, classes, &config.preprocess, &plain)?;
        let test_eval = evaluate_images(&model, test_images, classes, &config.preprocess, &plain)?;
        let metrics = EpochMetrics::new(epoch, lr, &train_eval, &test_eval, started);
        hooks.epoch_done(&metrics);
        history.push(metrics);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let model = model.valid();
    let test = evaluate_images(&model, test_images, classes, &config.preprocess, &plain)?;
    Ok((model, history, test))
}

/// Softmax probabilities `[n, classes]` of logits, as rows.
pub fn probabilities(logits: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [n, c] = logits.dims();
    let flat: Vec<f32> = softmax(logits, 1)
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| Error::invalid("probabilities", format!("{e:?}")))?;
    Ok((0..n).map(|i| flat[i * c..(i + 1) * c].to_vec()).collect())
}
