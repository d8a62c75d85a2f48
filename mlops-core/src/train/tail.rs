//! Partial fine-tuning: the last units of EfficientNet-Lite0 (blocks and the head convolution,
//! BatchNorm in training mode) and the linear head trained on activations cached at the cut.
//!
//! The frozen front of the network runs once per image (on the fast path, cached like pooled
//! features); every epoch only runs the tail, forward and backward, on Burn's autodiff. The
//! tail works on NHWC rows: the 1x1 convolutions, which hold almost all of its arithmetic, are
//! matrix products of `[pixels, channels]` rows with the convolution's weights; only the
//! depthwise convolutions go through NCHW.

use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{BatchNorm, Linear};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use super::evaluate::{Evaluation, evaluate_logits, score, targets_tensor};
use super::head::epoch_order;
use super::{EpochMetrics, TrainConfig};
use crate::control::Control;
use crate::error::{Error, Result};
use crate::model::{BLOCKS, EfficientNetLite0, MbConv, TAIL_UNITS};

/// Rows per forward pass when evaluating (no gradient).
const EVAL_BATCH: usize = 64;

/// The trainable end of EfficientNet-Lite0 with the classifier's linear head.
#[derive(Module, Debug)]
pub struct Tail {
    blocks: Vec<MbConv>,
    conv_head: Conv2d,
    bn1: BatchNorm,
    head: Linear,
}

fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// BatchNorm of `[rows, c]` rows: batch statistics (and the running statistics updated as
/// Burn's BatchNorm does) when the rows are on an autodiff device, the running statistics
/// otherwise. Column means are products with a row of `1 / rows`: Burn's own training path
/// transposes the rows first, and a reduction down the rows of a row-major tensor is a
/// strided walk on the CPU backends.
fn batch_norm_rows(bn: &BatchNorm, x: Tensor<2>) -> Tensor<2> {
    let device = x.device();
    if !device.is_autodiff() {
        return bn.forward(x);
    }
    let [rows, c] = x.dims();
    let average = Tensor::<2>::ones([1, rows], &device).div_scalar(rows as f64);
    let mean = average.clone().matmul(x.clone());
    let centered = x - mean.clone();
    let variance = average.matmul(centered.clone() * centered.clone());
    let scale =
        variance.clone().add_scalar(bn.epsilon).sqrt().recip() * bn.gamma.val().reshape([1, c]);
    let running = |state: &burn::module::RunningState<Tensor<1>>, batch: Tensor<2>| {
        let old = state.value_sync().to_device(&device);
        state.update(
            old.mul_scalar(1.0 - bn.momentum)
                .add(batch.detach().reshape([c]).mul_scalar(bn.momentum))
                .detach(),
        );
    };
    running(&bn.running_mean, mean);
    running(&bn.running_var, variance);
    centered * scale + bn.beta.val().reshape([1, c])
}

/// A 1x1 convolution (no bias) of `[pixels, c_in]` rows.
fn pointwise(rows: Tensor<2>, conv: &Conv2d) -> Tensor<2> {
    let [c_out, c_in, _, _] = conv.weight.dims();
    rows.matmul(conv.weight.val().reshape([c_out, c_in]).transpose())
}

/// One inverted-residual block on `[n * h * w, c]` rows; returns the rows and the new `[h, w]`.
fn block(b: &MbConv, x: Tensor<2>, n: usize, [h, w]: [usize; 2]) -> (Tensor<2>, [usize; 2]) {
    let mut hidden = x.clone();
    if let (Some(conv), Some(bn)) = (&b.expand_conv, &b.bn0) {
        hidden = relu6(batch_norm_rows(bn, pointwise(hidden, conv)));
    }
    let channels = hidden.dims()[1];
    let nchw = hidden.reshape([n, h, w, channels]).permute([0, 3, 1, 2]);
    let depthwise = relu6(b.bn1.forward(b.depthwise_conv.forward(nchw)));
    let [_, _, oh, ow] = depthwise.dims();
    let rows = depthwise
        .permute([0, 2, 3, 1])
        .reshape([n * oh * ow, channels]);
    let out = batch_norm_rows(&b.bn2, pointwise(rows, &b.project_conv));
    (if b.skip { out + x } else { out }, [oh, ow])
}

impl Tail {
    /// The last `units` trainable units of `net` (1 = the head convolution, each further unit
    /// one more block from the end) with `head`, copied.
    pub fn of(net: &EfficientNetLite0, head: Linear, units: usize) -> Result<Self> {
        if !(1..=TAIL_UNITS).contains(&units) {
            return Err(Error::invalid(
                "tail_blocks",
                format!("must be in 1..={TAIL_UNITS}, got {units}"),
            ));
        }
        // `valid` gives the copy BatchNorm running statistics of its own: Burn's clones share
        // them, so training the copy would otherwise move `net`'s statistics to its device.
        Ok(Tail {
            blocks: net.blocks[BLOCKS + 1 - units..].to_vec(),
            conv_head: net.conv_head.clone(),
            bn1: net.bn1.clone(),
            head,
        }
        .valid())
    }

    /// Units of the network in this tail (blocks and the head convolution).
    pub fn units(&self) -> usize {
        self.blocks.len() + 1
    }

    /// Puts the tail's units back into `net` (which they were taken from) and returns it with
    /// the linear head.
    pub fn splice(self, mut net: EfficientNetLite0) -> (EfficientNetLite0, Linear) {
        let first = net.blocks.len() - self.blocks.len();
        for (slot, block) in net.blocks[first..].iter_mut().zip(self.blocks) {
            *slot = block;
        }
        net.conv_head = self.conv_head;
        net.bn1 = self.bn1;
        (net, self.head)
    }

    /// Pooled features `[n, 1280]` of NHWC activations `[n, h, w, c]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, h, w, c] = x.dims();
        let mut rows = x.reshape([n * h * w, c]);
        let mut size = [h, w];
        for b in &self.blocks {
            (rows, size) = block(b, rows, n, size);
        }
        let rows = relu6(batch_norm_rows(&self.bn1, pointwise(rows, &self.conv_head)));
        let features = rows.dims()[1];
        let pixels = size[0] * size[1];
        // The mean over each image's pixels as a batched product with a row of 1 / pixels.
        Tensor::<3>::ones([n, 1, pixels], &rows.device())
            .div_scalar(pixels as f64)
            .matmul(rows.reshape([n, pixels, features]))
            .reshape([n, features])
    }

    /// Class logits `[n, classes]` of NHWC activations `[n, h, w, c]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }
}

/// Activation rows of one set: `rows` NHWC rows of `shape` each.
#[derive(Debug, Clone, Copy)]
pub struct Activations<'a> {
    /// Row-major values, one `h * w * c` row per image.
    pub values: &'a [f32],
    /// `[h, w, c]` of a row.
    pub shape: [usize; 3],
}

impl Activations<'_> {
    fn row_len(&self) -> usize {
        self.shape.iter().product()
    }

    fn len(&self) -> usize {
        self.values.len().checked_div(self.row_len()).unwrap_or(0)
    }

    /// The rows at `indices` as one `[k, h, w, c]` tensor.
    fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let len = self.row_len();
        let mut flat = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            flat.extend_from_slice(&self.values[i * len..(i + 1) * len]);
        }
        let [h, w, c] = self.shape;
        Tensor::from_data(TensorData::new(flat, [indices.len(), h, w, c]), device)
    }

    /// `f` of consecutive batches, concatenated along the first axis.
    fn map_batches(&self, device: &Device, f: impl Fn(Tensor<4>) -> Tensor<2>) -> Tensor<2> {
        let n = self.len();
        let parts: Vec<Tensor<2>> = (0..n)
            .step_by(EVAL_BATCH)
            .map(|start| {
                let idx: Vec<usize> = (start..(start + EVAL_BATCH).min(n)).collect();
                f(self.batch(&idx, device))
            })
            .collect();
        Tensor::cat(parts, 0)
    }
}

/// Tensor values as a row-major `Vec<f32>`.
fn to_vec(t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| Error::internal("tail", e))
}

impl Tail {
    /// Pooled features of `rows` (inference mode), `[n, 1280]` row-major.
    pub fn features_of(&self, rows: Activations<'_>, device: &Device) -> Result<Vec<f32>> {
        if rows.len() == 0 {
            return Ok(Vec::new());
        }
        let tail = self.valid();
        to_vec(rows.map_batches(device, |x| tail.features(x)))
    }

    /// Class logits of `rows` (inference mode), `[n, classes]` row-major.
    pub fn logits_of(&self, rows: Activations<'_>, device: &Device) -> Result<Vec<f32>> {
        if rows.len() == 0 {
            return Ok(Vec::new());
        }
        let tail = self.valid();
        to_vec(rows.map_batches(device, |x| tail.forward(x)))
    }

    /// Loss, accuracy and confusion on `rows` with labels `targets` (inference mode).
    pub fn evaluate(
        &self,
        rows: Activations<'_>,
        targets: &[u32],
        classes: usize,
        device: &Device,
    ) -> Result<Evaluation> {
        if targets.is_empty() {
            return Ok(score(&[], &[], classes, f64::NAN));
        }
        let tail = self.valid();
        evaluate_logits(
            rows.map_batches(device, |x| tail.forward(x)),
            targets,
            classes,
        )
    }
}

/// Trains `tail` (its units with BatchNorm in training mode, and the head) on activation rows
/// `train` with labels, evaluating on `test` after every epoch; returns the tail in inference
/// mode and the history. The training loss and accuracy of an epoch are those of its batches
/// as they were trained (no second pass over the training rows).
pub fn train_tail(
    tail: Tail,
    train: (Activations<'_>, &[u32]),
    test: (Activations<'_>, &[u32]),
    classes: usize,
    config: &TrainConfig,
    control: &Control,
) -> Result<(Tail, Vec<EpochMetrics>)> {
    let (rows, targets) = train;
    if rows.len() != targets.len() {
        return Err(Error::invalid(
            "train",
            format!(
                "{} activation rows for {} labels",
                rows.len(),
                targets.len()
            ),
        ));
    }
    let plain = config.backend.device();
    let device = plain.clone().autodiff();
    // A copy with running statistics of its own (see `Tail::of`), on the autodiff device.
    let mut tail = tail.valid().to_device(&device).train();
    let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut history = Vec::new();
    for epoch in 0..config.epochs {
        let started = Instant::now();
        let lr = config.learning_rate * config.lr_decay.powi(epoch as i32);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for batch in epoch_order(targets.len(), config.seed, epoch).chunks(config.batch_size) {
            control.check("training")?;
            let labels: Vec<u32> = batch.iter().map(|&i| targets[i]).collect();
            let logits = tail.forward(rows.batch(batch, &device));
            let predicted = logits
                .clone()
                .detach()
                .argmax(1)
                .into_data()
                .try_to_vec_as::<i64>()
                .map_err(|e| Error::internal("predictions", e))?;
            correct += predicted
                .iter()
                .zip(&labels)
                .filter(|(p, l)| **p == i64::from(**l))
                .count();
            let loss = loss_fn.forward(logits, targets_tensor(&labels, &device));
            loss_sum += loss.clone().into_scalar::<f32>().elem::<f64>() * batch.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &tail);
            tail = optimizer.step(lr, tail, grads);
        }
        let n = targets.len().max(1) as f64;
        let mut train_eval = score(&[], &[], classes, loss_sum / n);
        train_eval.accuracy = correct as f64 / n;
        let test_eval = tail.valid().evaluate(test.0, test.1, classes, &plain)?;
        let metrics = EpochMetrics::new(epoch, lr, &train_eval, &test_eval, started);
        super::record_epoch(&mut history, metrics, config.epochs, control);
    }
    Ok((tail.valid(), history))
}
