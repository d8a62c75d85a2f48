//! # mlops-core
//!
//! The library behind the `mlops` toolkit: an MLOps pipeline for image classification under
//! distribution shift. Each pipeline stage lives in one module:
//!
//! - [`corrupt`]: simulate a shift by corrupting images (boxes, mosaic, line, mixed), in memory
//!   or folder to folder.
//! - [`dataset`]: list class folders into manifests, read and write them, split them.
//! - [`imageio`]: decoding with limits, encoding that keeps colour types, atomic writes.
//! - [`infer`]: the fast CPU inference path of the frozen backbone, which every stage that
//!   needs backbone features goes through.
//!
//! Every random choice takes a seed; the same seed and input give the same bytes.

pub mod artifact;
pub mod corrupt;
pub mod dataset;
#[cfg(feature = "postgres")]
pub mod db;
pub mod embed;
pub mod error;
pub mod experiment;
pub mod imageio;
pub mod infer;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod model;
pub mod predict;
mod progress;
pub mod report;
pub mod seed;
pub mod select;
pub mod train;
pub mod vision;

pub use error::{Error, Result};
