//! # mlops-core
//!
//! The library behind the `mlops` toolkit: an MLOps pipeline for image classification under
//! distribution shift. One module per stage; the main entry points are re-exported at the
//! crate root.
//!
//! | stage | module | feature |
//! |---|---|---|
//! | simulate a shift: corrupt images (boxes, mosaic, line, mixed), in memory or folder to folder | [`corrupt`] | always |
//! | list class folders into manifests, read and write them, split them | [`dataset`] | always |
//! | decode with limits, encode keeping colour types, atomic writes | [`imageio`] | always |
//! | choose replay samples (random, core pairs, k-center, herding) | [`select`](mod@select) | always |
//! | detect a shift: MMD, KS on principal components, BBSD, a domain classifier | [`drift`] | always |
//! | follow and cancel long operations | [`control`] | always |
//! | seeds and hashes | [`seed`] | always |
//! | errors callers can match | [`error`] | always |
//! | the backbones (EfficientNet-Lite0, a small CNN), the classifier, pretrained weights | [`model`] | `train` |
//! | the fast CPU inference path of the frozen backbone | [`infer`] | `train` |
//! | image preprocessing | [`vision`] | `train` |
//! | the Burn backend to compute on | [`backend`] | `train` |
//! | training and evaluation | [`train`](mod@train) | `train` |
//! | model packages in an object store (folder, memory, S3 with `s3`) | [`artifact`] | `train` |
//! | predictions from a model | [`predict`] | `train` |
//! | embeddings of images for selection | [`embed`] | `train` |
//! | the monday -> tuesday replay experiment | [`experiment`] | `train` |
//! | the closed loop: adapt with replay, promote a champion, hot-swap it | [`adapt`](mod@adapt) | `train` |
//! | its charts | [`report`] | `charts` |
//! | the PostgreSQL generator and exactly-once streaming predictor | [`db`] | `postgres` |
//! | Kafka publisher and consumer group | [`kafka`] | `kafka` |
//!
//! ## Layers
//!
//! Modules import in one direction, checked by a test (`tests/surface.rs`):
//!
//! 1. **leaves** know no stage: [`paths`], [`error`], `json_float`, `names`, [`seed`],
//!    [`stats`], [`imageio`], `blocking`, [`control`] (a step's detail is the stage's own type,
//!    see [`control::StepDetail`]);
//! 2. **stages**, each knowing the leaves and the stages before it: [`corrupt`], [`dataset`],
//!    [`select`](mod@select), [`drift`], [`backend`], [`vision`], [`model`], [`infer`],
//!    [`train`](mod@train), [`artifact`] (a package's metadata, with the lineage and metrics
//!    other stages write into it), [`predict`], [`embed`];
//! 3. **pipelines** that combine stages: [`experiment`], [`report`], [`adapt`](mod@adapt);
//! 4. **services** that run pipelines against PostgreSQL and Kafka: [`db`], [`kafka`].
//!
//! A type two stages share lives with the lower one.
//!
//! Features: `default-features = false` gives the always-on modules only (no Burn, object
//! store, plotters, PostgreSQL or Kafka client in the build); the defaults are `train`, `s3`,
//! `charts` and `postgres`; `kafka` (a C library built from source) is opt-in.
//!
//! Every random choice takes a seed; the same seed and input give the same bytes. The library
//! never prints: long operations report through a [`Control`], diagnostics go to the `log`
//! facade.
//!
//! ## Corrupt an image
//!
//! ```
//! use mlops_core::Corruption;
//! use image::{DynamicImage, RgbImage};
//!
//! let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 48, image::Rgb([10, 20, 30])));
//! let corruption: Corruption = "mixed".parse()?;
//! let (a, _) = corruption.apply_seeded(&image, 7)?;
//! let (b, _) = corruption.apply_seeded(&image, 7)?;
//! assert_eq!(a.as_bytes(), b.as_bytes()); // same seed, same pixels
//! assert_eq!((a.width(), a.height()), (64, 48));
//! # Ok::<(), mlops_core::Error>(())
//! ```
//!
//! ## List class folders into a manifest
//!
//! ```
//! use mlops_core::{ListOptions, list_dataset};
//!
//! let root = tempfile::tempdir().map_err(|e| mlops_core::Error::io("tmp", e))?;
//! for (class, n) in [("brick", 2), ("wood", 3)] {
//!     std::fs::create_dir(root.path().join(class)).map_err(|e| mlops_core::Error::io(class, e))?;
//!     for i in 0..n {
//!         let path = root.path().join(class).join(format!("{i}.png"));
//!         image::RgbImage::new(8, 8).save(&path).map_err(|e| mlops_core::Error::Encode { path, source: e })?;
//!     }
//! }
//! let listing = list_dataset(root.path(), &ListOptions::default())?;
//! assert_eq!(listing.classes.names(), ["brick", "wood"]);
//! assert_eq!(listing.manifest.samples.len(), 5);
//! # Ok::<(), mlops_core::Error>(())
//! ```
//!
//! ## Select replay samples
//!
//! ```
//! use mlops_core::{Budget, Embeddings, Strategy, select};
//!
//! let rows = Embeddings::new(vec![0.0, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0], 2)?;
//! let picked = select(&Strategy::KCenterGreedy, &rows, &[0, 0, 1, 1], Budget::Count(2), 1)?;
//! assert_eq!(picked.indices.len(), 2);
//! # Ok::<(), mlops_core::Error>(())
//! ```
//!
//! ## Train, package, load and predict
//!
//! A small CNN from scratch on a few synthetic images (the real pipeline starts from the
//! pretrained EfficientNet-Lite0, see [`model::weights::load_lite0`]), stored in memory:
//!
#![cfg_attr(feature = "train", doc = "```")]
#![cfg_attr(not(feature = "train"), doc = "```ignore")]
//! use mlops_core::model::{Backbone, BackboneKind};
//! use mlops_core::{
//!     ClassMap, Control, ImageSet, Manifest, ModelPackage, PackageInfo, Predictor, Preprocess,
//!     Sample, TrainConfig, TrainMode, train,
//! };
//!
//! let dir = tempfile::tempdir().map_err(|e| mlops_core::Error::io("tmp", e))?;
//! let mut samples = Vec::new();
//! for i in 0..8u8 {
//!     let class = u32::from(i % 2);
//!     let grey = if class == 0 { 30 } else { 220 };
//!     let path = dir.path().join(format!("{i}.png"));
//!     image::RgbImage::from_pixel(32, 32, image::Rgb([grey, grey, grey])).save(&path)
//!         .map_err(|e| mlops_core::Error::Encode { path, source: e })?;
//!     samples.push(Sample { image_path: format!("{i}.png"), target: class });
//! }
//! let manifest = Manifest { samples };
//! let set = ImageSet { root: dir.path(), manifest: &manifest };
//! let classes = ClassMap::new(["dark", "light"])?;
//! let config = TrainConfig {
//!     preprocess: Preprocess { size: 32, ..Preprocess::default() },
//!     mode: TrainMode::FineTune,
//!     epochs: 3,
//!     batch_size: 4,
//!     ..TrainConfig::default()
//! };
//! let device = config.backend.device();
//! let backbone = Backbone::init(BackboneKind::SmallCnn, &device);
//! let outcome = train(backbone, &classes, &set, &set, &config, &Control::new())?;
//! assert_eq!(outcome.history.len(), 3);
//!
//! let (package, _) = ModelPackage::new(outcome.model, classes, config.preprocess, PackageInfo::default())?;
//! package.save("memory://docs/model")?;
//! let predictor = Predictor::load("memory://docs/model", config.backend)?;
//! let predictions = predictor.predict_paths(&[dir.path().join("0.png")])?;
//! assert!(predictions[0].is_ok());
//! # Ok::<(), mlops_core::Error>(())
//! ```
//!
//! ## Stream predictions from PostgreSQL
//!
//! Needs a server, so not run here (the integration tests run it against a real one):
//!
//! ```no_run
//! # #[cfg(feature = "postgres")] {
//! use mlops_core::db::{StreamConfig, stream_predictions};
//! use mlops_core::{ComputeBackend, Control, Predictor};
//!
//! let predictor = Predictor::load("models/monday", ComputeBackend::Flex)?;
//! let config = StreamConfig {
//!     source_url: Some("postgresql://postgres@127.0.0.1:5432/postgres".into()),
//!     data_root: "data".into(),
//!     exit_when_idle: true,
//!     ..StreamConfig::default()
//! };
//! let stats = stream_predictions(&config, &predictor, "monday", &Control::new())?;
//! println!("{} rows predicted", stats.predicted);
//! # }
//! # Ok::<(), mlops_core::Error>(())
//! ```

// The module table links every module; with some features off, some have no page.
#![cfg_attr(
    not(all(feature = "charts", feature = "kafka")),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(feature = "train")]
pub mod adapt;
#[cfg(feature = "train")]
pub mod artifact;
#[cfg(feature = "train")]
pub mod backend;
#[cfg(feature = "train")]
mod blocking;
pub mod control;
pub mod corrupt;
pub mod dataset;
#[cfg(feature = "postgres")]
pub mod db;
pub mod drift;
#[cfg(feature = "train")]
pub mod embed;
pub mod error;
#[cfg(feature = "train")]
pub mod experiment;
pub mod imageio;
#[cfg(feature = "train")]
pub mod infer;
mod json_float;
#[cfg(feature = "kafka")]
pub mod kafka;
mod linalg;
#[cfg(feature = "train")]
pub mod model;
mod names;
pub mod paths;
#[cfg(feature = "train")]
pub mod predict;
#[cfg(feature = "charts")]
pub mod report;
#[cfg(feature = "train")]
pub mod robustness;
pub mod seed;
pub mod select;
pub mod stats;
#[cfg(feature = "train")]
pub mod train;
#[cfg(feature = "train")]
pub mod vision;

pub use control::{Control, Progress, StepDetail};
pub use corrupt::{Corruption, CorruptionKind, FolderOptions, FolderReport, corrupt_folder};
pub use dataset::{ClassMap, ListOptions, Listing, Manifest, Sample, list_dataset};
pub use drift::{DriftDetector, DriftOptions, DriftResult};
pub use error::{Error, Result};
pub use select::{Budget, Distance, Embeddings, Selection, Strategy, select};

#[cfg(feature = "train")]
pub use adapt::{AdaptConfig, AdaptData, Adaptation, PromotionPolicy, Registry, adapt, promote};
#[cfg(feature = "train")]
pub use artifact::{ModelPackage, PackageInfo, PackageMetadata, list_packages};
#[cfg(feature = "train")]
pub use backend::ComputeBackend;
#[cfg(feature = "train")]
pub use experiment::{ExperimentConfig, ExperimentResults, Shift, ShiftData, run_shift_experiment};
#[cfg(feature = "train")]
pub use infer::{FeatureEngine, FeatureExtractor};
#[cfg(feature = "train")]
pub use predict::{Prediction, Predictor};
#[cfg(feature = "train")]
pub use train::{Evaluation, ImageSet, TrainConfig, TrainMode, TrainOutcome, train};
#[cfg(feature = "train")]
pub use vision::Preprocess;
