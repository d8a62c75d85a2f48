//! A small CNN trained from scratch, for users without pretrained weights: three
//! conv-BN-ReLU-maxpool stages (32, 64, 128 channels) and global average pooling.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Width of the pooled features.
pub const FEATURES: usize = 128;

/// One conv-BN-ReLU-maxpool stage.
#[derive(Module, Debug)]
struct Stage {
    conv: Conv2d,
    bn: BatchNorm,
    pool: MaxPool2d,
}

impl Stage {
    fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        Stage {
            conv: Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(c_out).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool
            .forward(relu(self.bn.forward(self.conv.forward(x))))
    }
}

/// The small CNN backbone.
#[derive(Module, Debug)]
pub struct SmallCnn {
    stages: Vec<Stage>,
}

impl SmallCnn {
    /// A randomly initialised network (seed the device first for reproducible weights).
    pub fn new(device: &Device) -> Self {
        SmallCnn {
            stages: vec![
                Stage::new(3, 32, device),
                Stage::new(32, 64, device),
                Stage::new(64, FEATURES, device),
            ],
        }
    }

    /// Pooled features `[n, 128]` of a `[n, 3, h, w]` batch.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut h = x;
        for stage in &self.stages {
            h = stage.forward(h);
        }
        let [n, c, hh, ww] = h.dims();
        h.reshape([n, c, hh * ww]).mean_dim(2).reshape([n, c])
    }
}
