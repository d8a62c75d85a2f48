//! Prediction with a trained model: from file paths, decoded images or preprocessed batches.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use image::DynamicImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::artifact::ModelPackage;
use crate::dataset::ClassMap;
use crate::error::{Error, Result};
use crate::imageio::{DEFAULT_MAX_ALLOC, read_image};
use crate::model::Classifier;
use crate::train::{ComputeBackend, probabilities};
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

/// A model ready to predict.
#[derive(Debug)]
pub struct Predictor {
    model: Classifier,
    classes: ClassMap,
    preprocess: Preprocess,
    device: Device,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl Predictor {
    /// A predictor for a model on `device`.
    pub fn new(
        model: Classifier,
        classes: ClassMap,
        preprocess: Preprocess,
        device: Device,
    ) -> Self {
        Predictor {
            model: model.valid(),
            classes,
            preprocess,
            device,
            batch_size: 32,
        }
    }

    /// A predictor for a loaded package.
    pub fn from_package(package: ModelPackage, device: Device) -> Self {
        let ModelPackage { model, metadata } = package;
        Predictor::new(model, metadata.classes, metadata.preprocess, device)
    }

    /// Loads the package at `uri` (see [`crate::artifact`]) onto `backend`.
    pub fn load(uri: &str, backend: ComputeBackend) -> Result<Self> {
        let device = backend.device();
        Ok(Predictor::from_package(
            ModelPackage::load(uri, &device)?,
            device,
        ))
    }

    /// The class map.
    pub fn classes(&self) -> &ClassMap {
        &self.classes
    }

    /// The preprocessing applied to inputs.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Predicts already preprocessed CHW images (see [`Preprocess::to_chw`]).
    pub fn predict_chw(&self, chw: &[Vec<f32>]) -> Result<Vec<Prediction>> {
        let mut out = Vec::with_capacity(chw.len());
        for batch in chw.chunks(self.batch_size.max(1)) {
            let x = self.preprocess.stack(batch, &self.device);
            for probs in probabilities(self.model.forward(x))? {
                let class_id = probs
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(i, _)| i as u32);
                out.push(Prediction {
                    class_id,
                    class_name: self.classes.name(class_id).unwrap_or_default().to_string(),
                    probabilities: probs,
                });
            }
        }
        Ok(out)
    }

    /// Backbone features (the input of the linear head) of image files, in order. Unlike
    /// prediction, an unreadable file fails the call: embeddings are used as a whole.
    pub fn embed_paths<P: AsRef<Path> + Sync>(&self, paths: &[P]) -> Result<Vec<Vec<f32>>> {
        let chw: Vec<Vec<f32>> = paths
            .par_iter()
            .map(|p| read_image(p.as_ref(), DEFAULT_MAX_ALLOC).map(|i| self.preprocess.to_chw(&i)))
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(chw.len());
        for batch in chw.chunks(self.batch_size.max(1)) {
            let x = self.preprocess.stack(batch, &self.device);
            let features = self.model.backbone.features(x);
            let [n, d] = features.dims();
            let flat: Vec<f32> = features
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::invalid("features", format!("{e:?}")))?;
            out.extend((0..n).map(|i| flat[i * d..(i + 1) * d].to_vec()));
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
    /// file does not stop the others).
    pub fn predict_paths<P: AsRef<Path> + Sync>(
        &self,
        paths: &[P],
    ) -> Result<Vec<Result<Prediction>>> {
        let loaded: Vec<Result<Vec<f32>>> = paths
            .par_iter()
            .map(|p| read_image(p.as_ref(), DEFAULT_MAX_ALLOC).map(|i| self.preprocess.to_chw(&i)))
            .collect();
        let good: Vec<Vec<f32>> = loaded
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut predictions = self.predict_chw(&good)?.into_iter();
        Ok(loaded
            .into_iter()
            .map(|r| {
                r.and_then(|_| {
                    predictions.next().ok_or_else(|| {
                        Error::invalid("predictions", "fewer predictions than images")
                    })
                })
            })
            .collect())
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
