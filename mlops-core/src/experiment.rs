//! The monday -> tuesday shift experiment: how to keep a model good on monday's data while
//! adapting it to tuesday's corrupted data, comparing replay strategies.
//!
//! 1. Backbone features of every image are computed once (frozen backbone, cached).
//! 2. The monday model: a head trained on monday's training set.
//! 3. For every strategy and seed: the replay set is selected from monday's training set
//!    (on the L2-normalised features, the same embedding for every strategy), and the monday
//!    model's head is trained further on tuesday's training set plus the replay set.
//! 4. Every model is evaluated on monday's test set, tuesday's test set and both.

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::control::{Control, Detail, Progress};
use crate::dataset::{ClassMap, Manifest};
use crate::error::{Error, Result};
use crate::infer::FeatureExtractor;
use crate::model::Backbone;
use crate::model::classifier::seeded_linear;
use crate::select::{Budget, Distance, Embeddings, Strategy, select};
use crate::train::features::Rows;
use crate::train::{
    EpochMetrics, ImageSet, SkippedImage, TrainConfig, evaluate_head, extractor_set_features,
    train_head,
};

/// The two days' data: image roots and manifests.
#[derive(Debug, Clone, Copy)]
pub struct ShiftData<'a> {
    /// Folder of monday's images.
    pub monday_root: &'a Path,
    /// Monday's training manifest.
    pub monday_train: &'a Manifest,
    /// Monday's test manifest.
    pub monday_test: &'a Manifest,
    /// Folder of tuesday's images.
    pub tuesday_root: &'a Path,
    /// Tuesday's training manifest.
    pub tuesday_train: &'a Manifest,
    /// Tuesday's test manifest.
    pub tuesday_test: &'a Manifest,
}

/// Experiment settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    /// Strategies compared (default: none, random, cp_l1, cp_l2, cp_cosine, k_center,
    /// herding, all).
    pub strategies: Vec<Strategy>,
    /// Replay budget, the same for every strategy (default: the original's 220).
    pub budget: Budget,
    /// Seeds; each strategy runs once per seed (default: 2022, 2023, 2024).
    pub seeds: Vec<u64>,
    /// Training settings of the monday model and of every tuesday model.
    pub train: TrainConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            strategies: vec![
                Strategy::None,
                Strategy::Random {
                    class_balanced: false,
                },
                Strategy::CorePair {
                    distance: Distance::L1,
                },
                Strategy::CorePair {
                    distance: Distance::L2,
                },
                Strategy::CorePair {
                    distance: Distance::Cosine,
                },
                Strategy::KCenterGreedy,
                Strategy::Herding,
                Strategy::All,
            ],
            budget: Budget::Count(220),
            seeds: vec![2022, 2023, 2024],
            train: TrainConfig::default(),
        }
    }
}

/// Accuracy on each test split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitAccuracy {
    /// Monday's test set.
    #[serde(with = "crate::json_float")]
    pub monday: f64,
    /// Tuesday's test set.
    #[serde(with = "crate::json_float")]
    pub tuesday: f64,
    /// Both together.
    #[serde(with = "crate::json_float")]
    pub both: f64,
}

/// One strategy with one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyRun {
    /// Strategy name.
    pub strategy: String,
    /// Seed of the selection and of the training order.
    pub seed: u64,
    /// Replay samples selected.
    pub replay: usize,
    /// Test accuracies.
    pub accuracy: SplitAccuracy,
    /// Training curve on tuesday + replay (test = both test sets).
    pub history: Vec<EpochMetrics>,
    /// Confusion matrix on both test sets.
    pub confusion: Vec<Vec<u64>>,
    /// Seconds spent selecting.
    pub selection_seconds: f64,
}

/// Mean and sample standard deviation of a strategy's accuracies over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategySummary {
    /// Strategy name.
    pub strategy: String,
    /// Replay samples (mean over seeds).
    #[serde(with = "crate::json_float")]
    pub replay: f64,
    /// Mean accuracy per split.
    pub mean: SplitAccuracy,
    /// Standard deviation per split (0 with one seed).
    pub std: SplitAccuracy,
}

/// Everything the experiment measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResults {
    /// Class names.
    pub classes: Vec<String>,
    /// The settings.
    pub config: ExperimentConfig,
    /// Sizes of monday train, monday test, tuesday train, tuesday test.
    pub sizes: [usize; 4],
    /// The monday model before any tuesday training.
    pub monday_model: SplitAccuracy,
    /// The monday model's training curve.
    pub monday_history: Vec<EpochMetrics>,
    /// Every strategy and seed.
    pub runs: Vec<StrategyRun>,
    /// Per strategy over seeds, in the configured order.
    pub summary: Vec<StrategySummary>,
    /// Images that could not be read.
    pub skipped: Vec<SkippedImage>,
    /// Seconds computing features.
    pub feature_seconds: f64,
    /// Seconds for the whole experiment.
    pub total_seconds: f64,
}

fn accuracy(
    head: &burn::nn::Linear,
    sets: [&Rows; 3],
    classes: usize,
    device: &Device,
) -> Result<(SplitAccuracy, Vec<Vec<u64>>)> {
    let [m, t, b] = sets;
    let both = evaluate_head(head, &b.features, &b.targets, classes, device)?;
    Ok((
        SplitAccuracy {
            monday: evaluate_head(head, &m.features, &m.targets, classes, device)?.accuracy,
            tuesday: evaluate_head(head, &t.features, &t.targets, classes, device)?.accuracy,
            both: both.accuracy,
        },
        both.confusion,
    ))
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Runs the experiment with a frozen `backbone` (normally EfficientNet-Lite0 with ImageNet
/// weights). `control` is checked between batches (the run then fails with
/// [`Error::Cancelled`]) and told the `features`, each training epoch, and every finished
/// strategy run (`runs`, with the run).
pub fn run_shift_experiment(
    backbone: &Backbone,
    classes: &ClassMap,
    data: ShiftData<'_>,
    config: &ExperimentConfig,
    control: &Control,
) -> Result<ExperimentResults> {
    if config.seeds.is_empty() {
        return Err(Error::invalid("seeds", "at least one seed is needed"));
    }
    let started = Instant::now();
    let t = &config.train;
    let device = t.backend.device();
    let cache = t.feature_cache.as_deref();
    let extractor = FeatureExtractor::with_engine(backbone, &device, t.feature_engine)?;
    let mut skipped = Vec::new();
    let mut features = |root: &Path, manifest: &Manifest| -> Result<Rows> {
        let (features, targets, bad) = extractor_set_features(
            &extractor,
            &ImageSet { root, manifest },
            &t.preprocess,
            cache,
            control,
        )?;
        skipped.extend(bad);
        Ok(Rows { features, targets })
    };
    let monday_train = features(data.monday_root, data.monday_train)?;
    let monday_test = features(data.monday_root, data.monday_test)?;
    let tuesday_train = features(data.tuesday_root, data.tuesday_train)?;
    let tuesday_test = features(data.tuesday_root, data.tuesday_test)?;
    let feature_seconds = started.elapsed().as_secs_f64();
    let both_test = Rows::concat(&[&monday_test, &tuesday_test]);
    let tests = [&monday_test, &tuesday_test, &both_test];
    let n_classes = classes.len();

    let fresh = seeded_linear(backbone.kind().features(), n_classes, t.seed, &device);
    let (monday_head, monday_history) = train_head(
        fresh,
        (&monday_train.features, &monday_train.targets),
        (&monday_test.features, &monday_test.targets),
        n_classes,
        t,
        control,
    )?;
    let (monday_model, _) = accuracy(&monday_head, tests, n_classes, &device)?;
    let embeddings = Embeddings::new(monday_train.features.clone(), monday_train.width().max(1))?
        .l2_normalised();

    let mut runs = Vec::new();
    let total_runs = (config.strategies.len() * config.seeds.len()) as u64;
    for strategy in &config.strategies {
        for &seed in &config.seeds {
            let picked = Instant::now();
            let selection = select(
                strategy,
                &embeddings,
                &monday_train.targets,
                config.budget,
                seed,
            )?;
            let selection_seconds = picked.elapsed().as_secs_f64();
            let replay = monday_train.pick(&selection.indices);
            let train_rows = Rows::concat(&[&tuesday_train, &replay]);
            let run_config = TrainConfig { seed, ..t.clone() };
            let (head, history) = train_head(
                monday_head.clone(),
                (&train_rows.features, &train_rows.targets),
                (&both_test.features, &both_test.targets),
                n_classes,
                &run_config,
                control,
            )?;
            let (accuracy, confusion) = accuracy(&head, tests, n_classes, &device)?;
            let run = StrategyRun {
                strategy: strategy.name().to_string(),
                seed,
                replay: selection.indices.len(),
                accuracy,
                history,
                confusion,
                selection_seconds,
            };
            control.report(
                Progress::items("runs", runs.len() as u64 + 1, Some(total_runs))
                    .with_detail(Detail::Run(&run)),
            );
            runs.push(run);
        }
    }
    let summary = config
        .strategies
        .iter()
        .map(|s| {
            let name = s.name();
            let mine: Vec<&StrategyRun> = runs.iter().filter(|r| r.strategy == name).collect();
            let col = |f: fn(&SplitAccuracy) -> f64| {
                mean_std(&mine.iter().map(|r| f(&r.accuracy)).collect::<Vec<_>>())
            };
            let (m, t, b) = (col(|a| a.monday), col(|a| a.tuesday), col(|a| a.both));
            StrategySummary {
                strategy: name.to_string(),
                replay: mine.iter().map(|r| r.replay as f64).sum::<f64>() / mine.len() as f64,
                mean: SplitAccuracy {
                    monday: m.0,
                    tuesday: t.0,
                    both: b.0,
                },
                std: SplitAccuracy {
                    monday: m.1,
                    tuesday: t.1,
                    both: b.1,
                },
            }
        })
        .collect();
    Ok(ExperimentResults {
        classes: classes.names().to_vec(),
        config: config.clone(),
        sizes: [
            monday_train.targets.len(),
            monday_test.targets.len(),
            tuesday_train.targets.len(),
            tuesday_test.targets.len(),
        ],
        monday_model,
        monday_history,
        runs,
        summary,
        skipped,
        feature_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

impl ExperimentResults {
    /// Writes `results.json` and `results.md` into `out` (atomically).
    pub fn write_files(&self, out: &Path) -> Result<()> {
        let json =
            serde_json::to_string_pretty(self).map_err(|e| Error::internal("results.json", e))?;
        crate::imageio::write_atomic(&out.join("results.json"), json.as_bytes())?;
        crate::imageio::write_atomic(&out.join("results.md"), self.to_markdown().as_bytes())
    }

    /// The results as a Markdown table: mean ± standard deviation over seeds, in percent.
    pub fn to_markdown(&self) -> String {
        let pct = |m: f64, s: f64| format!("{:.1} ± {:.1}", 100.0 * m, 100.0 * s);
        let mut out = format!(
            "Replay budget {:?}, seeds {:?}; monday train/test {}/{}, tuesday train/test {}/{}.\n\n",
            self.config.budget,
            self.config.seeds,
            self.sizes[0],
            self.sizes[1],
            self.sizes[2],
            self.sizes[3]
        );
        out.push_str("| model | replay | monday test % | tuesday test % | both % |\n|---|---:|---:|---:|---:|\n");
        let m = &self.monday_model;
        out.push_str(&format!(
            "| monday model (before tuesday) | - | {:.1} | {:.1} | {:.1} |\n",
            100.0 * m.monday,
            100.0 * m.tuesday,
            100.0 * m.both
        ));
        for s in &self.summary {
            out.push_str(&format!(
                "| {} | {:.0} | {} | {} | {} |\n",
                s.strategy,
                s.replay,
                pct(s.mean.monday, s.std.monday),
                pct(s.mean.tuesday, s.std.tuesday),
                pct(s.mean.both, s.std.both)
            ));
        }
        out
    }
}
