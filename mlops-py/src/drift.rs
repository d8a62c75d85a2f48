//! Shift detection: a fitted reference (`DriftDetector`) and one-shot tests.

use mlops_core::Embeddings;
use mlops_core::drift::{DriftDetector as CoreDetector, DriftOptions};
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::{from_json, to_json};
use crate::errors::BindingResult;
use crate::runtime::heavy;

/// A numpy matrix as embeddings, with errors naming `name`.
fn matrix(name: &'static str, array: &PyReadonlyArray2<'_, f32>) -> BindingResult<Embeddings> {
    let view = array.as_array();
    let dim = view.shape()[1];
    let data: Vec<f32> = view.iter().copied().collect();
    if dim == 0 {
        return Err(mlops_core::Error::invalid(name, "rows have width 0").into());
    }
    Ok(Embeddings::named(name, data, dim)?)
}

fn labels(array: Option<PyReadonlyArray1<'_, u32>>) -> Option<Vec<u32>> {
    array.map(|a| a.as_array().iter().copied().collect())
}

/// A reference sample fitted once and checked against many windows.
#[pyclass(frozen)]
pub(crate) struct DriftDetector {
    detector: CoreDetector,
}

#[pymethods]
impl DriftDetector {
    /// Fits `reference` (N x D float32) with options as JSON; `labels` (uint32 per row) make
    /// the MMD test compare within classes.
    #[new]
    #[pyo3(signature = (reference, options_json, labels=None))]
    fn new(
        py: Python<'_>,
        reference: PyReadonlyArray2<'_, f32>,
        options_json: &str,
        labels: Option<PyReadonlyArray1<'_, u32>>,
    ) -> BindingResult<Self> {
        let options: DriftOptions = from_json("options", options_json)?;
        let reference = matrix("reference", &reference)?;
        let labels = self::labels(labels);
        let detector = heavy(py, || match &labels {
            Some(labels) => CoreDetector::fit_with_labels(&reference, labels, options),
            None => CoreDetector::fit(&reference, options),
        })?;
        Ok(DriftDetector { detector })
    }

    /// Tests a window (n x D float32); returns the result as JSON.
    #[pyo3(signature = (window, labels=None))]
    fn check(
        &self,
        py: Python<'_>,
        window: PyReadonlyArray2<'_, f32>,
        labels: Option<PyReadonlyArray1<'_, u32>>,
    ) -> BindingResult<String> {
        let window = matrix("window", &window)?;
        let labels = self::labels(labels);
        let result = heavy(py, || match &labels {
            Some(labels) => self.detector.check_with_labels(&window, labels),
            None => self.detector.check(&window),
        })?;
        to_json(&result)
    }

    /// Reference rows compared with (after subsampling).
    #[getter]
    fn reference_rows(&self) -> usize {
        self.detector.reference_rows()
    }

    /// Width of the rows tested.
    #[getter]
    fn dim(&self) -> usize {
        self.detector.dim()
    }
}
