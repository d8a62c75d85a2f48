//! The monday -> tuesday shift experiment: train on monday, then for every replay strategy
//! train on tuesday plus the selected monday samples, and evaluate every model on monday's,
//! tuesday's and both test sets over several seeds. Writes `results.json` and `results.md`.
//!
//! ```text
//! cargo run --release --example shift_experiment -- --data data --out target/experiment
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::experiment::{ExperimentConfig, ShiftData, run_shift_experiment};
use mlops_core::model::Backbone;
use mlops_core::model::weights::load_lite0;
use mlops_core::select::{Budget, Strategy};
use mlops_core::train::TrainConfig;

/// Compare replay strategies on the monday -> tuesday shift.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Demo data folder (monday/, tuesday/ and their *_train/_test.jsonl manifests).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Folder holding the EfficientNet-Lite0 wheel.
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "target/experiment")]
    out: PathBuf,
    /// Replay budget (samples).
    #[arg(long, default_value_t = 220)]
    budget: usize,
    /// Seeds, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "2022,2023,2024")]
    seeds: Vec<u64>,
    /// Strategies, comma separated (default: none, random, cp_l1, cp_l2, cp_cosine, k_center, herding, all).
    #[arg(long, value_delimiter = ',')]
    strategies: Option<Vec<String>>,
    /// Folder for cached backbone features.
    #[arg(long, default_value = "target/feature-cache")]
    feature_cache: PathBuf,
}

/// mimalloc: see the train example.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let read = |name: &str| Manifest::read(&args.data.join(name));
    let (mtr, mte, ttr, tte) = (
        read("monday_train.jsonl")?,
        read("monday_test.jsonl")?,
        read("tuesday_train.jsonl")?,
        read("tuesday_test.jsonl")?,
    );
    let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"])?;
    let mut config = ExperimentConfig {
        budget: Budget::Count(args.budget),
        seeds: args.seeds.clone(),
        train: TrainConfig {
            feature_cache: Some(args.feature_cache.clone()),
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
    let (monday, tuesday) = (args.data.join("monday"), args.data.join("tuesday"));
    let data = ShiftData {
        monday_root: &monday,
        monday_train: &mtr,
        monday_test: &mte,
        tuesday_root: &tuesday,
        tuesday_train: &ttr,
        tuesday_test: &tte,
    };
    let results = run_shift_experiment(
        &backbone,
        &classes,
        data,
        &config,
        &mlops_examples::bars(true),
    )?;
    let markdown = results.to_markdown();
    eprintln!("{markdown}");
    eprintln!(
        "features {:.1} s, whole experiment {:.1} s",
        results.feature_seconds, results.total_seconds
    );
    let font = mlops_examples::chart_font(&args.wheels)?;
    mlops_core::report::write_report(&results, &args.out, Some(font))?;
    eprintln!("results and charts in {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    mlops_examples::exit_code(run(&Args::parse()))
}
