//! Training a linear head on fixed backbone features.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::evaluate::{evaluate_head, features_tensor, targets_tensor};
use super::{EpochMetrics, TrainConfig};
use crate::control::Control;
use crate::error::Result;

/// Seeded batch order of one epoch (0-based): every trainer takes its batches in this order.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
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
///
/// `control` is checked between batches and told each epoch (`epochs`, with its metrics).
pub fn train_head(
    head: burn::nn::Linear,
    train: (&[f32], &[u32]),
    test: (&[f32], &[u32]),
    classes: usize,
    config: &TrainConfig,
    control: &Control,
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
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let lr = config.learning_rate * config.lr_decay.powi(epoch as i32);
        for batch in epoch_order(n, config.seed, epoch).chunks(config.batch_size) {
            control.check("training")?;
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
        super::record_epoch(&mut history, metrics, config.epochs, control);
    }
    Ok((head.valid(), history))
}
