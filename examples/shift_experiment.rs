//! The shift experiment: train on monday, then for every replay strategy, budget and seed train
//! on a shifted day plus the selected monday samples, and evaluate every model on monday's, the
//! shift's and both test sets; 95% intervals over seeds and paired tests against random.
//! Writes `results.json`, `results.md` and the charts into `--out`.
//!
//! ```text
//! # the linear head on the demo's tuesday (mixed corruptions): every strategy and budget
//! cargo run --release --example shift_experiment -- --data data --out target/experiment/linear_head
//! # partial fine-tuning of the head convolution, per corruption kind
//! cargo run --release --example shift_experiment -- --mode partial_fine_tune --tail-blocks 1 \
//!     --shifts mixed,boxes,mosaic,line --out target/experiment/tail1
//! ```
//!
//! Classes come from the manifests' class folders. `--shifts` names the shifted days: `mixed`
//! is the data folder's `tuesday/` with its manifests; `boxes`, `mosaic` and `line` are made
//! from monday's images with that corruption (seeded, once, under `--shift-data`) and use
//! monday's manifests.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use mlops_core::corrupt::{Corruption, FolderOptions, corrupt_folder};
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::experiment::{ExperimentConfig, Shift, ShiftData, run_shift_experiment};
use mlops_core::model::Backbone;
use mlops_core::model::weights::load_lite0;
use mlops_core::select::Strategy;
use mlops_core::train::{TrainConfig, TrainMode};

/// Compare replay strategies and budgets on shifted data.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Data folder: monday/, tuesday/ and their {monday,tuesday}_{train,test}.jsonl manifests.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Folder holding the EfficientNet-Lite0 wheel.
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "target/experiment/linear_head")]
    out: PathBuf,
    /// Shifted days, comma separated: mixed (the data's tuesday), boxes, mosaic, line.
    #[arg(long, value_delimiter = ',', default_value = "mixed")]
    shifts: Vec<String>,
    /// Where the boxes / mosaic / line days are made (once per seed).
    #[arg(long, default_value = "target/shift-data")]
    shift_data: PathBuf,
    /// Seed of the corruptions made for --shifts.
    #[arg(long, default_value_t = 2022)]
    corruption_seed: u64,
    /// Replay budgets (samples), comma separated; 0 is `none`.
    #[arg(long, value_delimiter = ',', default_value = "0,22,55,110,220,440")]
    budgets: Vec<usize>,
    /// Seeds, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2022,2023,2024,2025,2026"
    )]
    seeds: Vec<u64>,
    /// Strategies, comma separated (default: all of them).
    #[arg(long, value_delimiter = ',')]
    strategies: Option<Vec<String>>,
    /// What is trained: frozen_backbone (linear head), partial_fine_tune, fine_tune.
    #[arg(long, default_value = "frozen_backbone")]
    mode: String,
    /// Units trained from the end of the backbone in partial_fine_tune (1 = head convolution).
    #[arg(long, default_value_t = 1)]
    tail_blocks: usize,
    /// Instead of running: read this results.json, recompute the statistics from its runs and
    /// write results, tables and charts into --out.
    #[arg(long)]
    summarise: Option<PathBuf>,
    /// Folder for cached backbone features and activations.
    #[arg(long, default_value = "target/feature-cache")]
    feature_cache: PathBuf,
}

/// mimalloc: see the train example.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The corruption that makes a shift named `name` from monday (`None` for `mixed`, the data's
/// own tuesday).
fn corruption(name: &str) -> Result<Option<Corruption>, String> {
    match name {
        "mixed" => Ok(None),
        "boxes" => Ok(Some(Corruption::random_boxes())),
        "mosaic" => Ok(Some(Corruption::mosaic())),
        "line" => Ok(Some(Corruption::random_line())),
        other => Err(format!(
            "unknown shift `{other}`; expected mixed, boxes, mosaic or line"
        )),
    }
}

/// Monday's images corrupted with `corruption` into `dir` (once: a stamp records the recipe).
fn make_shift(monday: &Path, dir: &Path, corruption: &Corruption, seed: u64) -> Result<(), String> {
    let stamp = dir.join(".recipe");
    let recipe = format!("{};seed={seed}\n", corruption.name());
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(recipe.as_str()) {
        return Ok(());
    }
    let options = FolderOptions {
        seed,
        ..FolderOptions::default()
    };
    let report = corrupt_folder(
        monday,
        dir,
        corruption,
        &options,
        &mlops_examples::bars(true),
    )
    .map_err(|e| e.to_string())?;
    if !report.is_complete() {
        return Err(format!(
            "corrupting {} failed for some files",
            monday.display()
        ));
    }
    std::fs::write(&stamp, recipe).map_err(|e| format!("{}: {e}", stamp.display()))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(file) = &args.summarise {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut results: mlops_core::ExperimentResults =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        results.resummarise();
        let font = mlops_examples::chart_font(&args.wheels)?;
        mlops_core::report::write_report(&results, &args.out, Some(font))?;
        eprintln!("{}", results.to_markdown());
        return Ok(());
    }
    let read = |name: &str| Manifest::read(&args.data.join(name));
    let (mtr, mte, ttr, tte) = (
        read("monday_train.jsonl")?,
        read("monday_test.jsonl")?,
        read("tuesday_train.jsonl")?,
        read("tuesday_test.jsonl")?,
    );
    let classes = ClassMap::from_manifests(&[&mtr, &mte, &ttr, &tte])?;
    let monday = args.data.join("monday");
    let mut roots = Vec::new();
    for name in &args.shifts {
        roots.push(match corruption(name)? {
            None => (args.data.join("tuesday"), false),
            Some(c) => {
                let dir = args
                    .shift_data
                    .join(format!("{name}-{}", args.corruption_seed));
                make_shift(&monday, &dir, &c, args.corruption_seed)?;
                (dir, true)
            }
        });
    }
    let shifts = args
        .shifts
        .iter()
        .zip(&roots)
        .map(|(name, (root, from_monday))| Shift {
            name,
            root,
            train: if *from_monday { &mtr } else { &ttr },
            test: if *from_monday { &mte } else { &tte },
        })
        .collect();
    let mut config = ExperimentConfig {
        budgets: args.budgets.clone(),
        seeds: args.seeds.clone(),
        train: TrainConfig {
            feature_cache: Some(args.feature_cache.clone()),
            mode: args.mode.parse::<TrainMode>()?,
            tail_blocks: args.tail_blocks,
            ..TrainConfig::default()
        },
        ..ExperimentConfig::default()
    };
    if let Some(names) = &args.strategies {
        config.strategies = names
            .iter()
            .map(|n| n.parse::<Strategy>())
            .collect::<Result<_, _>>()?;
    }
    let device = config.train.backend.device();
    let backbone = Backbone::EfficientNetLite0(load_lite0(
        &mlops_examples::lite0_wheel(&args.wheels)?,
        false,
        &device,
    )?);
    let data = ShiftData {
        monday_root: &monday,
        monday_train: &mtr,
        monday_test: &mte,
        shifts,
    };
    let results = run_shift_experiment(
        &backbone,
        &classes,
        &data,
        &config,
        &mlops_examples::bars(true),
    )?;
    eprintln!("{}", results.to_markdown());
    let font = mlops_examples::chart_font(&args.wheels)?;
    mlops_core::report::write_report(&results, &args.out, Some(font))?;
    eprintln!("results and charts in {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    mlops_examples::exit_code(run(&Args::parse()))
}
