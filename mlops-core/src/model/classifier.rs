//! A classifier: a backbone that maps images to pooled features, and a linear head.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::cnn::{self, SmallCnn};
use super::efficientnet::{self, EfficientNetLite0};

/// Which backbone a classifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    /// EfficientNet-Lite0 (1280 features), normally with ImageNet weights.
    #[serde(rename = "efficientnet_lite0")]
    EfficientNetLite0,
    /// The small CNN (128 features), trained from scratch.
    SmallCnn,
}

impl BackboneKind {
    /// Width of the backbone's pooled features.
    pub fn features(self) -> usize {
        match self {
            BackboneKind::EfficientNetLite0 => efficientnet::FEATURES,
            BackboneKind::SmallCnn => cnn::FEATURES,
        }
    }

    /// The name used in package metadata and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::EfficientNetLite0 => "efficientnet_lite0",
            BackboneKind::SmallCnn => "small_cnn",
        }
    }
}

/// A backbone network.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone {
    /// EfficientNet-Lite0.
    EfficientNetLite0(EfficientNetLite0),
    /// The small CNN.
    SmallCnn(SmallCnn),
}

impl Backbone {
    /// A randomly initialised backbone of `kind` (weights to be loaded or trained).
    pub fn init(kind: BackboneKind, device: &Device) -> Self {
        match kind {
            BackboneKind::EfficientNetLite0 => {
                Backbone::EfficientNetLite0(EfficientNetLite0::new(false, device))
            }
            BackboneKind::SmallCnn => Backbone::SmallCnn(SmallCnn::new(device)),
        }
    }

    /// Which kind this is.
    pub fn kind(&self) -> BackboneKind {
        match self {
            Backbone::EfficientNetLite0(_) => BackboneKind::EfficientNetLite0,
            Backbone::SmallCnn(_) => BackboneKind::SmallCnn,
        }
    }

    /// Pooled features `[n, d]` of a `[n, 3, h, w]` batch.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::EfficientNetLite0(m) => m.features(x),
            Backbone::SmallCnn(m) => m.features(x),
        }
    }
}

/// Backbone + linear head.
#[derive(Module, Debug)]
pub struct Classifier {
    /// Maps images to features.
    pub backbone: Backbone,
    /// Maps features to class logits.
    pub head: Linear,
}

impl Classifier {
    /// A classifier for `classes` classes on `backbone`, with a fresh head (seed the device
    /// first for a reproducible head).
    pub fn new(backbone: Backbone, classes: usize, device: &Device) -> Self {
        let head = LinearConfig::new(backbone.kind().features(), classes).init(device);
        Classifier { backbone, head }
    }

    /// Class logits `[n, classes]` of a `[n, 3, h, w]` batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.features(x))
    }
}
