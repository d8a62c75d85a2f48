//! The monday -> tuesday replay experiment.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use mlops_core::model::Backbone;
use mlops_core::{Budget, ClassMap, ExperimentConfig, ShiftData, Strategy, TrainConfig};
use pyo3::prelude::*;

use crate::convert::{from_json, manifest, to_json};
use crate::errors::BindingResult;
use crate::runtime::{detail_control, interruptible};

/// Chart fonts given by Python, kept for the process (the chart library needs `'static`
/// bytes; the same font given again is not stored twice).
fn static_font(bytes: Vec<u8>) -> &'static [u8] {
    static FONTS: OnceLock<Mutex<Vec<&'static [u8]>>> = OnceLock::new();
    let mut fonts = FONTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(known) = fonts.iter().find(|f| **f == bytes.as_slice()) {
        return known;
    }
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    fonts.push(leaked);
    leaked
}

/// The shift experiment: (results JSON, markdown table). With `out`, also writes
/// results.json, results.md and, given `chart_font` (TrueType bytes), the charts there.
#[pyfunction]
#[pyo3(signature = (roots, manifests, classes, strategies, budget, seeds, config, backbone="efficientnet_lite0", weights=None, out=None, chart_font=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn shift_experiment(
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
    chart_font: Option<Vec<u8>>,
    progress: Option<Py<PyAny>>,
) -> BindingResult<(String, String)> {
    let train: TrainConfig = from_json("config", config)?;
    let classes = ClassMap::new(classes)?;
    let [mtr, mte, ttr, tte] = [
        manifest(&manifests[0])?,
        manifest(&manifests[1])?,
        manifest(&manifests[2])?,
        manifest(&manifests[3])?,
    ];
    let strategies = strategies
        .iter()
        .map(|n| n.parse::<Strategy>())
        .collect::<mlops_core::Result<Vec<_>>>()?;
    let experiment = ExperimentConfig {
        strategies,
        budget: Budget::Count(budget),
        seeds,
        train,
    };
    let font = chart_font.map(static_font);
    let results = interruptible(
        py,
        detail_control(progress, "runs"),
        |control| -> mlops_core::Result<_> {
            let device = experiment.train.backend.device();
            let net = Backbone::from_name(backbone, weights.as_deref(), &device)?;
            let data = ShiftData {
                monday_root: &roots.0,
                monday_train: &mtr,
                monday_test: &mte,
                tuesday_root: &roots.1,
                tuesday_train: &ttr,
                tuesday_test: &tte,
            };
            let results =
                mlops_core::run_shift_experiment(&net, &classes, data, &experiment, control)?;
            if let Some(out) = &out {
                mlops_core::report::write_report(&results, out, font)?;
            }
            Ok(results)
        },
    )??;
    Ok((to_json(&results)?, results.to_markdown()))
}
