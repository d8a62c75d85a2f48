//! The shift experiment: how to keep a model good on the old day's data (monday) while adapting
//! it to shifted data (tuesday, one or more corruption kinds), comparing replay strategies and
//! budgets over seeds, with statistics that say when a difference is real.
//!
//! 1. Every image runs through the frozen part of the backbone once (cached): pooled features
//!    for the linear head ([`TrainMode::FrozenBackbone`]), the activation at the cut for partial
//!    fine-tuning ([`TrainMode::PartialFineTune`]: the last `tail_blocks` units with BatchNorm
//!    in training mode; [`TrainMode::FineTune`]: every unit after the stem).
//! 2. The monday model: trained on monday's training set with the configured recipe.
//! 3. For every shift, strategy, budget and seed: the replay set is selected from monday's
//!    training set on the monday model's L2-normalised pooled features (the same embedding for
//!    every strategy; `uncertainty` also uses its class probabilities), and a copy of the
//!    monday model is trained further on the shift's training set plus the replay set.
//! 4. Every model is evaluated on monday's test set (forgetting = the monday model's accuracy
//!    there minus this one's), the shift's test set (plasticity) and both.
//! 5. Per cell (shift, strategy, budget): means with 95% confidence intervals over seeds, and a
//!    two-sided paired t-test against `random` at the same budget (paired by seed), Holm-
//!    Bonferroni corrected over the strategies compared in that cell.

use std::path::Path;
use std::time::Instant;

use burn::nn::Linear;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::control::{Control, Progress};
use crate::dataset::{ClassMap, Manifest};
use crate::error::{Error, Result};
use crate::infer::FeatureExtractor;
use crate::model::classifier::seeded_linear;
use crate::model::{Backbone, TAIL_UNITS, activation_shape};
use crate::select::{Budget, Embeddings, Strategy, select_with_probabilities};
use crate::stats::{Interval, PairedTest, holm, mean_ci95, paired_t_test};
use crate::train::fast::{Contiguous, FastNet, train_fast};
use crate::train::features::Rows;
use crate::train::{
    EpochMetrics, Evaluation, ImageSet, SkippedImage, TrainConfig, TrainMode, evaluate_head,
    extractor_set_features, train_head,
};

/// One shifted day: its name (the corruption kind, for example), image root and manifests.
#[derive(Debug, Clone, Copy)]
pub struct Shift<'a> {
    /// Name in tables and charts (`mixed`, `boxes`, ...).
    pub name: &'a str,
    /// Folder of the shifted images.
    pub root: &'a Path,
    /// Training manifest.
    pub train: &'a Manifest,
    /// Test manifest.
    pub test: &'a Manifest,
}

/// The old day's data and one or more shifted days.
#[derive(Debug, Clone)]
pub struct ShiftData<'a> {
    /// Folder of monday's images.
    pub monday_root: &'a Path,
    /// Monday's training manifest.
    pub monday_train: &'a Manifest,
    /// Monday's test manifest.
    pub monday_test: &'a Manifest,
    /// The shifted days, each compared on its own.
    pub shifts: Vec<Shift<'a>>,
}

/// Experiment settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExperimentConfig {
    /// Strategies compared (default: every [`Strategy`]).
    pub strategies: Vec<Strategy>,
    /// Replay budgets in samples (default 0, 22, 55, 110, 220, 440; 220 is the original's).
    /// `none` and `all` run once per seed whatever the budgets; budget 0 is `none`.
    pub budgets: Vec<usize>,
    /// Seeds; each cell runs once per seed (default 2022 to 2026).
    pub seeds: Vec<u64>,
    /// Training settings of the monday model and of every adapted model; `mode` chooses what
    /// is trained (linear head, partial fine-tuning with `tail_blocks`, or every unit after
    /// the stem).
    pub train: TrainConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            strategies: Strategy::NAMES
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            budgets: vec![0, 22, 55, 110, 220, 440],
            seeds: (2022..2027).collect(),
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
    /// The shift's test set.
    #[serde(with = "crate::json_float")]
    pub tuesday: f64,
    /// Both together.
    #[serde(with = "crate::json_float")]
    pub both: f64,
}

/// One strategy, budget and seed on one shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyRun {
    /// The shift's name.
    pub shift: String,
    /// Strategy name.
    pub strategy: String,
    /// Budget asked for (`none`: 0, `all`: monday's training rows).
    pub budget: usize,
    /// Seed of the selection and of the training order.
    pub seed: u64,
    /// Replay samples selected.
    pub replay: usize,
    /// Test accuracies.
    pub accuracy: SplitAccuracy,
    /// Monday accuracy of the monday model minus this model's (points of 1).
    #[serde(with = "crate::json_float")]
    pub forgetting: f64,
    /// Training curve on the shift's training set + replay (linear head: test = both test
    /// sets; partial fine-tuning evaluates only at the end, so the test columns are `NaN`).
    pub history: Vec<EpochMetrics>,
    /// Confusion matrix on both test sets.
    pub confusion: Vec<Vec<u64>>,
    /// Seconds spent selecting.
    pub selection_seconds: f64,
    /// Seconds spent training.
    pub train_seconds: f64,
}

/// A strategy against `random` at the same budget, paired by seed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VersusRandom {
    /// On both test sets (this strategy minus random).
    pub both: PairedTest,
    /// On monday's test set (positive: forgets less than random).
    pub monday: PairedTest,
}

/// One cell of the sweep over seeds: a strategy at a budget on a shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The shift's name.
    pub shift: String,
    /// Strategy name.
    pub strategy: String,
    /// Budget asked for.
    pub budget: usize,
    /// Replay samples (mean over seeds).
    #[serde(with = "crate::json_float")]
    pub replay: f64,
    /// Accuracy on monday's test set.
    pub monday: Interval,
    /// Accuracy on the shift's test set (plasticity).
    pub tuesday: Interval,
    /// Accuracy on both test sets.
    pub both: Interval,
    /// Forgetting: the monday model's monday accuracy minus this cell's.
    pub forgetting: Interval,
    /// The paired comparison with `random` at this budget (`None` for random itself, or when
    /// random was not run at this budget).
    pub versus_random: Option<VersusRandom>,
}

/// A shift's sizes and the monday model's accuracy on it before any adaptation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftSummary {
    /// The shift's name.
    pub name: String,
    /// Training and test rows.
    pub sizes: [usize; 2],
    /// The monday model on monday's test set, this shift's and both.
    pub before: SplitAccuracy,
}

/// Everything the experiment measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResults {
    /// Class names.
    pub classes: Vec<String>,
    /// The settings.
    pub config: ExperimentConfig,
    /// What was trained: `linear_head`, or `tail<N>` (the last N units and the head).
    pub tuning: String,
    /// Monday's training and test rows.
    pub monday_sizes: [usize; 2],
    /// Every shift with the monday model's accuracy before adaptation.
    pub shifts: Vec<ShiftSummary>,
    /// The monday model's training curve.
    pub monday_history: Vec<EpochMetrics>,
    /// Every run.
    pub runs: Vec<StrategyRun>,
    /// Per shift, strategy and budget over seeds, in the configured order.
    pub cells: Vec<Cell>,
    /// Images that could not be read.
    pub skipped: Vec<SkippedImage>,
    /// Values held per image (pooled features or the activation at the cut).
    pub row_len: usize,
    /// Memory of the cached rows of every set, in bytes.
    pub cache_bytes: u64,
    /// Seconds computing (or reading cached) features.
    pub feature_seconds: f64,
    /// Mean seconds of one training epoch of an adapted model.
    pub epoch_seconds: f64,
    /// Seconds for the whole experiment.
    pub total_seconds: f64,
}

/// What is trained: a linear head on pooled features, or a tail of the network with the head
/// on activation rows (trained on the fast path).
#[derive(Debug, Clone)]
enum Model {
    Head(Linear),
    Tail(Box<FastNet>),
}

/// `rows` as input rows of `tail`.
fn view<'a>(rows: &'a Rows, tail: &FastNet) -> Contiguous<'a> {
    Contiguous {
        values: &rows.features,
        row_len: tail.input_len(),
    }
}

impl Model {
    /// Trains further on `train`; `test` is evaluated per epoch for the history (the linear
    /// head only: an epoch of a tail costs far more than its evaluation is worth here).
    fn train(
        self,
        train: &Rows,
        test: &Rows,
        classes: usize,
        config: &TrainConfig,
        control: &Control,
    ) -> Result<(Model, Vec<EpochMetrics>)> {
        Ok(match self {
            Model::Head(head) => {
                let (head, history) = train_head(
                    head,
                    (&train.features, &train.targets),
                    (&test.features, &test.targets),
                    classes,
                    config,
                    control,
                )?;
                (Model::Head(head), history)
            }
            Model::Tail(tail) => {
                let empty = Rows::concat(&[]);
                let (train_rows, test_rows) = (view(train, &tail), view(&empty, &tail));
                let (tail, history) = train_fast(
                    *tail,
                    (&train_rows, &train.targets),
                    (&test_rows, &[]),
                    config,
                    control,
                )?;
                (Model::Tail(Box::new(tail)), history)
            }
        })
    }

    fn evaluate(&self, rows: &Rows, classes: usize, device: &Device) -> Result<Evaluation> {
        match self {
            Model::Head(head) => {
                evaluate_head(head, &rows.features, &rows.targets, classes, device)
            }
            Model::Tail(tail) => tail.evaluate(&view(rows, tail), &rows.targets),
        }
    }

    /// Pooled features of `rows` (the rows themselves for a linear head).
    fn features(&self, rows: &Rows) -> Result<Vec<f32>> {
        match self {
            Model::Head(_) => Ok(rows.features.clone()),
            Model::Tail(tail) => tail.features_of(&view(rows, tail)),
        }
    }

    /// Softmax probabilities of `rows`, row-major.
    fn probabilities(&self, rows: &Rows, device: &Device) -> Result<Vec<f32>> {
        let logits = match self {
            Model::Head(head) => {
                let x = Tensor::<2>::from_data(
                    TensorData::new(rows.features.clone(), [rows.targets.len(), rows.width()]),
                    device,
                );
                head.forward(x)
                    .into_data()
                    .try_to_vec_as::<f32>()
                    .map_err(|e| Error::internal("logits", e))?
            }
            Model::Tail(tail) => tail.logits_of(&view(rows, tail))?,
        };
        let classes = logits.len().checked_div(rows.targets.len()).unwrap_or(1);
        let mut probabilities = logits;
        for row in probabilities.chunks_mut(classes.max(1)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|v| *v = (*v - max).exp());
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
        }
        Ok(probabilities)
    }
}

/// Accuracies on monday's and a shift's test sets, both combined, and the combined confusion.
fn accuracy(
    model: &Model,
    monday: &Rows,
    tuesday: &Rows,
    classes: usize,
    device: &Device,
) -> Result<(SplitAccuracy, Vec<Vec<u64>>)> {
    let m = model.evaluate(monday, classes, device)?;
    let t = model.evaluate(tuesday, classes, device)?;
    let (nm, nt) = (monday.targets.len() as f64, tuesday.targets.len() as f64);
    let confusion = m
        .confusion
        .iter()
        .zip(&t.confusion)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x + y).collect())
        .collect();
    let correct = |e: &Evaluation, n: f64| if n > 0.0 { e.accuracy * n } else { 0.0 };
    Ok((
        SplitAccuracy {
            monday: m.accuracy,
            tuesday: t.accuracy,
            both: (correct(&m, nm) + correct(&t, nt)) / (nm + nt),
        },
        confusion,
    ))
}

/// Units of the network trained in `config`'s mode (0: the linear head only).
fn tail_units(config: &TrainConfig) -> usize {
    match config.mode {
        TrainMode::FrozenBackbone => 0,
        TrainMode::PartialFineTune => config.tail_blocks,
        TrainMode::FineTune => TAIL_UNITS,
    }
}

/// The (strategy, budget) pairs run per seed, in the configured order.
fn plan(config: &ExperimentConfig, monday_rows: usize) -> Vec<(Strategy, usize)> {
    let mut pairs = Vec::new();
    for strategy in &config.strategies {
        match strategy {
            Strategy::None => pairs.push((*strategy, 0)),
            Strategy::All => pairs.push((*strategy, monday_rows)),
            _ => pairs.extend(
                config
                    .budgets
                    .iter()
                    .filter(|&&b| b > 0)
                    .map(|&b| (*strategy, b)),
            ),
        }
    }
    pairs
}

/// Runs the experiment from `backbone` (normally EfficientNet-Lite0 with ImageNet weights;
/// partial fine-tuning needs it). `control` is checked between batches (the run then fails
/// with [`Error::Cancelled`]) and told the `features`, each training epoch, and every finished
/// run (`runs`, with the run).
pub fn run_shift_experiment(
    backbone: &Backbone,
    classes: &ClassMap,
    data: &ShiftData<'_>,
    config: &ExperimentConfig,
    control: &Control,
) -> Result<ExperimentResults> {
    validate(config, data)?;
    let started = Instant::now();
    let t = &config.train;
    let device = t.backend.device();
    let units = tail_units(t);
    let extractor = FeatureExtractor::with_cut(backbone, &device, t.feature_engine, units)?;
    let size = t.preprocess.size as usize;
    let shape = match units {
        0 => [1, 1, extractor.dim()],
        _ => activation_shape(size, size, TAIL_UNITS - units),
    };
    let mut skipped = Vec::new();
    let mut rows = |root: &Path, manifest: &Manifest| -> Result<Rows> {
        let (values, targets, bad) = extractor_set_features(
            &extractor,
            &ImageSet { root, manifest },
            &t.preprocess,
            t.feature_cache.as_deref(),
            control,
        )?;
        skipped.extend(bad);
        Ok(Rows {
            features: values,
            targets,
        })
    };
    let monday_train = rows(data.monday_root, data.monday_train)?;
    let monday_test = rows(data.monday_root, data.monday_test)?;
    let mut shift_rows = Vec::with_capacity(data.shifts.len());
    for shift in &data.shifts {
        shift_rows.push((
            rows(shift.root, shift.train)?,
            rows(shift.root, shift.test)?,
        ));
    }
    drop(extractor);
    if monday_train.targets.is_empty() {
        return Err(Error::invalid("monday_train", "no readable training image"));
    }
    let feature_seconds = started.elapsed().as_secs_f64();
    let cache_bytes = (monday_train.features.len()
        + monday_test.features.len()
        + shift_rows
            .iter()
            .map(|(a, b)| a.features.len() + b.features.len())
            .sum::<usize>()) as u64
        * 4;
    let n_classes = classes.len();

    let head = seeded_linear(backbone.kind().features(), n_classes, t.seed, &device);
    let fresh = match (units, backbone) {
        (0, _) => Model::Head(head),
        (_, Backbone::EfficientNetLite0(net)) => {
            Model::Tail(Box::new(FastNet::of(net, &head, units, false, shape)?))
        }
        _ => {
            return Err(Error::invalid(
                "mode",
                "partial fine-tuning needs EfficientNet-Lite0",
            ));
        }
    };
    let (monday_model, monday_history) =
        fresh.train(&monday_train, &monday_test, n_classes, t, control)?;
    let embeddings = Embeddings::new(
        monday_model.features(&monday_train)?,
        backbone.kind().features(),
    )?
    .l2_normalised();
    let probabilities = Embeddings::named(
        "probabilities",
        monday_model.probabilities(&monday_train, &device)?,
        n_classes,
    )?;

    let pairs = plan(config, monday_train.targets.len());
    let total_runs = (pairs.len() * config.seeds.len() * data.shifts.len()) as u64;
    let mut runs = Vec::new();
    let mut shifts = Vec::new();
    let mut epoch_seconds = Vec::new();
    for (shift, (shift_train, shift_test)) in data.shifts.iter().zip(&shift_rows) {
        let both_test = Rows::concat(&[&monday_test, shift_test]);
        let (before, _) = accuracy(&monday_model, &monday_test, shift_test, n_classes, &device)?;
        shifts.push(ShiftSummary {
            name: shift.name.to_string(),
            sizes: [shift_train.targets.len(), shift_test.targets.len()],
            before,
        });
        for &(strategy, budget) in &pairs {
            for &seed in &config.seeds {
                let picked = Instant::now();
                let selection = select_with_probabilities(
                    &strategy,
                    &embeddings,
                    &monday_train.targets,
                    &probabilities,
                    Budget::Count(budget),
                    seed,
                )?;
                let selection_seconds = picked.elapsed().as_secs_f64();
                let replay = monday_train.pick(&selection.indices);
                let train_rows = Rows::concat(&[shift_train, &replay]);
                let run_config = TrainConfig { seed, ..t.clone() };
                let trained = Instant::now();
                let (model, history) = monday_model.clone().train(
                    &train_rows,
                    &both_test,
                    n_classes,
                    &run_config,
                    control,
                )?;
                let train_seconds = trained.elapsed().as_secs_f64();
                epoch_seconds.push(train_seconds / t.epochs as f64);
                let (accuracy, confusion) =
                    accuracy(&model, &monday_test, shift_test, n_classes, &device)?;
                let run = StrategyRun {
                    shift: shift.name.to_string(),
                    strategy: strategy.name().to_string(),
                    budget,
                    seed,
                    replay: selection.indices.len(),
                    forgetting: before.monday - accuracy.monday,
                    accuracy,
                    history,
                    confusion,
                    selection_seconds,
                    train_seconds,
                };
                control.report(
                    Progress::items("runs", runs.len() as u64 + 1, Some(total_runs))
                        .with_detail(&run),
                );
                runs.push(run);
            }
        }
    }
    let names: Vec<&str> = data.shifts.iter().map(|s| s.name).collect();
    let cells = summarise(&names, &pairs, &runs);
    Ok(ExperimentResults {
        classes: classes.names().to_vec(),
        config: config.clone(),
        tuning: match units {
            0 => "linear_head".to_string(),
            n => format!("tail{n}"),
        },
        monday_sizes: [monday_train.targets.len(), monday_test.targets.len()],
        shifts,
        monday_history,
        runs,
        cells,
        skipped,
        row_len: shape.iter().product(),
        cache_bytes,
        feature_seconds,
        epoch_seconds: epoch_seconds.iter().sum::<f64>() / epoch_seconds.len().max(1) as f64,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

fn validate(config: &ExperimentConfig, data: &ShiftData<'_>) -> Result<()> {
    config.train.validate()?;
    if config.seeds.is_empty() {
        return Err(Error::invalid("seeds", "at least one seed is needed"));
    }
    if config.strategies.is_empty() {
        return Err(Error::invalid(
            "strategies",
            "at least one strategy is needed",
        ));
    }
    if data.shifts.is_empty() {
        return Err(Error::invalid(
            "shifts",
            "at least one shifted day is needed",
        ));
    }
    let mut names: Vec<&str> = data.shifts.iter().map(|s| s.name).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid(
            "shifts",
            format!("two shifts are named `{}`", w[0]),
        ));
    }
    Ok(())
}

/// Cells over seeds, with the paired tests against random Holm-corrected per (shift, budget).
fn summarise(shifts: &[&str], pairs: &[(Strategy, usize)], runs: &[StrategyRun]) -> Vec<Cell> {
    let of = |shift: &str, strategy: &str, budget: usize| -> Vec<&StrategyRun> {
        runs.iter()
            .filter(|r| r.shift == shift && r.strategy == strategy && r.budget == budget)
            .collect()
    };
    let mut cells = Vec::new();
    for &shift in shifts {
        let first = cells.len();
        for &(strategy, budget) in pairs {
            let mine = of(shift, strategy.name(), budget);
            let column =
                |f: fn(&StrategyRun) -> f64| -> Vec<f64> { mine.iter().map(|r| f(r)).collect() };
            let random = of(
                shift,
                Strategy::Random {
                    class_balanced: false,
                }
                .name(),
                budget,
            );
            let versus_random = (strategy
                != Strategy::Random {
                    class_balanced: false,
                })
            .then(|| paired_with(&mine, &random))
            .flatten();
            cells.push(Cell {
                shift: shift.to_string(),
                strategy: strategy.name().to_string(),
                budget,
                replay: column(|r| r.replay as f64).iter().sum::<f64>() / mine.len().max(1) as f64,
                monday: mean_ci95(&column(|r| r.accuracy.monday)),
                tuesday: mean_ci95(&column(|r| r.accuracy.tuesday)),
                both: mean_ci95(&column(|r| r.accuracy.both)),
                forgetting: mean_ci95(&column(|r| r.forgetting)),
                versus_random,
            });
        }
        // Holm over the strategies compared with random at each budget, per metric.
        let mut budgets: Vec<usize> = cells[first..]
            .iter()
            .filter(|c| c.versus_random.is_some())
            .map(|c| c.budget)
            .collect();
        budgets.sort_unstable();
        budgets.dedup();
        for budget in budgets {
            let family: Vec<usize> = (first..cells.len())
                .filter(|&i| cells[i].budget == budget && cells[i].versus_random.is_some())
                .collect();
            for both in [true, false] {
                let pick = |c: &Cell| {
                    c.versus_random
                        .map(|v| if both { v.both } else { v.monday })
                };
                let p: Vec<f64> = family
                    .iter()
                    .map(|&i| pick(&cells[i]).map_or(f64::NAN, |t| t.p))
                    .collect();
                for (&i, adjusted) in family.iter().zip(holm(&p)) {
                    if let Some(v) = cells[i].versus_random.as_mut() {
                        if both {
                            v.both.p_adjusted = adjusted;
                        } else {
                            v.monday.p_adjusted = adjusted;
                        }
                    }
                }
            }
        }
    }
    cells
}

/// The paired tests of `mine` against `random`, matched by seed (`None` without common seeds).
fn paired_with(mine: &[&StrategyRun], random: &[&StrategyRun]) -> Option<VersusRandom> {
    let mut a = (Vec::new(), Vec::new());
    let mut b = (Vec::new(), Vec::new());
    for r in mine {
        if let Some(q) = random.iter().find(|q| q.seed == r.seed) {
            a.0.push(r.accuracy.both);
            b.0.push(q.accuracy.both);
            a.1.push(r.accuracy.monday);
            b.1.push(q.accuracy.monday);
        }
    }
    (!a.0.is_empty()).then(|| VersusRandom {
        both: paired_t_test(&a.0, &b.0),
        monday: paired_t_test(&a.1, &b.1),
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

    /// Recomputes every cell from the runs (for example after merging the runs of several
    /// processes, or results written by an older version).
    pub fn resummarise(&mut self) {
        let names: Vec<&str> = self.shifts.iter().map(|s| s.name.as_str()).collect();
        let pairs = plan(&self.config, self.monday_sizes[0]);
        self.cells = summarise(&names, &pairs, &self.runs);
    }

    /// The cell of `shift`, `strategy` and `budget`, if it ran.
    pub fn cell(&self, shift: &str, strategy: &str, budget: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.shift == shift && c.strategy == strategy && c.budget == budget)
    }

    /// The results as Markdown: per shift, accuracy on both test sets, forgetting and the
    /// shift's accuracy per strategy and budget (mean ± 95% interval half-width over seeds, in
    /// percent), with the paired comparisons against random marked.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Tuning `{}`; seeds {:?}; monday train/test {}/{}. Cells: mean ± half-width of the \
             95% confidence interval over seeds (Student's t), in percent. Marks: `+` / `-` = \
             better / worse than `random` at the same budget, two-sided paired t-test over \
             seeds (the exact sign test where every difference is the same), Holm-Bonferroni \
             corrected over the strategies compared at that budget, adjusted p < 0.05.\n",
            self.tuning, self.config.seeds, self.monday_sizes[0], self.monday_sizes[1],
        );
        let budgets = self.budget_columns();
        for shift in &self.shifts {
            out.push_str(&format!(
                "\n### Shift `{}` (train/test {}/{}); the monday model before: monday {:.1}, {} {:.1}, both {:.1}\n",
                shift.name,
                shift.sizes[0],
                shift.sizes[1],
                100.0 * shift.before.monday,
                shift.name,
                100.0 * shift.before.tuesday,
                100.0 * shift.before.both,
            ));
            for (title, metric) in [
                ("Accuracy on both test sets", Metric::Both),
                (
                    "Forgetting (monday accuracy lost, points)",
                    Metric::Forgetting,
                ),
                (
                    "Accuracy on the shift's test set (plasticity)",
                    Metric::Tuesday,
                ),
            ] {
                out.push_str(&format!("\n{title}:\n\n| strategy |"));
                for b in &budgets {
                    out.push_str(&format!(" {b} |"));
                }
                out.push_str(&format!(" all ({}) |\n|---|", self.monday_sizes[0]));
                out.push_str(&"---:|".repeat(budgets.len() + 1));
                out.push('\n');
                for strategy in self.strategy_rows() {
                    out.push_str(&format!("| {strategy} |"));
                    for &b in &budgets {
                        let text = (strategy != Strategy::All.name())
                            .then(|| self.cell(&shift.name, strategy, b))
                            .flatten()
                            .map(|c| metric.format(c))
                            .unwrap_or_default();
                        out.push_str(&format!(" {text} |"));
                    }
                    let all = (strategy == Strategy::All.name())
                        .then(|| {
                            self.cells
                                .iter()
                                .find(|c| c.shift == shift.name && c.strategy == strategy)
                        })
                        .flatten()
                        .map(|c| metric.format(c))
                        .unwrap_or_default();
                    out.push_str(&format!(" {all} |\n"));
                }
            }
        }
        out.push_str(&format!(
            "\nRows per image {} ({:.0} MB cached for all sets); features {:.1} s; mean epoch {:.3} s; whole experiment {:.1} s.\n",
            self.row_len,
            self.cache_bytes as f64 / 1e6,
            self.feature_seconds,
            self.epoch_seconds,
            self.total_seconds
        ));
        out
    }

    /// The strategies in table order (configured order, `none` and `all` included).
    pub fn strategy_rows(&self) -> Vec<&'static str> {
        self.config.strategies.iter().map(Strategy::name).collect()
    }

    /// The budget columns: every budget a cell ran at except `all`'s, ascending.
    pub fn budget_columns(&self) -> Vec<usize> {
        let mut budgets: Vec<usize> = self
            .cells
            .iter()
            .filter(|c| c.strategy != Strategy::All.name())
            .map(|c| c.budget)
            .collect();
        budgets.sort_unstable();
        budgets.dedup();
        budgets
    }
}

/// A column of the Markdown tables.
#[derive(Clone, Copy)]
enum Metric {
    Both,
    Tuesday,
    Forgetting,
}

impl Metric {
    fn format(self, c: &Cell) -> String {
        let (interval, test) = match self {
            Metric::Both => (c.both, c.versus_random.map(|v| v.both)),
            Metric::Tuesday => (c.tuesday, None),
            Metric::Forgetting => (c.forgetting, c.versus_random.map(|v| v.monday)),
        };
        let mark = match test {
            Some(t) if t.p_adjusted < 0.05 && t.difference.mean > 0.0 => "+",
            Some(t) if t.p_adjusted < 0.05 && t.difference.mean < 0.0 => "-",
            _ => "",
        };
        let half = if interval.half_width.is_nan() {
            String::new()
        } else {
            format!(" ± {:.1}", 100.0 * interval.half_width)
        };
        format!("{:.1}{half}{mark}", 100.0 * interval.mean)
    }
}
