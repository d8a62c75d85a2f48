//! Prediction with a trained model: from file paths, decoded images or preprocessed batches.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use image::DynamicImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::artifact::{ModelPackage, PackageMetadata};
use crate::backend::ComputeBackend;
use crate::dataset::ClassMap;
use crate::drift::ReferenceSample;
use crate::error::{Error, Result};
use crate::imageio::{DEFAULT_MAX_ALLOC, decode, read_image};
use crate::infer::{FeatureEngine, FeatureExtractor, LinearHead};
use crate::model::Classifier;
use crate::paths::read_under;
use crate::vision::Preprocess;

/// One prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Predicted class id (the most probable).
    pub class_id: u32,
    /// Its name.
    pub class_name: String,
    /// Probability of every class, in id order.
    pub probabilities: Vec<f32>,
}

impl Prediction {
    /// Probability of the predicted class.
    pub fn confidence(&self) -> f32 {
        self.probabilities[self.class_id as usize]
    }
}

/// A model ready to predict: the backbone on the fast inference path
/// ([`crate::infer::FeatureExtractor`]) and the linear head.
#[derive(Debug)]
pub struct Predictor {
    extractor: FeatureExtractor,
    head: LinearHead,
    classes: ClassMap,
    preprocess: Preprocess,
    /// The package's drift reference sample, if it has one.
    reference: Option<ReferenceSample>,
    /// Where the model was loaded (for [`Predictor::load_like`]).
    device: Device,
    /// Images decoded and predicted together: [`Predictor::predict_paths`] holds at most two
    /// such chunks decoded (the one predicted and the next one, decoded meanwhile).
    pub batch_size: usize,
}

/// A prediction and the backbone features it was computed from.
pub type PredictionWithFeatures = (Prediction, Vec<f32>);

impl Predictor {
    /// A predictor for a model; the backbone runs on the fast inference path where it has one,
    /// otherwise on `device`.
    pub fn new(
        model: Classifier,
        classes: ClassMap,
        preprocess: Preprocess,
        device: Device,
    ) -> Result<Self> {
        Self::with_engine(model, classes, preprocess, device, FeatureEngine::Fast)
    }

    /// [`Predictor::new`] on a chosen feature engine ([`FeatureEngine::Burn`]: the reference).
    pub fn with_engine(
        model: Classifier,
        classes: ClassMap,
        preprocess: Preprocess,
        device: Device,
        engine: FeatureEngine,
    ) -> Result<Self> {
        let extractor = FeatureExtractor::with_engine(&model.backbone, &device, engine)?;
        let device_kept = device.clone();
        let head = LinearHead::new(&model.head)?;
        if head.inputs() != extractor.dim() {
            return Err(Error::invalid(
                "head",
                format!(
                    "takes {} features, the backbone gives {}",
                    head.inputs(),
                    extractor.dim()
                ),
            ));
        }
        if head.outputs() != classes.len() {
            return Err(Error::invalid(
                "head",
                format!(
                    "has {} outputs for {} classes",
                    head.outputs(),
                    classes.len()
                ),
            ));
        }
        Ok(Predictor {
            extractor,
            head,
            classes,
            preprocess,
            reference: None,
            device: device_kept,
            batch_size: 32,
        })
    }

    /// A predictor for a loaded package.
    pub fn from_package(package: ModelPackage, device: Device) -> Result<Self> {
        let ModelPackage {
            model,
            metadata,
            reference,
        } = package;
        Predictor::new(model, metadata.classes, metadata.preprocess, device)
            .map(|p| p.with_reference(reference))
    }

    /// Loads the package at `uri` (see [`crate::artifact`]); backbones without a fast path run
    /// on `backend`.
    pub fn load(uri: &str, backend: ComputeBackend) -> Result<Self> {
        Self::load_with_engine(uri, backend, FeatureEngine::Fast)
    }

    /// [`Predictor::load`] on a chosen feature engine.
    pub fn load_with_engine(
        uri: &str,
        backend: ComputeBackend,
        engine: FeatureEngine,
    ) -> Result<Self> {
        let device = backend.device();
        let ModelPackage {
            model,
            metadata,
            reference,
        } = ModelPackage::load(uri, &device)?;
        Predictor::with_engine(model, metadata.classes, metadata.preprocess, device, engine)
            .map(|p| p.with_reference(reference))
    }

    /// Loads the package at `uri` on this predictor's device and feature engine, with its
    /// batch size (what a stream swaps to); returns the package's metadata as well.
    pub fn load_like(&self, uri: &str) -> Result<(Self, PackageMetadata)> {
        let ModelPackage {
            model,
            metadata,
            reference,
        } = ModelPackage::load(uri, &self.device)?;
        let mut predictor = Predictor::with_engine(
            model,
            metadata.classes.clone(),
            metadata.preprocess,
            self.device.clone(),
            self.extractor.engine(),
        )?
        .with_reference(reference);
        predictor.batch_size = self.batch_size;
        Ok((predictor, metadata))
    }

    /// The class map.
    pub fn classes(&self) -> &ClassMap {
        &self.classes
    }

    /// The preprocessing applied to inputs.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// What computes the backbone features.
    pub fn extractor(&self) -> &FeatureExtractor {
        &self.extractor
    }

    /// This predictor with a drift reference sample (what [`crate::drift::DriftMonitor`]s of
    /// its stream compare with).
    pub fn with_reference(mut self, reference: Option<ReferenceSample>) -> Self {
        self.reference = reference;
        self
    }

    /// The model's drift reference sample, if its package has one.
    pub fn reference(&self) -> Option<&ReferenceSample> {
        self.reference.as_ref()
    }

    /// Predicts already preprocessed CHW images (see [`Preprocess::to_chw`]).
    pub fn predict_chw(&self, chw: &[Vec<f32>]) -> Result<Vec<Prediction>> {
        let refs: Vec<&[f32]> = chw.iter().map(Vec::as_slice).collect();
        self.predict_slices(&refs)
    }

    fn predict_slices(&self, chw: &[&[f32]]) -> Result<Vec<Prediction>> {
        self.predict_slices_with_features(chw).map(|(p, _)| p)
    }

    /// Predictions and the backbone features they were computed from (row-major, one row of
    /// [`FeatureExtractor::dim`] values per image): what a drift monitor compares.
    pub fn predict_chw_with_features(
        &self,
        chw: &[Vec<f32>],
    ) -> Result<(Vec<Prediction>, Vec<f32>)> {
        let refs: Vec<&[f32]> = chw.iter().map(Vec::as_slice).collect();
        self.predict_slices_with_features(&refs)
    }

    /// Like [`Predictor::predict_images`], also returning the backbone features.
    pub fn predict_images_with_features(
        &self,
        images: &[DynamicImage],
    ) -> Result<(Vec<Prediction>, Vec<f32>)> {
        let chw: Vec<Vec<f32>> = images
            .par_iter()
            .map(|i| self.preprocess.to_chw(i))
            .collect();
        self.predict_chw_with_features(&chw)
    }

    fn predict_slices_with_features(&self, chw: &[&[f32]]) -> Result<(Vec<Prediction>, Vec<f32>)> {
        let mut out = Vec::with_capacity(chw.len());
        let width = self.extractor.dim();
        let mut all_features = Vec::with_capacity(chw.len() * width);
        for batch in chw.chunks(self.batch_size.max(1)) {
            let features = self
                .extractor
                .features(batch, self.preprocess.size as usize)?;
            all_features.extend_from_slice(&features);
            for row in features.chunks_exact(width) {
                let probabilities = self.head.probabilities(row);
                let class_id = probabilities
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i as u32);
                out.push(Prediction {
                    class_id,
                    class_name: self.classes.name(class_id).unwrap_or_default().to_string(),
                    probabilities,
                });
            }
        }
        Ok((out, all_features))
    }

    /// Backbone features (the input of the linear head) of image files, in order. Unlike
    /// prediction, an unreadable file fails the call: embeddings are used as a whole.
    pub fn embed_paths<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Result<Vec<Vec<f32>>> {
        let width = self.extractor.dim();
        let mut out = Vec::with_capacity(paths.len());
        for part in paths.chunks(self.batch_size.max(1)) {
            let chw: Vec<Vec<f32>> = part
                .par_iter()
                .map(|p| read_file(p.as_ref()).map(|i| self.preprocess.to_chw(&i)))
                .collect::<Result<_>>()?;
            let refs: Vec<&[f32]> = chw.iter().map(Vec::as_slice).collect();
            let features = self
                .extractor
                .features(&refs, self.preprocess.size as usize)?;
            out.extend(features.chunks_exact(width).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Predicts decoded images.
    pub fn predict_images(&self, images: &[DynamicImage]) -> Result<Vec<Prediction>> {
        let chw: Vec<Vec<f32>> = images
            .par_iter()
            .map(|i| self.preprocess.to_chw(i))
            .collect();
        self.predict_chw(&chw)
    }

    /// Predicts image files; each result is the prediction or the error for that file (a bad
    /// file does not stop the others). Files are decoded and predicted in chunks of
    /// [`Predictor::batch_size`]; the next chunk is decoded while the current one is predicted,
    /// so at most two chunks are held decoded.
    pub fn predict_paths<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
    ) -> Result<Vec<Result<Prediction>>> {
        Ok(self
            .predict_paths_with_features(paths)?
            .into_iter()
            .map(|r| r.map(|(p, _)| p))
            .collect())
    }

    /// Like [`Predictor::predict_paths`], each prediction with the backbone features it was
    /// computed from (what a drift monitor compares).
    pub fn predict_paths_with_features<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
    ) -> Result<Vec<Result<PredictionWithFeatures>>> {
        self.predict_loaded(paths, |p| read_file(p.as_ref()))
    }

    /// Predicts the images at `relatives` under `root` by the one path rule
    /// ([`crate::paths::open_under`]: nothing outside the root, and what is read is what was
    /// checked), each with its features; a refused, missing or undecodable image is that
    /// row's error ([`Error::Path`] for a refusal).
    pub fn predict_under<S: AsRef<str> + Sync>(
        &self,
        root: &Path,
        relatives: &[S],
    ) -> Result<Vec<Result<PredictionWithFeatures>>> {
        self.predict_loaded(relatives, |relative| {
            let relative = relative.as_ref();
            let bytes = read_under(root, relative)?;
            decode(&root.join(relative), &bytes, DEFAULT_MAX_ALLOC)
        })
    }

    /// Predicts `items`, each turned into an image by `load`, in chunks of
    /// [`Predictor::batch_size`], the next chunk loaded while the current one is predicted.
    fn predict_loaded<T: Sync>(
        &self,
        items: &[T],
        load: impl Fn(&T) -> Result<DynamicImage> + Sync,
    ) -> Result<Vec<Result<PredictionWithFeatures>>> {
        let decode = |part: &[T]| -> Vec<Result<Vec<f32>>> {
            part.par_iter()
                .map(|item| load(item).map(|image| self.preprocess.to_chw(&image)))
                .collect()
        };
        let width = self.extractor.dim();
        let mut out = Vec::with_capacity(items.len());
        let mut chunks = items.chunks(self.batch_size.max(1));
        let mut current = chunks.next().map(decode);
        while let Some(loaded) = current {
            let (predicted, next) = rayon::join(
                || {
                    let good: Vec<&[f32]> = loaded
                        .iter()
                        .filter_map(|r| r.as_ref().ok().map(Vec::as_slice))
                        .collect();
                    self.predict_slices_with_features(&good)
                },
                || chunks.next().map(decode),
            );
            let (predictions, features) = predicted?;
            let mut predictions = predictions.into_iter().zip(features.chunks_exact(width));
            for r in loaded {
                out.push(r.and_then(|_| {
                    predictions
                        .next()
                        .map(|(p, f)| (p, f.to_vec()))
                        .ok_or_else(|| {
                            Error::internal("prediction", "fewer predictions than images")
                        })
                }));
            }
            current = next;
        }
        Ok(out)
    }

    /// Predicts the images of a manifest relative to `root`, in order.
    pub fn predict_manifest(
        &self,
        root: &Path,
        manifest: &crate::dataset::Manifest,
    ) -> Result<Vec<Result<Prediction>>> {
        let paths: Vec<PathBuf> = manifest
            .samples
            .iter()
            .map(|s| root.join(&s.image_path))
            .collect();
        self.predict_paths(&paths)
    }
}

/// An image file, decoded with the default memory limit.
fn read_file(path: &Path) -> Result<DynamicImage> {
    read_image(path, DEFAULT_MAX_ALLOC)
}
