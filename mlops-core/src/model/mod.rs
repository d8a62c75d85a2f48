//! Models: the EfficientNet-Lite0 backbone with pretrained ImageNet weights, a small CNN for
//! training from scratch, and the classifier (backbone + linear head).

pub mod classifier;
pub mod cnn;
pub mod efficientnet;
pub mod weights;

pub use classifier::{Backbone, BackboneKind, Classifier};
pub use cnn::SmallCnn;
pub use efficientnet::EfficientNetLite0;
