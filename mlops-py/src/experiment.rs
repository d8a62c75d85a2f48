//! The monday -> tuesday replay experiment.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use mlops_core::experiment::Shift;
use mlops_core::model::Backbone;
use mlops_core::{ClassMap, ExperimentConfig, ShiftData, Strategy, TrainConfig};
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
/// `shifts`: (name, image root, train JSONL, test JSONL) per shifted day; `classes`: `None`
/// takes them from the manifests' class folders.
#[pyfunction]
#[pyo3(signature = (monday_root, monday, shifts, classes, strategies, budgets, seeds, config, backbone="efficientnet_lite0", weights=None, out=None, chart_font=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn shift_experiment(
    py: Python<'_>,
    monday_root: PathBuf,
    monday: [String; 2],
    shifts: Vec<(String, PathBuf, String, String)>,
    classes: Option<Vec<String>>,
    strategies: Vec<String>,
    budgets: Vec<usize>,
    seeds: Vec<u64>,
    config: &str,
    backbone: &str,
    weights: Option<PathBuf>,
    out: Option<PathBuf>,
    chart_font: Option<Vec<u8>>,
    progress: Option<Py<PyAny>>,
) -> BindingResult<(String, String)> {
    let train: TrainConfig = from_json("config", config)?;
    let (mtr, mte) = (manifest(&monday[0])?, manifest(&monday[1])?);
    let shift_manifests = shifts
        .iter()
        .map(|(_, _, train, test)| Ok((manifest(train)?, manifest(test)?)))
        .collect::<BindingResult<Vec<_>>>()?;
    let classes = match classes {
        Some(names) => ClassMap::new(names)?,
        None => {
            let mut all = vec![&mtr, &mte];
            for (a, b) in &shift_manifests {
                all.extend([a, b]);
            }
            ClassMap::from_manifests(&all)?
        }
    };
    let strategies = strategies
        .iter()
        .map(|n| n.parse::<Strategy>())
        .collect::<mlops_core::Result<Vec<_>>>()?;
    let experiment = ExperimentConfig {
        strategies,
        budgets,
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
                monday_root: &monday_root,
                monday_train: &mtr,
                monday_test: &mte,
                shifts: shifts
                    .iter()
                    .zip(&shift_manifests)
                    .map(|((name, root, _, _), (train, test))| Shift {
                        name,
                        root,
                        train,
                        test,
                    })
                    .collect(),
            };
            let results =
                mlops_core::run_shift_experiment(&net, &classes, &data, &experiment, control)?;
            if let Some(out) = &out {
                mlops_core::report::write_report(&results, out, font)?;
            }
            Ok(results)
        },
    )??;
    Ok((to_json(&results)?, results.to_markdown()))
}
