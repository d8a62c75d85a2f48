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
    expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    depthwise_conv: Conv2d,
    bn1: BatchNorm,
    project_conv: Conv2d,
    bn2: BatchNorm,
    skip: bool,
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

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let (Some(c), Some(b)) = (&self.expand_conv, &self.bn0) {
            h = relu6(b.forward(c.forward(h)));
        }
        h = relu6(self.bn1.forward(self.depthwise_conv.forward(h)));
        h = self.bn2.forward(self.project_conv.forward(h));
        if self.skip { h + x } else { h }
    }
}

/// (expansion, kernel, stride of the first block, input width, output width, blocks).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// The EfficientNet-Lite0 network. Field names follow the PyTorch port's state-dict keys
/// without their leading underscores.
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    conv_stem: Conv2d,
    bn0: BatchNorm,
    blocks: Vec<MbConv>,
    conv_head: Conv2d,
    bn1: BatchNorm,
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

    /// ImageNet logits `[n, 1000]`; `None` when the network has no ImageNet head.
    pub fn imagenet_logits(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let fc = self.fc.as_ref()?;
        Some(fc.forward(self.features(x)))
    }

    /// Drops the ImageNet classifier, keeping the backbone.
    pub fn without_imagenet_head(mut self) -> Self {
        self.fc = None;
        self
    }
}
