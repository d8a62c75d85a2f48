//! The robustness report: a model package's error on every ImageNet-C corruption and severity
//! of a test set, with the mCE against a baseline report, a table and a heat map.
//!
//! ```text
//! cargo run --release --example robustness -- --model target/demo/models/monday --name monday \
//!   --root data/monday --manifest data/monday_test.jsonl --limit 100 --out target/demo/robustness
//! # against a baseline evaluated the same way:
//! cargo run --release --example robustness -- ... --baseline target/demo/robustness-baseline/robustness.json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlops_core::ComputeBackend;
use mlops_core::corrupt::{ImagenetCKind, Preset};
use mlops_core::dataset::Manifest;
use mlops_core::infer::FeatureEngine;
use mlops_core::predict::Predictor;
use mlops_core::robustness::{RobustnessOptions, RobustnessReport, evaluate_robustness};

/// A model's error under ImageNet-C's corruptions.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The model package: a folder, file://, s3://bucket/prefix.
    #[arg(long)]
    model: String,
    /// The model's name in the report (default: the package URI).
    #[arg(long)]
    name: Option<String>,
    /// Folder the manifest's paths are relative to.
    #[arg(long)]
    root: PathBuf,
    /// The test manifest.
    #[arg(long)]
    manifest: PathBuf,
    /// At most this many images, spread over the manifest.
    #[arg(long)]
    limit: Option<usize>,
    /// Corruptions, comma separated (default all 19).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Severities, comma separated (default 1,2,3,4,5).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    severities: Vec<u8>,
    /// imagenet or cifar10 parameter tables.
    #[arg(long, default_value = "imagenet")]
    preset: String,
    /// Seed of the corruptions.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A baseline's robustness.json (same images and seed) for CE and mCE.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Output folder: robustness.json, robustness.md, robustness.svg/.png.
    #[arg(long)]
    out: PathBuf,
    /// Folder with the matplotlib wheel (the charts' font).
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    let predictor =
        Predictor::load_with_engine(&args.model, ComputeBackend::Flex, FeatureEngine::Fast)?;
    let manifest = Manifest::read(&args.manifest)?;
    let kinds = if args.kinds.is_empty() {
        ImagenetCKind::ALL.to_vec()
    } else {
        args.kinds
            .iter()
            .map(|k| k.parse())
            .collect::<Result<_, _>>()?
    };
    let options = RobustnessOptions {
        kinds,
        severities: args.severities.clone(),
        preset: serde_json::from_value::<Preset>(serde_json::Value::String(args.preset.clone()))
            .map_err(|_| format!("--preset {}: expected imagenet or cifar10", args.preset))?,
        seed: args.seed,
        limit: args.limit,
    };
    let control = mlops_examples::bars(!args.quiet);
    let name = args.name.clone().unwrap_or_else(|| args.model.clone());
    let mut report =
        evaluate_robustness(&predictor, &name, &args.root, &manifest, &options, &control)?;
    if let Some(path) = &args.baseline {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let baseline: RobustnessReport =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        report.summarise(Some(&baseline))?;
    }
    let font = mlops_examples::chart_font(&args.wheels)?;
    report.write(&args.out, Some(font))?;
    eprintln!("{}", report.to_markdown());
    eprintln!(
        "{} cells of {} images in {:.1} s; written to {}",
        report.cells.len(),
        report.images,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
