//! The closed loop: when the data shifts, learn the new data without forgetting the old,
//! promote the result only when it is better, and let running streams swap to it.
//!
//! - [`adapt()`]: the current model's head trained further on the new labelled rows plus a
//!   replay set of old training rows (a [`Strategy`], k-center greedy by default, the shift
//!   experiment's best), both models evaluated on held-out old and new rows, and a new
//!   package with its [`Lineage`] (parent, strategy, budget, data hashes, scores);
//! - [`Registry`]: where the champion is: a pointer that is atomic on every store (one
//!   create-only object per generation, so two promoters never both win);
//! - [`promote`]: the [`PromotionPolicy`] (better on both held-out sets together, no more than
//!   a margin worse on the old ones) and the pointer move, or a rejected challenger's record;
//! - [`ServingModel`]: what a stream predicts with, swapped between batches when the champion
//!   moves;
//! - the trigger that runs all this from a stream's drift alarms is
//!   `crate::db::adapt` (feature `postgres`).
//!
//! The backbone stays frozen (as in the shift experiment): the new model shares the parent's
//! backbone, so its features are computed once for both models' evaluations.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::artifact::{ModelPackage, PackageInfo};
use crate::control::Control;
use crate::dataset::Manifest;
use crate::dataset::{SplitOptions, split};
use crate::drift::{AccuracyEstimator, MonitorCalibration, ReferenceSample};
use crate::error::{Error, Result};
use crate::infer::{FeatureExtractor, LinearHead, head_probabilities};
use crate::model::Classifier;
use crate::seed::sha256_hex;
use crate::select::{Budget, Embeddings, Strategy, select_with_probabilities};
use crate::train::features::Rows;
use crate::train::{
    EpochMetrics, Evaluation, ImageSet, SkippedImage, TrainConfig, check_targets, evaluate_head,
    extractor_set_features, reference_sample, train_head,
};

/// `sample` with its stored accuracy estimator refitted on `held_out` rows (rows the head was
/// not fitted on); unchanged when it has no calibration or the rows cannot fit one.
fn held_out_accuracy(
    sample: ReferenceSample,
    head: &burn::nn::Linear,
    held_out: &Rows,
    classes: usize,
) -> Result<ReferenceSample> {
    let Some(calibration) = sample.calibration().cloned() else {
        return Ok(sample);
    };
    let probabilities = head_probabilities(&LinearHead::new(head)?, &held_out.features);
    let score = calibration
        .accuracy
        .as_ref()
        .map_or_else(Default::default, |a| a.score);
    let accuracy = AccuracyEstimator::fit(&probabilities, classes, &held_out.targets, score).ok();
    sample.with_calibration(MonitorCalibration {
        accuracy,
        ..calibration
    })
}

mod promote;
mod registry;
mod serving;

pub use promote::{Decision, PromotionPolicy, promote, promote_rescored};
pub use registry::{Champion, Registry};
pub use serving::{ChampionHealth, ChampionWatch, ServingModel};

// Lineage types live with the package metadata that stores them.
pub use crate::artifact::{DataHashes, Lineage, LineageRows, Scores};

/// The data an adaptation learns from and is judged on.
#[derive(Debug, Clone)]
pub struct AdaptData<'a> {
    /// The new (shifted) labelled rows. Rows that repeat an image path count once; a seeded,
    /// class-stratified part is held out for evaluation.
    pub new: ImageSet<'a>,
    /// The old training rows: the pool the replay set is chosen from.
    pub old: ImageSet<'a>,
    /// Held-out old rows (normally the current model's test set); `None` holds out a seeded
    /// part of `old` instead.
    pub old_holdout: Option<ImageSet<'a>>,
}

/// How to adapt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdaptConfig {
    /// How replay rows are chosen from the old training rows (default `k_center`, the shift
    /// experiment's best at the original's budget; see docs/experiment.md).
    pub strategy: Strategy,
    /// How many replay rows (default 220, the original's budget).
    pub budget: Budget,
    /// Fraction of the new rows (and of the old rows when no old holdout is given) held out
    /// for evaluation, in (0, 1) (default 0.2).
    pub holdout: f64,
    /// Training of the head: epochs, learning rate, batch, seed (also of the splits and the
    /// selection), engine, feature cache, the size of the new drift reference sample.
    pub train: TrainConfig,
}

impl AdaptConfig {
    /// Refuses settings no data can make work (a holdout outside (0, 1), a budget fraction
    /// outside [0, 1], bad training settings), so a long-running loop fails at once instead of
    /// at every attempt.
    pub fn validate(&self) -> Result<()> {
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            return Err(Error::invalid(
                "holdout",
                format!("must be between 0 and 1 (exclusive), got {}", self.holdout),
            ));
        }
        if let Budget::Fraction(f) = self.budget
            && !(0.0..=1.0).contains(&f)
        {
            return Err(Error::invalid(
                "budget",
                format!("a fraction must be in [0, 1], got {f}"),
            ));
        }
        self.train.validate()
    }
}

/// The rows an adaptation was scored on (after de-duplication), where they are: what
/// [`promote_rescored`] scores both models on again. Their hashes are in the [`Lineage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// Folder of the old rows.
    pub old_root: PathBuf,
    /// The held-out old rows.
    pub old: Manifest,
    /// Folder of the new rows.
    pub new_root: PathBuf,
    /// The held-out new rows.
    pub new: Manifest,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            strategy: Strategy::KCenterGreedy,
            budget: Budget::Count(220),
            holdout: 0.2,
            train: TrainConfig::default(),
        }
    }
}

/// What [`adapt()`] produced: the challenger, not yet saved or promoted.
#[derive(Debug)]
pub struct Adaptation {
    /// The new model, its metadata naming its [`Lineage`].
    pub package: ModelPackage,
    /// Its lineage (also in `package.metadata.lineage`).
    pub lineage: Lineage,
    /// Training curve on new + replay rows (test = both held-out sets).
    pub history: Vec<EpochMetrics>,
    /// Images that could not be read (left out).
    pub skipped: Vec<SkippedImage>,
    /// The held-out rows both models were scored on.
    pub held_out: HeldOut,
    /// Seconds the adaptation took.
    pub seconds: f64,
}

/// The manifest with each image path once (its first row).
fn unique_paths(manifest: &Manifest) -> Manifest {
    let mut seen = std::collections::HashSet::new();
    Manifest::new(
        manifest
            .samples
            .iter()
            .filter(|s| seen.insert(s.image_path.as_str()))
            .cloned()
            .collect(),
    )
}

/// A seeded stratified holdout of `manifest`: (kept, held out).
fn hold_out(
    name: &'static str,
    manifest: &Manifest,
    fraction: f64,
    seed: u64,
) -> Result<(Manifest, Manifest)> {
    if manifest.len() < 2 {
        return Err(Error::invalid(
            name,
            format!(
                "needs at least 2 distinct labelled images to hold some out, got {}",
                manifest.len()
            ),
        ));
    }
    let parts = split(
        manifest,
        &SplitOptions {
            test_fraction: fraction,
            seed,
            stratified: true,
        },
    )?;
    Ok((parts.train, parts.test))
}

/// `head`'s accuracy on the held-out old, new and all rows, with the evaluation on all rows.
fn scores(
    head: &burn::nn::Linear,
    [old, new, both]: [&Rows; 3],
    classes: usize,
    device: &burn::prelude::Device,
) -> Result<(Scores, Evaluation)> {
    let evaluate =
        |rows: &Rows| evaluate_head(head, &rows.features, &rows.targets, classes, device);
    let union = evaluate(both)?;
    let scores = Scores {
        old: evaluate(old)?.accuracy,
        new: evaluate(new)?.accuracy,
        union: union.accuracy,
    };
    Ok((scores, union))
}

/// Adapts `parent` to the new data: its head is trained further on the new training rows plus
/// a replay set of old rows, and both models are scored on the held-out old and new rows.
/// The challenger keeps the parent's backbone, classes and preprocessing; its drift reference
/// sample is drawn from the held-out new rows (what live data looks like now). Deterministic:
/// the same parent, data and config give the same package bytes. `control` is checked between
/// batches and told the `features` and each `epoch`.
pub fn adapt(
    parent: &ModelPackage,
    data: &AdaptData<'_>,
    config: &AdaptConfig,
    control: &Control,
) -> Result<Adaptation> {
    let started = Instant::now();
    config.validate()?;
    let classes = &parent.metadata.classes;
    let seed = config.train.seed;
    check_targets("new", data.new.manifest, classes)?;
    check_targets("old", data.old.manifest, classes)?;
    let new = unique_paths(data.new.manifest);
    let (new_train, new_holdout) = hold_out("new", &new, config.holdout, seed)?;
    let old_all = unique_paths(data.old.manifest);
    let (old_pool, old_holdout, old_holdout_root) = match &data.old_holdout {
        Some(set) => {
            check_targets("old_holdout", set.manifest, classes)?;
            (old_all, unique_paths(set.manifest), set.root)
        }
        None => {
            let (pool, held) = hold_out("old", &old_all, config.holdout, seed)?;
            (pool, held, data.old.root)
        }
    };

    let train_config = TrainConfig {
        preprocess: parent.metadata.preprocess,
        ..config.train.clone()
    };
    let device = train_config.backend.device();
    let extractor = FeatureExtractor::with_engine(
        &parent.model.backbone,
        &device,
        train_config.feature_engine,
    )?;
    let mut skipped = Vec::new();
    let mut features = |root: &Path, manifest: &Manifest| -> Result<Rows> {
        let (features, targets, bad) = extractor_set_features(
            &extractor,
            &ImageSet { root, manifest },
            &train_config.preprocess,
            train_config.feature_cache.as_deref(),
            control,
        )?;
        skipped.extend(bad);
        Ok(Rows { features, targets })
    };
    let new_train_rows = features(data.new.root, &new_train)?;
    let new_holdout_rows = features(data.new.root, &new_holdout)?;
    let old_pool_rows = features(data.old.root, &old_pool)?;
    let old_holdout_rows = features(old_holdout_root, &old_holdout)?;
    for (name, rows) in [
        ("new", &new_train_rows),
        ("new (held out)", &new_holdout_rows),
        ("old (held out)", &old_holdout_rows),
    ] {
        if rows.targets.is_empty() {
            return Err(Error::invalid(
                "data",
                format!("no readable image among the {name} rows"),
            ));
        }
    }
    let width = extractor.dim();
    let n_classes = classes.len();

    let replay = if old_pool_rows.targets.is_empty() {
        old_pool_rows.pick(&[])
    } else {
        let embeddings = Embeddings::new(old_pool_rows.features.clone(), width)?.l2_normalised();
        // The parent's class probabilities of the pool, for strategies that use them
        // (`uncertainty`).
        let head = LinearHead::new(&parent.model.head)?;
        let probabilities = Embeddings::new(
            head_probabilities(&head, &old_pool_rows.features),
            n_classes,
        )?;
        let selection = select_with_probabilities(
            &config.strategy,
            &embeddings,
            &old_pool_rows.targets,
            &probabilities,
            config.budget,
            seed,
        )?;
        old_pool_rows.pick(&selection.indices)
    };
    let both_holdout = Rows::concat(&[&old_holdout_rows, &new_holdout_rows]);
    let train_rows = Rows::concat(&[&new_train_rows, &replay]);
    let (head, history) = train_head(
        parent.model.head.clone(),
        (&train_rows.features, &train_rows.targets),
        (&both_holdout.features, &both_holdout.targets),
        n_classes,
        &train_config,
        control,
    )?;
    let held_out = [&old_holdout_rows, &new_holdout_rows, &both_holdout];
    let (parent_scores, _) = scores(&parent.model.head, held_out, n_classes, &device)?;
    let (challenger_scores, test) = scores(&head, held_out, n_classes, &device)?;
    let model = Classifier {
        backbone: parent.model.backbone.clone(),
        head,
    };
    // The drift reference: every new row (what live rows look like from now on: the
    // backbone's features were not fitted on any of them), with the accuracy estimate fitted
    // on the held-out rows only (old and new: the head was fitted on the others).
    let new_rows = Rows::concat(&[&new_train_rows, &new_holdout_rows]);
    let reference = reference_sample(
        &model,
        &new_rows.features,
        &new_rows.targets,
        n_classes,
        &train_config,
    )?
    .map(|sample| held_out_accuracy(sample, &model.head, &both_holdout, n_classes))
    .transpose()?;
    let sha = |m: &Manifest| sha256_hex(m.to_jsonl().as_bytes());
    let lineage = Lineage {
        parent_version: parent.metadata.version().to_string(),
        parent_generation: None,
        strategy: config.strategy,
        budget: config.budget,
        seed,
        rows: LineageRows {
            new_train: new_train_rows.targets.len(),
            new_holdout: new_holdout_rows.targets.len(),
            old_pool: old_pool_rows.targets.len(),
            old_holdout: old_holdout_rows.targets.len(),
            replay: replay.targets.len(),
        },
        data_sha256: DataHashes {
            new_train: sha(&new_train),
            new_holdout: sha(&new_holdout),
            old_pool: sha(&old_pool),
            old_holdout: sha(&old_holdout),
        },
        parent_scores,
        scores: challenger_scores,
        source: None,
    };
    let info = PackageInfo {
        train_config: Some(train_config),
        history: history.clone(),
        test: Some(test),
        manifests_sha256: vec![
            lineage.data_sha256.new_train.clone(),
            lineage.data_sha256.new_holdout.clone(),
            lineage.data_sha256.old_pool.clone(),
            lineage.data_sha256.old_holdout.clone(),
        ],
        reference,
        lineage: Some(lineage.clone()),
    };
    let (package, _) = ModelPackage::new(model, classes.clone(), parent.metadata.preprocess, info)?;
    Ok(Adaptation {
        package,
        lineage,
        history,
        skipped,
        held_out: HeldOut {
            old_root: old_holdout_root.to_path_buf(),
            old: old_holdout,
            new_root: data.new.root.to_path_buf(),
            new: new_holdout,
        },
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl Adaptation {
    /// This adaptation with `source` recorded in its lineage (also in the package metadata).
    pub fn with_source(self, source: impl Into<String>) -> Self {
        let source = Some(source.into());
        self.with_lineage(|lineage| lineage.source = source.clone())
    }

    /// This adaptation with the champion generation its parent was recorded in its lineage
    /// (also in the package metadata): promotion then rejects it once the pointer has moved
    /// past that generation, even back to the same model.
    pub fn with_parent_generation(self, generation: u64) -> Self {
        self.with_lineage(|lineage| lineage.parent_generation = Some(generation))
    }

    fn with_lineage(mut self, change: impl Fn(&mut Lineage)) -> Self {
        change(&mut self.lineage);
        if let Some(lineage) = self.package.metadata.lineage.as_mut() {
            change(lineage);
        }
        self
    }
}
