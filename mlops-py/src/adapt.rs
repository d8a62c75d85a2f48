//! The closed loop: adaptation, the champion registry, promotion.

use std::path::PathBuf;

use mlops_core::adapt::{AdaptConfig, AdaptData, HeldOut, PromotionPolicy, Registry};
use mlops_core::infer::FeatureEngine;
use mlops_core::train::ImageSet;
use pyo3::prelude::*;

use crate::convert::{from_json, manifest, to_json};
use crate::errors::BindingResult;
use crate::model::Model;
use crate::runtime::{detail_control, interruptible};

/// Adapts `model` to new rows with replay of old ones: (challenger, lineage JSON, skipped
/// JSON, held-out rows JSON). `config` is an `AdaptConfig` as JSON; `parent_generation` the
/// champion generation `model` held, when it came from a registry.
#[pyfunction]
#[pyo3(signature = (model, new_root, new_jsonl, old_root, old_jsonl, old_holdout_jsonl, config, source=None, progress=None, parent_generation=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn adapt(
    py: Python<'_>,
    model: &Model,
    new_root: PathBuf,
    new_jsonl: &str,
    old_root: PathBuf,
    old_jsonl: &str,
    old_holdout_jsonl: Option<&str>,
    config: &str,
    source: Option<String>,
    progress: Option<Py<PyAny>>,
    parent_generation: Option<u64>,
) -> BindingResult<(Model, String, String, String)> {
    let config: AdaptConfig = from_json("config", config)?;
    let (new, old) = (manifest(new_jsonl)?, manifest(old_jsonl)?);
    let old_holdout = old_holdout_jsonl.map(manifest).transpose()?;
    let control = detail_control(progress, "epochs");
    let adaptation = interruptible(py, control, |control| {
        let data = AdaptData {
            new: ImageSet {
                root: &new_root,
                manifest: &new,
            },
            old: ImageSet {
                root: &old_root,
                manifest: &old,
            },
            old_holdout: old_holdout.as_ref().map(|manifest| ImageSet {
                root: &old_root,
                manifest,
            }),
        };
        mlops_core::adapt::adapt(&model.package, &data, &config, control)
    })??;
    let adaptation = match source {
        Some(source) => adaptation.with_source(source),
        None => adaptation,
    };
    let adaptation = match parent_generation {
        Some(generation) => adaptation.with_parent_generation(generation),
        None => adaptation,
    };
    let skipped: Vec<(String, String)> = adaptation
        .skipped
        .iter()
        .map(|s| (s.image_path.clone(), s.reason.clone()))
        .collect();
    let lineage = to_json(&adaptation.lineage)?;
    let held_out = to_json(&adaptation.held_out)?;
    let engine: FeatureEngine = model.predictor.extractor().engine();
    Ok((
        Model::from_package(adaptation.package, config.train.backend, engine)?,
        lineage,
        to_json(&skipped)?,
        held_out,
    ))
}

/// The registry's champion as JSON (`null` before the first).
#[pyfunction]
pub(crate) fn registry_champion(py: Python<'_>, uri: String) -> BindingResult<String> {
    let champion = py.detach(|| Registry::new(uri).champion())?;
    to_json(&champion)
}

/// Every champion (JSON list, oldest first) and every decision (JSON list).
#[pyfunction]
pub(crate) fn registry_history(py: Python<'_>, uri: String) -> BindingResult<(String, String)> {
    let registry = Registry::new(uri);
    let (history, decisions) =
        py.detach(|| Ok::<_, mlops_core::Error>((registry.history()?, registry.decisions()?)))?;
    Ok((to_json(&history)?, to_json(&decisions)?))
}

/// Makes a package the first champion; returns it as JSON.
#[pyfunction]
pub(crate) fn registry_init(py: Python<'_>, uri: String, package: String) -> BindingResult<String> {
    let champion = py.detach(|| Registry::new(uri).init_champion(&package))?;
    to_json(&champion)
}

/// Judges an adapted package and promotes it when the policy allows; the decision as JSON.
/// With `held_out_json` (a `HeldOut`), both models are scored again on those rows first.
#[pyfunction]
#[pyo3(signature = (uri, package, policy, held_out_json=None))]
pub(crate) fn promote(
    py: Python<'_>,
    uri: String,
    package: String,
    policy: &str,
    held_out_json: Option<&str>,
) -> BindingResult<String> {
    let policy: PromotionPolicy = from_json("policy", policy)?;
    let held_out: Option<HeldOut> = held_out_json
        .map(|text| from_json("held_out", text))
        .transpose()?;
    let registry = Registry::new(uri);
    let decision = py.detach(|| match &held_out {
        Some(rows) => mlops_core::adapt::promote_rescored(&registry, &package, &policy, rows),
        None => mlops_core::adapt::promote(&registry, &package, &policy),
    })?;
    to_json(&decision)
}
