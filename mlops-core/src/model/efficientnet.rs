//! EfficientNet-Lite0 (Tan and Le, 2019; the "lite" variant: no squeeze-excitation, ReLU6,
//! fixed stem and head), with TF-style SAME padding and BatchNorm epsilon 1e-3, so ImageNet
//! weights trained in TensorFlow and ported to PyTorch load unchanged.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

/// Width of the pooled features.
pub const FEATURES: usize = 1280;

/// BatchNorm epsilon of the TensorFlow original.
const BN_EPSILON: f64 = 1e-3;

fn relu6(x: Tensor<4>) -> Tensor<4> {
    x.clamp(0.0, 6.0)
}

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device)
}

fn bn(features: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(features)
        .with_epsilon(BN_EPSILON)
        .init(device)
}

/// An inverted-residual block: 1x1 expansion (absent when the ratio is 1), depthwise KxK,
/// 1x1 projection; identity shortcut when stride is 1 and widths match.
#[derive(Module, Debug)]
pub struct MbConv {
    pub(crate) expand_conv: Option<Conv2d>,
    pub(crate) bn0: Option<BatchNorm>,
    pub(crate) depthwise_conv: Conv2d,
    pub(crate) bn1: BatchNorm,
    pub(crate) project_conv: Conv2d,
    pub(crate) bn2: BatchNorm,
    pub(crate) skip: bool,
}

impl MbConv {
    fn new(
        expand: usize,
        kernel: usize,
        stride: usize,
        c_in: usize,
        c_out: usize,
        device: &Device,
    ) -> Self {
        let hidden = c_in * expand;
        let (expand_conv, bn0) = if expand == 1 {
            (None, None)
        } else {
            (
                Some(conv([c_in, hidden], 1, 1, 1, device)),
                Some(bn(hidden, device)),
            )
        };
        MbConv {
            expand_conv,
            bn0,
            depthwise_conv: conv([hidden, hidden], kernel, stride, hidden, device),
            bn1: bn(hidden, device),
            project_conv: conv([hidden, c_out], 1, 1, 1, device),
            bn2: bn(c_out, device),
            skip: stride == 1 && c_in == c_out,
        }
    }

    pub(crate) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let (Some(c), Some(b)) = (&self.expand_conv, &self.bn0) {
            h = relu6(b.forward(c.forward(h)));
        }
        h = relu6(self.bn1.forward(self.depthwise_conv.forward(h)));
        h = self.bn2.forward(self.project_conv.forward(h));
        if self.skip { h + x } else { h }
    }
}

/// Seconds per kind of operation of Burn's forward pass ([`EfficientNetLite0::features_timed`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpTimes {
    /// The 3x3 stride-2 stem convolution.
    pub stem: f64,
    /// 1x1 expansion convolutions.
    pub expand: f64,
    /// Depthwise convolutions.
    pub depthwise: f64,
    /// 1x1 projection convolutions.
    pub project: f64,
    /// The 1x1 head convolution.
    pub head: f64,
    /// Every BatchNorm.
    pub batch_norm: f64,
    /// Every ReLU6 (clamp).
    pub clamp: f64,
    /// Residual sums.
    pub residual_add: f64,
    /// Global average pooling.
    pub pooling: f64,
}

impl OpTimes {
    /// Total seconds.
    pub fn total(&self) -> f64 {
        self.stem
            + self.expand
            + self.depthwise
            + self.project
            + self.head
            + self.batch_norm
            + self.clamp
            + self.residual_add
            + self.pooling
    }
}

/// Runs `op` and waits for its result (Burn's CPU backends compute eagerly; reading one value
/// makes sure), adding the wall time to `slot`.
fn timed<const D: usize>(slot: &mut f64, op: impl FnOnce() -> Tensor<D>) -> Tensor<D> {
    let started = std::time::Instant::now();
    let out = op();
    let _ = out.clone().narrow(0, 0, 1).into_data();
    *slot += started.elapsed().as_secs_f64();
    out
}

/// EfficientNet-Lite0's stages: (expansion, kernel, stride of the first block, input width,
/// output width, blocks).
pub const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// Inverted-residual blocks of the network.
pub const BLOCKS: usize = 16;

/// Units partial fine-tuning can train, counted from the end: the head convolution, then the
/// blocks from the last one back (17 = everything after the stem).
pub const TAIL_UNITS: usize = BLOCKS + 1;

/// (height, width, channels) of the activation after the stem and the first `blocks` blocks
/// for a `height x width` input (SAME padding: every stride-2 layer halves, rounding up).
pub fn activation_shape(height: usize, width: usize, blocks: usize) -> [usize; 3] {
    let (mut h, mut w, mut c) = (height.div_ceil(2), width.div_ceil(2), 32);
    let strides = STAGES
        .iter()
        .flat_map(|&(_, _, stride, _, c_out, repeats)| {
            (0..repeats).map(move |i| (if i == 0 { stride } else { 1 }, c_out))
        })
        .take(blocks);
    for (stride, c_out) in strides {
        if stride == 2 {
            (h, w) = (h.div_ceil(2), w.div_ceil(2));
        }
        c = c_out;
    }
    [h, w, c]
}

/// The EfficientNet-Lite0 network. Field names follow the PyTorch port's state-dict keys
/// without their leading underscores.
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    pub(crate) conv_stem: Conv2d,
    pub(crate) bn0: BatchNorm,
    pub(crate) blocks: Vec<MbConv>,
    pub(crate) conv_head: Conv2d,
    pub(crate) bn1: BatchNorm,
    /// The ImageNet classifier (1000 classes); `None` for a backbone only.
    fc: Option<Linear>,
}

impl EfficientNetLite0 {
    /// A randomly initialised network; with `imagenet_head` it keeps the 1000-class classifier.
    pub fn new(imagenet_head: bool, device: &Device) -> Self {
        let mut blocks = Vec::new();
        for (expand, kernel, stride, c_in, c_out, repeats) in STAGES {
            for i in 0..repeats {
                let (s, c) = if i == 0 { (stride, c_in) } else { (1, c_out) };
                blocks.push(MbConv::new(expand, kernel, s, c, c_out, device));
            }
        }
        EfficientNetLite0 {
            conv_stem: conv([3, 32], 3, 2, 1, device),
            bn0: bn(32, device),
            blocks,
            conv_head: conv([320, FEATURES], 1, 1, 1, device),
            bn1: bn(FEATURES, device),
            fc: imagenet_head.then(|| LinearConfig::new(FEATURES, 1000).init(device)),
        }
    }

    /// Pooled features `[n, 1280]` of a `[n, 3, h, w]` batch.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut h = relu6(self.bn0.forward(self.conv_stem.forward(x)));
        for block in &self.blocks {
            h = block.forward(h);
        }
        h = relu6(self.bn1.forward(self.conv_head.forward(h)));
        let [n, c, hh, ww] = h.dims();
        h.reshape([n, c, hh * ww]).mean_dim(2).reshape([n, c])
    }

    /// The activation `[n, c, h, w]` after the stem and the first `blocks` blocks (the input of
    /// the remaining ones).
    pub fn trunk(&self, x: Tensor<4>, blocks: usize) -> Tensor<4> {
        let mut h = relu6(self.bn0.forward(self.conv_stem.forward(x)));
        for block in self.blocks.iter().take(blocks) {
            h = block.forward(h);
        }
        h
    }

    /// [`Self::features`], timing every kind of operation (for profiles; slower than
    /// [`Self::features`] by the synchronisation after each operation).
    pub fn features_timed(&self, x: Tensor<4>) -> (Tensor<2>, OpTimes) {
        let mut t = OpTimes::default();
        let mut h = timed(&mut t.stem, || self.conv_stem.forward(x));
        h = timed(&mut t.batch_norm, || self.bn0.forward(h));
        h = timed(&mut t.clamp, || relu6(h));
        for b in &self.blocks {
            let input = h.clone();
            if let (Some(c), Some(bn)) = (&b.expand_conv, &b.bn0) {
                h = timed(&mut t.expand, || c.forward(h));
                h = timed(&mut t.batch_norm, || bn.forward(h));
                h = timed(&mut t.clamp, || relu6(h));
            }
            h = timed(&mut t.depthwise, || b.depthwise_conv.forward(h));
            h = timed(&mut t.batch_norm, || b.bn1.forward(h));
            h = timed(&mut t.clamp, || relu6(h));
            h = timed(&mut t.project, || b.project_conv.forward(h));
            h = timed(&mut t.batch_norm, || b.bn2.forward(h));
            if b.skip {
                h = timed(&mut t.residual_add, || h + input);
            }
        }
        h = timed(&mut t.head, || self.conv_head.forward(h));
        h = timed(&mut t.batch_norm, || self.bn1.forward(h));
        h = timed(&mut t.clamp, || relu6(h));
        let [n, c, hh, ww] = h.dims();
        let started = std::time::Instant::now();
        let pooled = h.reshape([n, c, hh * ww]).mean_dim(2).reshape([n, c]);
        let _ = pooled.clone().narrow(0, 0, 1).into_data();
        t.pooling += started.elapsed().as_secs_f64();
        (pooled, t)
    }

    /// ImageNet logits `[n, 1000]`; `None` when the network has no ImageNet head.
    pub fn imagenet_logits(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let fc = self.fc.as_ref()?;
        Some(fc.forward(self.features(x)))
    }

    /// ImageNet logits `[n, 1000]` of pooled features `[n, 1280]` (from [`Self::features`] or
    /// the fast inference path, [`crate::infer::Lite0Inference`]); `None` without the head.
    pub fn imagenet_logits_of_features(&self, features: Tensor<2>) -> Option<Tensor<2>> {
        Some(self.fc.as_ref()?.forward(features))
    }

    /// Drops the ImageNet classifier, keeping the backbone.
    pub fn without_imagenet_head(mut self) -> Self {
        self.fc = None;
        self
    }
}
