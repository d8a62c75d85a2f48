//! Python bindings for `mlops-core`: the private native module `mlops._mlops_rs`.
//!
//! Thin by design: conversion, GIL release and error mapping only. Everything real lives in
//! `mlops-core`.

use pyo3::prelude::*;

/// The native module.
#[pymodule(gil_used = false)]
fn _mlops_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
