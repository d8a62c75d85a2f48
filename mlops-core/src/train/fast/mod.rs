//! Partial and full fine-tuning of EfficientNet-Lite0 on our own kernels: the trained units'
//! forward and backward passes on NHWC rows (1x1 convolutions as matrix products for the
//! output, the input gradient and the weight gradient; depthwise convolutions and their
//! gradients vectorised over channels; BatchNorm with batch statistics in two passes forward
//! and two backward, ReLU6's mask and the residual folded into them) and Adam as Burn
//! computes it.
//!
//! Burn's autodiff ([`super::tail::train_tail`], the `Burn` engine) stays the reference: the
//! tests check this path's gradients and a training run against it. Trained values are
//! written back into Burn's modules.

mod adam;
mod net;
mod ops;
mod store;

use std::time::Instant;

pub use net::{FastNet, StepOutcome, StepProfile};
pub use store::{ActivationPrecision, RowStore};

use super::evaluate::{Evaluation, score};
use super::head::epoch_order;
use super::{EpochMetrics, TrainConfig};
use crate::control::Control;
use crate::error::{Error, Result};
use adam::Adam;

/// Rows per forward pass when evaluating.
const EVAL_BATCH: usize = 64;

/// Input rows of the fast trainer: activations at a cut (NHWC) or planar images.
pub trait Rows: Sync {
    /// Number of rows.
    fn count(&self) -> usize;
    /// Copies row `i` into `out` (which has the row's length).
    fn read_row(&self, i: usize, out: &mut [f32]) -> Result<()>;
}

/// Equal-length rows stored one after the other.
#[derive(Debug, Clone, Copy)]
pub struct Contiguous<'a> {
    /// Row-major values.
    pub values: &'a [f32],
    /// Values per row.
    pub row_len: usize,
}

impl Rows for Contiguous<'_> {
    fn count(&self) -> usize {
        self.values.len().checked_div(self.row_len).unwrap_or(0)
    }

    fn read_row(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let row = self
            .values
            .get(i * self.row_len..(i + 1) * self.row_len)
            .ok_or_else(|| Error::invalid("rows", format!("no row {i}")))?;
        if row.len() != out.len() {
            return Err(Error::invalid(
                "rows",
                format!(
                    "row {i} has {} values, the network takes {}",
                    row.len(),
                    out.len()
                ),
            ));
        }
        out.copy_from_slice(row);
        Ok(())
    }
}

/// The rows at `indices` copied into one batch, checked against the network's row length.
fn gather(rows: &dyn Rows, indices: &[usize], row_len: usize) -> Result<Vec<f32>> {
    let mut batch = vec![0f32; indices.len() * row_len];
    for (&i, out) in indices.iter().zip(batch.chunks_exact_mut(row_len.max(1))) {
        rows.read_row(i, out)?;
    }
    Ok(batch)
}

impl FastNet {
    /// Class logits of every row of `rows` (inference), `[rows, classes]`.
    pub fn logits_of(&self, rows: &dyn Rows) -> Result<Vec<f32>> {
        self.map_rows(rows, |x, n| self.logits(x, n))
    }

    /// Pooled features of every row of `rows` (inference), `[rows, features]`.
    pub fn features_of(&self, rows: &dyn Rows) -> Result<Vec<f32>> {
        self.map_rows(rows, |x, n| self.features(x, n))
    }

    fn map_rows(&self, rows: &dyn Rows, f: impl Fn(&[f32], usize) -> Vec<f32>) -> Result<Vec<f32>> {
        let n = rows.count();
        let mut out = Vec::new();
        for start in (0..n).step_by(EVAL_BATCH) {
            let indices: Vec<usize> = (start..(start + EVAL_BATCH).min(n)).collect();
            out.extend(f(&gather(rows, &indices, self.input_len())?, indices.len()));
        }
        Ok(out)
    }

    /// Loss, accuracy and confusion on `rows` with labels `targets` (inference).
    pub fn evaluate(&self, rows: &dyn Rows, targets: &[u32]) -> Result<Evaluation> {
        let classes = self.classes();
        if targets.is_empty() {
            return Ok(score(&[], &[], classes, f64::NAN));
        }
        let logits = self.logits_of(rows)?;
        let mut loss = 0f64;
        let mut predictions = Vec::with_capacity(targets.len());
        for (row, &t) in logits.chunks_exact(classes).zip(targets) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
            loss += sum.ln() - f64::from(row[t as usize] - max);
            let best = (0..classes).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            predictions.push(best as u32);
        }
        Ok(score(
            &predictions,
            targets,
            classes,
            loss / targets.len() as f64,
        ))
    }
}

/// Trains `net` on `train` rows with labels, evaluating on `test` after every epoch, with
/// Adam (epsilon 1e-8) and the learning-rate schedule, batch size, epochs and seeded batch
/// order of `config`. The training loss and accuracy of an epoch are those of its batches as
/// they were trained.
pub fn train_fast(
    mut net: FastNet,
    train: (&dyn Rows, &[u32]),
    test: (&dyn Rows, &[u32]),
    config: &TrainConfig,
    control: &Control,
) -> Result<(FastNet, Vec<EpochMetrics>)> {
    let (rows, targets) = train;
    if rows.count() != targets.len() {
        return Err(Error::invalid(
            "train",
            format!("{} rows for {} labels", rows.count(), targets.len()),
        ));
    }
    let classes = net.classes();
    if let Some(t) = targets
        .iter()
        .chain(test.1)
        .find(|&&t| t as usize >= classes)
    {
        return Err(Error::invalid(
            "target",
            format!("class id {t} but the head has {classes} classes"),
        ));
    }
    let mut optimizer = Adam::new(net.params_mut().len(), 1e-8);
    let mut history = Vec::new();
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let lr = config.learning_rate * config.lr_decay.powi(epoch as i32);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for batch in epoch_order(targets.len(), config.seed, epoch).chunks(config.batch_size) {
            control.check("training")?;
            let t = Instant::now();
            let x = gather(rows, batch, net.input_len())?;
            let labels: Vec<u32> = batch.iter().map(|&i| targets[i]).collect();
            let copy = t.elapsed().as_secs_f64();
            let (grads, outcome) = net.gradients(&x, batch.len(), &labels)?;
            drop(x);
            let t = Instant::now();
            optimizer.step(net.params_mut(), &grads, lr);
            net.record(t.elapsed().as_secs_f64(), copy);
            loss_sum += outcome.loss_sum;
            correct += outcome.correct;
        }
        let n = targets.len().max(1) as f64;
        let mut train_eval = score(&[], &[], classes, loss_sum / n);
        train_eval.accuracy = correct as f64 / n;
        let test_eval = net.evaluate(test.0, test.1)?;
        let metrics = EpochMetrics::new(epoch, lr, &train_eval, &test_eval, started);
        super::record_epoch(&mut history, metrics, config.epochs, control);
    }
    Ok((net, history))
}
