//! Fine-tuning: backbone and head trained together on preprocessed images.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rayon::prelude::*;

use super::evaluate::{Evaluation, evaluate_logits, score, targets_tensor};
use super::head::epoch_order;
use super::{EpochMetrics, ImageSet, SkippedImage, TrainConfig};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::imageio::{DEFAULT_MAX_ALLOC, decode};
use crate::model::Classifier;
use crate::vision::Preprocess;

/// One image read, hashed and preprocessed.
pub(crate) struct Loaded {
    pub(crate) target: u32,
    pub(crate) chw: Vec<f32>,
}

/// Loaded images as rows of the fast trainer.
pub(crate) struct LoadedImages<'a>(pub(crate) &'a [Loaded]);

impl super::fast::Rows for LoadedImages<'_> {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn read_row(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let image = &self.0[i].chw;
        if image.len() != out.len() {
            return Err(Error::invalid(
                "images",
                format!(
                    "image {i} has {} values, the network takes {}",
                    image.len(),
                    out.len()
                ),
            ));
        }
        out.copy_from_slice(image);
        Ok(())
    }
}

fn load_one(root: &Path, image_path: &str, preprocess: &Preprocess) -> Result<Vec<f32>> {
    let path = root.join(image_path);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    Ok(preprocess.to_chw(&decode(&path, &bytes, DEFAULT_MAX_ALLOC)?))
}

/// Reads and preprocesses a set in parallel (for fine-tuning, which needs every image each
/// epoch): per readable image its target and CHW values; unreadable images separately.
pub(crate) fn load_images(
    set: &ImageSet<'_>,
    preprocess: &Preprocess,
) -> (Vec<Loaded>, Vec<SkippedImage>) {
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
pub(crate) fn fine_tune(
    model: Classifier,
    train_images: &[Loaded],
    test_images: &[Loaded],
    classes: usize,
    config: &TrainConfig,
    control: &Control,
) -> Result<(Classifier, Vec<EpochMetrics>, Evaluation)> {
    let plain = config.backend.device();
    let device = plain.clone().autodiff();
    let mut model = model.to_device(&device).train();
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let s = config.preprocess.size as usize;
    let mut history = Vec::new();
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let lr = config.learning_rate * config.lr_decay.powi(epoch as i32);
        for batch in epoch_order(train_images.len(), config.seed, epoch).chunks(config.batch_size) {
            control.check("training")?;
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
        super::record_epoch(&mut history, metrics, config.epochs, control);
    }
    let model = model.valid();
    let test = evaluate_images(&model, test_images, classes, &config.preprocess, &plain)?;
    Ok((model, history, test))
}
