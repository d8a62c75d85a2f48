//! Models: the EfficientNet-Lite0 backbone with pretrained ImageNet weights, a small CNN for
//! training from scratch, and the classifier (backbone + linear head).

pub(crate) mod classifier;
pub(crate) mod cnn;
pub(crate) mod efficientnet;
pub mod weights;

pub use classifier::{Backbone, BackboneKind, Classifier, seeded_linear};
pub use cnn::SmallCnn;
pub use efficientnet::{
    BLOCKS, EfficientNetLite0, MbConv, OpTimes, STAGES, TAIL_UNITS, activation_shape,
};
