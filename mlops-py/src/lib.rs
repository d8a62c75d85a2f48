//! Python bindings for `mlops-core`: the private native module `mlops._mlops_rs`.
//!
//! Thin by design: conversion, GIL release and the error boundary only; everything real lives
//! in `mlops-core`. Structured values cross as JSON text (configs in, reports out) so the Rust
//! types' serde names and defaults are the Python names and defaults; images and embeddings
//! cross as numpy arrays. The public Python API is in `python/mlops`.
//!
//! - [`errors`]: the exception classes (made here) and the core-error boundary;
//! - [`convert`]: JSON, manifests, numpy arrays and images;
//! - [`runtime`]: GIL release, thread pools, Ctrl-C, progress callbacks;
//! - [`data`]: corruption, listing, manifests, selection, image reading;
//! - [`model`]: the `Model` class and training;
//! - [`live`]: PostgreSQL and Kafka;
//! - [`drift`]: shift detection;
//! - [`experiment`]: the replay experiment.

mod adapt;
mod convert;
mod data;
mod drift;
mod errors;
mod experiment;
mod live;
mod model;
mod runtime;

use pyo3::prelude::*;

/// The native module.
#[pymodule(gil_used = false)]
fn _mlops_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let _ = runtime::LOADED_BY.set(std::process::id());
    // A second initialisation (a sub-interpreter) keeps the first logger.
    let _ = pyo3_log::try_init();
    errors::register(m)?;
    m.add_class::<model::Model>()?;
    m.add_class::<drift::DriftDetector>()?;
    m.add_function(wrap_pyfunction!(data::corrupt_array, m)?)?;
    m.add_function(wrap_pyfunction!(data::corrupt_folder, m)?)?;
    m.add_function(wrap_pyfunction!(data::set_frost_textures, m)?)?;
    m.add_function(wrap_pyfunction!(data::list_folder, m)?)?;
    m.add_function(wrap_pyfunction!(data::read_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(data::write_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(data::split_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(data::select, m)?)?;
    m.add_function(wrap_pyfunction!(data::read_image, m)?)?;
    m.add_function(wrap_pyfunction!(data::resolve_under, m)?)?;
    m.add_function(wrap_pyfunction!(model::train, m)?)?;
    m.add_function(wrap_pyfunction!(model::time_predict_in_rust, m)?)?;
    m.add_function(wrap_pyfunction!(live::generate, m)?)?;
    m.add_function(wrap_pyfunction!(live::stream_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(live::kafka_publish, m)?)?;
    m.add_function(wrap_pyfunction!(live::kafka_consume, m)?)?;
    m.add_function(wrap_pyfunction!(experiment::shift_experiment, m)?)?;
    m.add_function(wrap_pyfunction!(adapt::adapt, m)?)?;
    m.add_function(wrap_pyfunction!(adapt::registry_champion, m)?)?;
    m.add_function(wrap_pyfunction!(adapt::registry_history, m)?)?;
    m.add_function(wrap_pyfunction!(adapt::registry_init, m)?)?;
    m.add_function(wrap_pyfunction!(adapt::promote, m)?)?;
    Ok(())
}
