//! Corruption, data sets and replay selection.

use std::path::{Path, PathBuf};

use image::DynamicImage;
use mlops_core::dataset::SplitOptions;
use mlops_core::{Budget, Corruption, Embeddings, FolderOptions, ListOptions, Manifest, Strategy};
use numpy::ndarray::{Array3, ArrayD};
use numpy::{
    IntoPyArray, PyArray1, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn,
};
use pyo3::prelude::*;
use rand::SeedableRng;

use crate::convert::{from_json, image_to_array, manifest, pixels_to_image, shape_error, to_json};
use crate::errors::{BindingError, BindingResult, invalid};
use crate::runtime::{count_control, heavy, interruptible};

/// Corrupts one image array; returns the new array and what was drawn (JSON).
#[pyfunction]
pub(crate) fn corrupt_array<'py>(
    py: Python<'py>,
    image: PyReadonlyArrayDyn<'py, u8>,
    corruption: &str,
    seed: u64,
) -> BindingResult<(Bound<'py, PyArrayDyn<u8>>, String)> {
    let corruption: Corruption = from_json("corruption", corruption)?;
    let shape = image.as_array().shape().to_vec();
    // One copy in (a memcpy for contiguous arrays), none out.
    let pixels = match image.as_slice() {
        Ok(contiguous) => contiguous.to_vec(),
        Err(_) => image.as_array().iter().copied().collect(),
    };
    let (out, drawn) = heavy(py, || -> BindingResult<_> {
        let mut img = pixels_to_image(pixels, &shape)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let drawn = corruption.apply_in_place(&mut img, &mut rng)?;
        Ok((image_to_array(img, &shape)?, drawn))
    })?;
    Ok((out.into_pyarray(py), to_json(&drawn)?))
}

/// Sets where frost's textures are read from: the `imagecorruptions` wheel or its `frost`
/// folder.
#[pyfunction]
pub(crate) fn set_frost_textures(source: PathBuf) -> BindingResult<()> {
    Ok(mlops_core::corrupt::imagenet_c::set_frost_textures(
        &source,
    )?)
}

/// Corrupts a folder; returns the report as JSON. `callback(done, total)` is called after each
/// file; Ctrl-C stops after the files in hand.
#[pyfunction]
#[pyo3(signature = (input, output, corruption, seed, threads=None, callback=None))]
pub(crate) fn corrupt_folder(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    corruption: &str,
    seed: u64,
    threads: Option<usize>,
    callback: Option<Py<PyAny>>,
) -> BindingResult<String> {
    let corruption: Corruption = from_json("corruption", corruption)?;
    let options = FolderOptions {
        seed,
        threads,
        ..FolderOptions::default()
    };
    let report = interruptible(py, count_control(callback, "files"), |control| {
        mlops_core::corrupt_folder(&input, &output, &corruption, &options, control)
    })??;
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
pub(crate) fn list_folder(
    py: Python<'_>,
    root: PathBuf,
    classes: Option<Vec<String>>,
    strict: bool,
) -> BindingResult<(String, Vec<String>, String)> {
    let listing =
        py.detach(|| mlops_core::list_dataset(&root, &ListOptions { classes, strict }))?;
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
pub(crate) fn read_manifest(path: PathBuf) -> BindingResult<String> {
    Ok(Manifest::read(&path)?.to_jsonl())
}

/// Writes JSON lines to a manifest file (format from the extension), atomically.
#[pyfunction]
pub(crate) fn write_manifest(jsonl: &str, path: PathBuf) -> BindingResult<()> {
    Ok(manifest(jsonl)?.write(&path)?)
}

/// Splits a manifest: (train JSON lines, test JSON lines).
#[pyfunction]
pub(crate) fn split_manifest(
    jsonl: &str,
    test_fraction: f64,
    seed: u64,
    stratified: bool,
) -> BindingResult<(String, String)> {
    let parts = mlops_core::dataset::split(
        &manifest(jsonl)?,
        &SplitOptions {
            test_fraction,
            seed,
            stratified,
        },
    )?;
    Ok((parts.train.to_jsonl(), parts.test.to_jsonl()))
}

/// Selected row indices and their scores.
type Ranked<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<f64>>);

/// Selects replay samples: (indices, scores).
#[pyfunction]
#[pyo3(signature = (embeddings, labels, strategy, count, fraction, seed, probabilities=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn select<'py>(
    py: Python<'py>,
    embeddings: PyReadonlyArray2<'py, f32>,
    labels: PyReadonlyArray1<'py, u32>,
    strategy: &str,
    count: Option<usize>,
    fraction: Option<f64>,
    seed: u64,
    probabilities: Option<PyReadonlyArray2<'py, f32>>,
) -> BindingResult<Ranked<'py>> {
    let strategy: Strategy = strategy.parse()?;
    let probabilities = probabilities.map(|p| {
        let classes = p.as_array().shape()[1];
        (p.as_array().iter().copied().collect::<Vec<f32>>(), classes)
    });
    let budget = match (count, fraction) {
        (Some(k), None) => Budget::Count(k),
        (None, Some(f)) => Budget::Fraction(f),
        _ => return Err(invalid("budget: give a count (int) or a fraction (float)")),
    };
    let e = embeddings.as_array();
    let dim = e.shape()[1];
    let data: Vec<f32> = e.iter().copied().collect();
    let labels: Vec<u32> = labels.as_array().iter().copied().collect();
    let selection = heavy(py, || {
        let embeddings = Embeddings::new(data, dim)?;
        match probabilities {
            Some((values, classes)) => mlops_core::select::select_with_probabilities(
                &strategy,
                &embeddings,
                &labels,
                &Embeddings::named("probabilities", values, classes.max(1))?,
                budget,
                seed,
            ),
            None => mlops_core::select(&strategy, &embeddings, &labels, budget, seed),
        }
    })?;
    let indices: Vec<u64> = selection.indices.iter().map(|&i| i as u64).collect();
    Ok((indices.into_pyarray(py), selection.scores.into_pyarray(py)))
}

/// Reads an image file as an HxWxC uint8 array (RGB, or grey as HxW).
#[pyfunction]
pub(crate) fn read_image<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> BindingResult<Bound<'py, PyArrayDyn<u8>>> {
    let image = py.detach(|| {
        mlops_core::imageio::read_image(&path, mlops_core::imageio::DEFAULT_MAX_ALLOC)
    })?;
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
    .map_err(|e| shape_error(&e))?;
    Ok(array.into_pyarray(py))
}

/// `root / relative` under the core's one path rule (`mlops_core::paths::resolve_under`):
/// absolute paths, `..`, NUL bytes and links out of `root` raise `InvalidParameterError`.
#[pyfunction]
pub(crate) fn resolve_under(root: PathBuf, relative: &str) -> BindingResult<PathBuf> {
    mlops_core::paths::resolve_under(&root, relative).map_err(|e| {
        BindingError::Core(mlops_core::Error::InvalidParameter {
            name: "image_path",
            reason: e.to_string(),
        })
    })
}
