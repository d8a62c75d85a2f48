//! EfficientNet-Lite0's trainable end (optionally with the stem) and its linear head as flat
//! parameters, with a training step (forward with batch statistics, backward by hand) and
//! inference, on the kernels of [`super::ops`]. Copied from, and written back into, Burn's
//! modules: Burn stays the model users see.

use std::time::Instant;

use burn::module::{Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::*;

use super::ops::{
    DepthwiseGeometry, add_into, batch_statistics, depthwise_backward, depthwise_forward, im2col,
    norm_backward, pointwise, pointwise_input_grad, pointwise_weight_grad, pool, scale_shift,
};
use crate::error::{Error, Result};
use crate::linalg::{View, gemm_into};
use crate::model::{BLOCKS, EfficientNetLite0, MbConv, TAIL_UNITS};

/// Seconds per kind of work of the training steps so far (forward and backward).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepProfile {
    /// 1x1 convolutions (matrix products), forward.
    pub pointwise_forward: f64,
    /// 1x1 convolutions: input and weight gradients.
    pub pointwise_backward: f64,
    /// Depthwise convolutions, forward.
    pub depthwise_forward: f64,
    /// Depthwise convolutions: input and weight gradients.
    pub depthwise_backward: f64,
    /// BatchNorm with batch statistics, ReLU6 and residual sums, forward.
    pub norm_forward: f64,
    /// BatchNorm, ReLU6 and residual gradients.
    pub norm_backward: f64,
    /// The stem's im2col and convolution, forward and weight gradient.
    pub stem: f64,
    /// Pooling, the linear head, the loss and their gradients.
    pub head: f64,
    /// The optimizer step.
    pub optimizer: f64,
    /// Copying the batch's rows together.
    pub batch_copy: f64,
}

impl StepProfile {
    /// Total seconds.
    pub fn total(&self) -> f64 {
        self.pointwise_forward
            + self.pointwise_backward
            + self.depthwise_forward
            + self.depthwise_backward
            + self.norm_forward
            + self.norm_backward
            + self.stem
            + self.head
            + self.optimizer
            + self.batch_copy
    }
}

/// Adds the seconds since `started` to `slot` and returns the value.
fn lap<T>(slot: &mut f64, started: Instant, value: T) -> T {
    *slot += started.elapsed().as_secs_f64();
    value
}

/// A range of the flat parameter vector.
#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: usize,
    len: usize,
}

impl Slot {
    fn of<'a>(&self, values: &'a [f32]) -> &'a [f32] {
        &values[self.offset..self.offset + self.len]
    }

    fn of_mut<'a>(&self, values: &'a mut [f32]) -> &'a mut [f32] {
        &mut values[self.offset..self.offset + self.len]
    }
}

/// Flat parameters with the ranges handed out so far.
#[derive(Debug, Default)]
struct Params {
    values: Vec<f32>,
    /// Length of each tensor, in order.
    lengths: Vec<usize>,
}

impl Params {
    fn push(&mut self, values: &[f32]) -> Slot {
        let slot = Slot {
            offset: self.values.len(),
            len: values.len(),
        };
        self.values.extend_from_slice(values);
        self.lengths.push(values.len());
        slot
    }
}

/// The values of a Burn tensor.
fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| Error::internal("parameters", e))
}

fn tensor<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// BatchNorm: gamma and beta among the parameters, running statistics of its own.
#[derive(Debug, Clone)]
struct Norm {
    gamma: Slot,
    beta: Slot,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    momentum: f32,
    epsilon: f32,
}

/// Batch statistics of one BatchNorm in a training step.
struct NormTape {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Norm {
    fn of(bn: &BatchNorm, params: &mut Params) -> Result<Self> {
        Ok(Norm {
            gamma: params.push(&values(bn.gamma.val())?),
            beta: params.push(&values(bn.beta.val())?),
            running_mean: values(bn.running_mean.value())?,
            running_var: values(bn.running_var.value())?,
            momentum: bn.momentum as f32,
            epsilon: bn.epsilon as f32,
        })
    }

    fn write(&self, bn: &mut BatchNorm, params: &[f32]) {
        let device = bn.gamma.val().device();
        let c = self.gamma.len;
        bn.gamma = Param::initialized(bn.gamma.id, tensor(self.gamma.of(params), [c], &device));
        bn.beta = Param::initialized(bn.beta.id, tensor(self.beta.of(params), [c], &device));
        bn.running_mean = RunningState::new(tensor(&self.running_mean, [c], &device));
        bn.running_var = RunningState::new(tensor(&self.running_var, [c], &device));
    }

    /// `act(bn(x) (+ residual))`: with batch statistics (updating the running ones as Burn
    /// does) when `train`, with the running statistics otherwise.
    fn forward(
        &mut self,
        params: &[f32],
        x: &[f32],
        relu6: bool,
        residual: Option<&[f32]>,
        train: bool,
    ) -> (Vec<f32>, Option<NormTape>) {
        let channels = self.gamma.len;
        let (mean, variance) = if train {
            let (mean, variance) = batch_statistics(x, channels);
            let keep = 1.0 - self.momentum;
            for (r, m) in self.running_mean.iter_mut().zip(&mean) {
                *r = *r * keep + m * self.momentum;
            }
            for (r, v) in self.running_var.iter_mut().zip(&variance) {
                *r = *r * keep + v * self.momentum;
            }
            (mean, variance)
        } else {
            (self.running_mean.clone(), self.running_var.clone())
        };
        let inv_std: Vec<f32> = variance
            .iter()
            .map(|v| 1.0 / (v + self.epsilon).sqrt())
            .collect();
        let gamma = self.gamma.of(params);
        let beta = self.beta.of(params);
        let scale: Vec<f32> = gamma.iter().zip(&inv_std).map(|(g, s)| g * s).collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let out = scale_shift(x, &scale, &shift, relu6, residual);
        (out, train.then_some(NormTape { mean, inv_std }))
    }

    /// In place: the gradient of the output becomes that of the input; gamma's and beta's
    /// gradients go to `grads`.
    fn backward(
        &self,
        params: &[f32],
        grads: &mut [f32],
        grad: &mut [f32],
        x: &[f32],
        output: Option<&[f32]>,
        tape: &NormTape,
    ) {
        let (gamma_grad, beta_grad) = norm_backward(
            grad,
            x,
            output,
            &tape.mean,
            &tape.inv_std,
            self.gamma.of(params),
        );
        self.gamma.of_mut(grads).copy_from_slice(&gamma_grad);
        self.beta.of_mut(grads).copy_from_slice(&beta_grad);
    }
}

/// A 1x1 convolution: `outputs` rows of `inputs` weights.
#[derive(Debug, Clone, Copy)]
struct Conv1x1 {
    inputs: usize,
    outputs: usize,
    weight: Slot,
}

impl Conv1x1 {
    fn of(conv: &Conv2d, params: &mut Params) -> Result<Self> {
        let [outputs, inputs, _, _] = conv.weight.dims();
        Ok(Conv1x1 {
            inputs,
            outputs,
            weight: params.push(&values(conv.weight.val())?),
        })
    }

    fn write(&self, conv: &mut Conv2d, params: &[f32]) {
        let device = conv.weight.val().device();
        let shape = conv.weight.dims();
        conv.weight = Param::initialized(
            conv.weight.id,
            tensor(self.weight.of(params), shape, &device),
        );
    }

    fn forward(&self, params: &[f32], x: &[f32]) -> Vec<f32> {
        pointwise(x, self.weight.of(params), self.inputs, self.outputs)
    }

    /// The weight's gradient into `grads`; the input's gradient when `input_grad`.
    fn backward(
        &self,
        params: &[f32],
        grads: &mut [f32],
        grad: &[f32],
        x: &[f32],
        input_grad: bool,
    ) -> Option<Vec<f32>> {
        let w = pointwise_weight_grad(grad, x, self.inputs, self.outputs);
        self.weight.of_mut(grads).copy_from_slice(&w);
        input_grad
            .then(|| pointwise_input_grad(grad, self.weight.of(params), self.inputs, self.outputs))
    }
}

/// A depthwise convolution, its weight laid out `[kernel * kernel, channels]`.
#[derive(Debug, Clone, Copy)]
struct Depthwise {
    channels: usize,
    kernel: usize,
    stride: usize,
    weight: Slot,
}

impl Depthwise {
    fn of(conv: &Conv2d, params: &mut Params) -> Result<Self> {
        let [channels, _, kernel, _] = conv.weight.dims();
        let burn = values(conv.weight.val())?;
        let kk = kernel * kernel;
        let mut taps = vec![0f32; burn.len()];
        for c in 0..channels {
            for t in 0..kk {
                taps[t * channels + c] = burn[c * kk + t];
            }
        }
        Ok(Depthwise {
            channels,
            kernel,
            stride: conv.stride[0],
            weight: params.push(&taps),
        })
    }

    fn write(&self, conv: &mut Conv2d, params: &[f32]) {
        let device = conv.weight.val().device();
        let kk = self.kernel * self.kernel;
        let taps = self.weight.of(params);
        let mut burn = vec![0f32; taps.len()];
        for c in 0..self.channels {
            for t in 0..kk {
                burn[c * kk + t] = taps[t * self.channels + c];
            }
        }
        let shape = conv.weight.dims();
        conv.weight = Param::initialized(conv.weight.id, tensor(&burn, shape, &device));
    }

    fn geometry(&self, images: usize, [height, width]: [usize; 2]) -> DepthwiseGeometry {
        DepthwiseGeometry {
            images,
            height,
            width,
            channels: self.channels,
            kernel: self.kernel,
            stride: self.stride,
        }
    }
}

/// An inverted-residual block.
#[derive(Debug, Clone)]
struct Block {
    expand: Option<(Conv1x1, Norm)>,
    depthwise: Depthwise,
    bn1: Norm,
    project: Conv1x1,
    bn2: Norm,
    skip: bool,
}

/// What a block's backward pass needs of its forward pass.
struct BlockTape {
    /// The block's input (set by the caller, which owns it).
    input: Vec<f32>,
    expanded: Option<(Vec<f32>, Vec<f32>, NormTape)>,
    depthwise: Vec<f32>,
    hidden: Vec<f32>,
    norm1: NormTape,
    projected: Vec<f32>,
    norm2: NormTape,
    geometry: DepthwiseGeometry,
}

impl Block {
    fn of(b: &MbConv, params: &mut Params) -> Result<Self> {
        let expand = match (&b.expand_conv, &b.bn0) {
            (Some(c), Some(n)) => Some((Conv1x1::of(c, params)?, Norm::of(n, params)?)),
            _ => None,
        };
        Ok(Block {
            expand,
            depthwise: Depthwise::of(&b.depthwise_conv, params)?,
            bn1: Norm::of(&b.bn1, params)?,
            project: Conv1x1::of(&b.project_conv, params)?,
            bn2: Norm::of(&b.bn2, params)?,
            skip: b.skip,
        })
    }

    fn write(&self, b: &mut MbConv, params: &[f32]) {
        if let (Some((conv, norm)), Some(c), Some(n)) =
            (&self.expand, &mut b.expand_conv, &mut b.bn0)
        {
            conv.write(c, params);
            norm.write(n, params);
        }
        self.depthwise.write(&mut b.depthwise_conv, params);
        self.bn1.write(&mut b.bn1, params);
        self.project.write(&mut b.project_conv, params);
        self.bn2.write(&mut b.bn2, params);
    }

    fn forward(
        &mut self,
        params: &[f32],
        x: &[f32],
        images: usize,
        size: [usize; 2],
        train: bool,
        profile: &mut StepProfile,
    ) -> (Vec<f32>, [usize; 2], Option<BlockTape>) {
        let mut expanded = None;
        if let Some((conv, norm)) = &mut self.expand {
            let t = Instant::now();
            let e = lap(&mut profile.pointwise_forward, t, conv.forward(params, x));
            let t = Instant::now();
            let (h, tape) = lap(
                &mut profile.norm_forward,
                t,
                norm.forward(params, &e, true, None, train),
            );
            expanded = Some((e, h, tape));
        }
        let input = expanded.as_ref().map_or(x, |(_, h, _)| h.as_slice());
        let geometry = self.depthwise.geometry(images, size);
        let t = Instant::now();
        let depthwise = lap(
            &mut profile.depthwise_forward,
            t,
            depthwise_forward(input, self.depthwise.weight.of(params), &geometry),
        );
        let t = Instant::now();
        let (hidden, norm1) = lap(
            &mut profile.norm_forward,
            t,
            self.bn1.forward(params, &depthwise, true, None, train),
        );
        let t = Instant::now();
        let projected = lap(
            &mut profile.pointwise_forward,
            t,
            self.project.forward(params, &hidden),
        );
        let t = Instant::now();
        let residual = self.skip.then_some(x);
        let (out, norm2) = lap(
            &mut profile.norm_forward,
            t,
            self.bn2.forward(params, &projected, false, residual, train),
        );
        let size = geometry.output();
        let tape = match (train, norm1, norm2) {
            (true, Some(norm1), Some(norm2)) => Some(BlockTape {
                input: Vec::new(),
                expanded: expanded.and_then(|(e, h, t)| t.map(|t| (e, h, t))),
                depthwise,
                hidden,
                norm1,
                projected,
                norm2,
                geometry,
            }),
            _ => None,
        };
        (out, size, tape)
    }

    /// The gradient of the block's input (when `input_grad`) from that of its output.
    fn backward(
        &self,
        params: &[f32],
        grads: &mut [f32],
        mut grad: Vec<f32>,
        tape: &BlockTape,
        input_grad: bool,
        profile: &mut StepProfile,
    ) -> Option<Vec<f32>> {
        let x = tape.input.as_slice();
        let skip_grad = (self.skip && input_grad).then(|| grad.clone());
        let t = Instant::now();
        self.bn2
            .backward(params, grads, &mut grad, &tape.projected, None, &tape.norm2);
        lap(&mut profile.norm_backward, t, ());
        let t = Instant::now();
        let mut hidden_grad = lap(
            &mut profile.pointwise_backward,
            t,
            self.project
                .backward(params, grads, &grad, &tape.hidden, true),
        )?;
        drop(grad);
        let t = Instant::now();
        self.bn1.backward(
            params,
            grads,
            &mut hidden_grad,
            &tape.depthwise,
            Some(&tape.hidden),
            &tape.norm1,
        );
        lap(&mut profile.norm_backward, t, ());
        let input = tape.expanded.as_ref().map_or(x, |(_, h, _)| h.as_slice());
        let t = Instant::now();
        let (mut expanded_grad, weight_grad) = lap(
            &mut profile.depthwise_backward,
            t,
            depthwise_backward(
                &hidden_grad,
                input,
                self.depthwise.weight.of(params),
                &tape.geometry,
            ),
        );
        drop(hidden_grad);
        self.depthwise
            .weight
            .of_mut(grads)
            .copy_from_slice(&weight_grad);
        let mut input_grad_value = match (&self.expand, &tape.expanded) {
            (Some((conv, norm)), Some((e, h, norm_tape))) => {
                let t = Instant::now();
                norm.backward(params, grads, &mut expanded_grad, e, Some(h), norm_tape);
                lap(&mut profile.norm_backward, t, ());
                let t = Instant::now();
                lap(
                    &mut profile.pointwise_backward,
                    t,
                    conv.backward(params, grads, &expanded_grad, x, input_grad),
                )
            }
            _ => input_grad.then_some(expanded_grad),
        };
        if let (Some(value), Some(skip)) = (&mut input_grad_value, &skip_grad) {
            let t = Instant::now();
            add_into(value, skip);
            lap(&mut profile.norm_backward, t, ());
        }
        input_grad_value
    }
}

/// The stem: a 3x3 stride-2 convolution of the planar input image and its BatchNorm.
#[derive(Debug, Clone)]
struct Stem {
    conv: Conv1x1,
    kernel: usize,
    stride: usize,
    norm: Norm,
}

/// The classifier end: the 1x1 head convolution, its BatchNorm, pooling and the linear head.
#[derive(Debug, Clone)]
struct Head {
    conv: Conv1x1,
    norm: Norm,
    weight: Slot,
    bias: Slot,
    classes: usize,
}

/// What the head's backward pass needs.
struct HeadTape {
    input: Vec<f32>,
    conv: Vec<f32>,
    activated: Vec<f32>,
    norm: NormTape,
}

/// What the stem's backward pass needs (its output is the first block's input).
struct StemTape {
    cols: Vec<f32>,
    conv: Vec<f32>,
    norm: NormTape,
}

/// One forward pass: logits, pooled features and, in training, what the backward pass needs.
struct Pass {
    logits: Vec<f32>,
    pooled: Vec<f32>,
    stem: Option<StemTape>,
    /// Per block its tape (with its input).
    blocks: Vec<BlockTape>,
    head: Option<HeadTape>,
}

/// The loss and correct predictions of a training step's batch.
#[derive(Debug, Clone, Copy)]
pub struct StepOutcome {
    /// Summed (not mean) cross-entropy over the batch.
    pub loss_sum: f64,
    /// Rows whose highest logit is their target.
    pub correct: usize,
}

/// The trainable end of EfficientNet-Lite0 with a linear head, on the fast training kernels.
#[derive(Debug, Clone)]
pub struct FastNet {
    stem: Option<Stem>,
    blocks: Vec<Block>,
    head: Head,
    params: Vec<f32>,
    /// Length of each parameter tensor in `params`, in order.
    lengths: Vec<usize>,
    /// `[h, w, c]` (NHWC) of an input row, or `[c, h, w]` (planar image) with the stem.
    input: [usize; 3],
    profile: StepProfile,
}

impl FastNet {
    /// The last `units` units of `net` (1 = the head convolution, up to [`TAIL_UNITS`]) and
    /// `head`, for inputs of `input` (`[h, w, c]` activations at the cut); with `stem`, every
    /// unit and the stem, for planar images of `input` = `[3, h, w]`.
    pub fn of(
        net: &EfficientNetLite0,
        head: &Linear,
        units: usize,
        stem: bool,
        input: [usize; 3],
    ) -> Result<Self> {
        if !(1..=TAIL_UNITS).contains(&units) || (stem && units != TAIL_UNITS) {
            return Err(Error::invalid(
                "tail_blocks",
                format!("must be in 1..={TAIL_UNITS} (all of them with the stem), got {units}"),
            ));
        }
        let mut params = Params::default();
        let stem = if stem {
            let [outputs, inputs, kernel, _] = net.conv_stem.weight.dims();
            Some(Stem {
                conv: Conv1x1 {
                    inputs: inputs * kernel * kernel,
                    outputs,
                    weight: params.push(&values(net.conv_stem.weight.val())?),
                },
                kernel,
                stride: net.conv_stem.stride[0],
                norm: Norm::of(&net.bn0, &mut params)?,
            })
        } else {
            None
        };
        let blocks = net.blocks[BLOCKS + 1 - units..]
            .iter()
            .map(|b| Block::of(b, &mut params))
            .collect::<Result<Vec<_>>>()?;
        let conv = Conv1x1::of(&net.conv_head, &mut params)?;
        let norm = Norm::of(&net.bn1, &mut params)?;
        let [features, classes] = head.weight.dims();
        if features != conv.outputs {
            return Err(Error::invalid(
                "head",
                format!(
                    "takes {features} features, the network gives {}",
                    conv.outputs
                ),
            ));
        }
        let weight = params.push(&values(head.weight.val())?);
        let bias = match &head.bias {
            Some(b) => params.push(&values(b.val())?),
            None => params.push(&vec![0.0; classes]),
        };
        Ok(FastNet {
            stem,
            blocks,
            head: Head {
                conv,
                norm,
                weight,
                bias,
                classes,
            },
            params: params.values,
            lengths: params.lengths,
            input,
            profile: StepProfile::default(),
        })
    }

    /// Writes the trained values (parameters and running statistics) into the units of `net`
    /// and into `head` they were copied from.
    pub fn write_into(&self, net: &mut EfficientNetLite0, head: &mut Linear) {
        let p = &self.params;
        if let Some(stem) = &self.stem {
            let device = net.conv_stem.weight.val().device();
            let shape = net.conv_stem.weight.dims();
            net.conv_stem.weight = Param::initialized(
                net.conv_stem.weight.id,
                tensor(stem.conv.weight.of(p), shape, &device),
            );
            stem.norm.write(&mut net.bn0, p);
        }
        let first = net.blocks.len() - self.blocks.len();
        for (block, target) in self.blocks.iter().zip(&mut net.blocks[first..]) {
            block.write(target, p);
        }
        self.head.conv.write(&mut net.conv_head, p);
        self.head.norm.write(&mut net.bn1, p);
        let device = head.weight.val().device();
        let shape = head.weight.dims();
        head.weight = Param::initialized(
            head.weight.id,
            tensor(self.head.weight.of(p), shape, &device),
        );
        if let Some(bias) = &mut head.bias {
            *bias = Param::initialized(
                bias.id,
                tensor(self.head.bias.of(p), [self.head.classes], &device),
            );
        }
    }

    /// Trained parameters (all of them, flat).
    pub(crate) fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The trained parameters, flat, in the order of [`Self::gradients`].
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The length of each parameter tensor in [`Self::params`], in order: per unit (stem,
    /// blocks, head convolution) each convolution's weight followed by its BatchNorm's gamma
    /// and beta, then the linear head's weight and bias (PyTorch's parameter order).
    pub fn tensor_lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Replaces every trained parameter (flat, in the order of [`Self::params`]).
    pub fn set_params(&mut self, values: &[f32]) -> Result<()> {
        if values.len() != self.params.len() {
            return Err(Error::invalid(
                "params",
                format!(
                    "{} values for {} parameters",
                    values.len(),
                    self.params.len()
                ),
            ));
        }
        self.params.copy_from_slice(values);
        Ok(())
    }

    /// Values per input row.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Classes of the head.
    pub fn classes(&self) -> usize {
        self.head.classes
    }

    /// Seconds per kind of work of the training steps so far.
    pub fn profile(&self) -> &StepProfile {
        &self.profile
    }

    /// Runs the network over `images` input rows `x`; in training (batch statistics) keeps
    /// what the backward pass needs.
    fn forward(&mut self, x: &[f32], images: usize, train: bool) -> Pass {
        let params = &self.params;
        let profile = &mut self.profile;
        let (mut current, mut size, stem) = match &mut self.stem {
            Some(stem) => {
                let t = Instant::now();
                let (cols, [oh, ow]) = im2col(x, images, self.input, stem.kernel, stem.stride);
                let conv = stem.conv.forward(params, &cols);
                let (h, norm) = stem.norm.forward(params, &conv, true, None, train);
                lap(&mut profile.stem, t, ());
                let tape = norm.map(|norm| StemTape { cols, conv, norm });
                (h, [oh, ow], tape)
            }
            None => (x.to_vec(), [self.input[0], self.input[1]], None),
        };
        let mut blocks = Vec::with_capacity(if train { self.blocks.len() } else { 0 });
        for block in &mut self.blocks {
            let (out, next, tape) = block.forward(params, &current, images, size, train, profile);
            let input = std::mem::replace(&mut current, out);
            if let Some(mut tape) = tape {
                tape.input = input;
                blocks.push(tape);
            }
            size = next;
        }
        let head = &mut self.head;
        let t = Instant::now();
        let conv = lap(
            &mut profile.pointwise_forward,
            t,
            head.conv.forward(params, &current),
        );
        let t = Instant::now();
        let (activated, norm) = lap(
            &mut profile.norm_forward,
            t,
            head.norm.forward(params, &conv, true, None, train),
        );
        let t = Instant::now();
        let features = head.conv.outputs;
        let pooled = pool(&activated, images, features);
        let mut logits = vec![0f32; images * head.classes];
        for row in logits.chunks_exact_mut(head.classes) {
            row.copy_from_slice(head.bias.of(params));
        }
        gemm_into(
            &mut logits,
            View::rows(&pooled, images, features),
            View::rows(head.weight.of(params), features, head.classes),
            true,
            false,
        );
        lap(&mut profile.head, t, ());
        let head = norm.map(|norm| HeadTape {
            input: current,
            conv,
            activated,
            norm,
        });
        Pass {
            logits,
            pooled,
            stem,
            blocks,
            head,
        }
    }

    /// Class logits `[images, classes]` of `images` input rows (inference: running
    /// statistics); `x` holds `images` rows of [`Self::input_len`] values.
    pub(super) fn logits(&self, x: &[f32], images: usize) -> Vec<f32> {
        self.inference(x, images).logits
    }

    /// Pooled features `[images, features]` of `images` input rows (inference).
    pub(super) fn features(&self, x: &[f32], images: usize) -> Vec<f32> {
        self.inference(x, images).pooled
    }

    fn inference(&self, x: &[f32], images: usize) -> Pass {
        // Inference changes nothing but the profile; a copy keeps `self` shared.
        let mut net = self.clone();
        net.forward(x, images, false)
    }

    /// One training step's forward and backward pass over `images` rows `x` (each of
    /// [`Self::input_len`] values) with `targets`: the gradients of every parameter (flat, in
    /// the order of [`Self::params`]), the batch's loss and correct predictions. BatchNorm uses
    /// (and updates the running statistics with) the batch's statistics. Rows and targets that
    /// do not fit the network are refused by name.
    pub fn gradients(
        &mut self,
        x: &[f32],
        images: usize,
        targets: &[u32],
    ) -> Result<(Vec<f32>, StepOutcome)> {
        if images == 0 || x.len() != images * self.input_len() || targets.len() != images {
            return Err(Error::invalid(
                "batch",
                format!(
                    "{} values and {} targets for {images} rows of {} values",
                    x.len(),
                    targets.len(),
                    self.input_len()
                ),
            ));
        }
        if let Some(t) = targets.iter().find(|&&t| t as usize >= self.head.classes) {
            return Err(Error::invalid(
                "target",
                format!(
                    "class id {t} but the head has {} classes",
                    self.head.classes
                ),
            ));
        }
        let pass = self.forward(x, images, true);
        let mut grads = vec![0f32; self.params.len()];
        let params = &self.params;
        let profile = &mut self.profile;
        let head = &self.head;
        let Some(head_tape) = pass.head else {
            unreachable!("a training forward pass keeps the head's tape")
        };
        let t = Instant::now();
        let classes = head.classes;
        let (logit_grad, outcome) = cross_entropy(&pass.logits, targets, classes);
        let features = head.conv.outputs;
        let mut weight_grad = vec![0f32; features * classes];
        gemm_into(
            &mut weight_grad,
            View::rows(&pass.pooled, images, features).t(),
            View::rows(&logit_grad, images, classes),
            false,
            false,
        );
        head.weight.of_mut(&mut grads).copy_from_slice(&weight_grad);
        let bias_grad = head.bias.of_mut(&mut grads);
        for row in logit_grad.chunks_exact(classes) {
            for (b, &g) in bias_grad.iter_mut().zip(row) {
                *b += g;
            }
        }
        let mut pooled_grad = vec![0f32; images * features];
        gemm_into(
            &mut pooled_grad,
            View::rows(&logit_grad, images, classes),
            View::rows(head.weight.of(params), features, classes).t(),
            false,
            false,
        );
        // Pooling's gradient: each pixel gets its image's gradient over the pixel count.
        let pixels = head_tape.conv.len() / (images * features).max(1);
        let mut grad = Vec::with_capacity(head_tape.conv.len());
        for image in pooled_grad.chunks_exact(features) {
            let scaled: Vec<f32> = image.iter().map(|g| g / pixels as f32).collect();
            for _ in 0..pixels {
                grad.extend_from_slice(&scaled);
            }
        }
        lap(&mut profile.head, t, ());
        let t = Instant::now();
        head.norm.backward(
            params,
            &mut grads,
            &mut grad,
            &head_tape.conv,
            Some(&head_tape.activated),
            &head_tape.norm,
        );
        lap(&mut profile.norm_backward, t, ());
        let t = Instant::now();
        let wants_input = !self.blocks.is_empty() || self.stem.is_some();
        let mut grad = lap(
            &mut profile.pointwise_backward,
            t,
            head.conv
                .backward(params, &mut grads, &grad, &head_tape.input, wants_input),
        );
        let mut first_input = None;
        drop(head_tape);
        let mut blocks = pass.blocks;
        while let Some(tape) = blocks.pop() {
            let index = blocks.len();
            let Some(g) = grad.take() else { break };
            let block = &self.blocks[index];
            let wants_input = index > 0 || self.stem.is_some();
            grad = block.backward(params, &mut grads, g, &tape, wants_input, profile);
            if index == 0 {
                first_input = Some(tape.input);
            }
        }
        if let (Some(stem), Some(tape), Some(mut g), Some(activated)) =
            (&self.stem, pass.stem, grad, first_input)
        {
            let t = Instant::now();
            stem.norm.backward(
                params,
                &mut grads,
                &mut g,
                &tape.conv,
                Some(&activated),
                &tape.norm,
            );
            stem.conv
                .backward(params, &mut grads, &g, &tape.cols, false);
            lap(&mut profile.stem, t, ());
        }
        Ok((grads, outcome))
    }

    /// Adds `seconds` of optimizer and batch-copy time to the profile.
    pub(crate) fn record(&mut self, optimizer: f64, batch_copy: f64) {
        self.profile.optimizer += optimizer;
        self.profile.batch_copy += batch_copy;
    }
}

/// Softmax cross-entropy of `logits` (rows of `classes`) against `targets`: the gradient of
/// the batch's mean loss with respect to the logits, the summed loss and correct predictions.
fn cross_entropy(logits: &[f32], targets: &[u32], classes: usize) -> (Vec<f32>, StepOutcome) {
    let rows = targets.len().max(1) as f32;
    let mut loss_sum = 0f64;
    let mut correct = 0;
    let mut grad = vec![0f32; logits.len()];
    for ((row, grad), &target) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(targets)
    {
        let target = target as usize;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
        loss_sum += sum.ln() - f64::from(row[target] - max);
        let best = (0..classes).fold(0, |best, i| if row[i] > row[best] { i } else { best });
        correct += usize::from(best == target);
        for (i, (g, &v)) in grad.iter_mut().zip(row).enumerate() {
            let p = (f64::from(v - max).exp() / sum) as f32;
            *g = (p - if i == target { 1.0 } else { 0.0 }) / rows;
        }
    }
    (grad, StepOutcome { loss_sum, correct })
}
