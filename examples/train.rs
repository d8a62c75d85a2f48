//! Train a classifier on a manifest, evaluate it, and store it as a model package, as the
//! original's training script did (frozen ImageNet backbone + linear head, 15 epochs, Adam
//! 1e-3 x0.95 per epoch, batch 64, 256x256, mean = std = 0.5) but computing the frozen
//! backbone's features once instead of every epoch.
//!
//! ```text
//! cargo run --release --example train -- --root data/monday \
//!     --train data/monday_train.jsonl --test data/monday_test.jsonl \
//!     --weights .cache/wheels --out target/models/monday
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlops_core::artifact::{ModelPackage, PackageInfo};
use mlops_core::dataset::{ClassMap, ListOptions, Manifest, SplitOptions, list_dataset, split};
use mlops_core::infer::FeatureEngine;
use mlops_core::model::{Backbone, BackboneKind};
use mlops_core::seed::sha256_hex;
use mlops_core::vision::Preprocess;
use mlops_core::{ComputeBackend, ImageSet, TrainConfig, TrainMode, train};

/// Train and evaluate a classifier, then save it as a model package.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder the manifests' image paths are relative to (its sub-folders are the classes).
    #[arg(long)]
    root: PathBuf,
    /// Training manifest (JSON lines or CSV).
    #[arg(long)]
    train: PathBuf,
    /// Test manifest; without it the training manifest is split 80/20 with --split-seed.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Seed of the 80/20 split when --test is absent.
    #[arg(long, default_value_t = 2022)]
    split_seed: u64,
    /// Classes in id order, comma separated (default: the root's folders, alphabetical).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// efficientnet_lite0 (pretrained) or small_cnn (from scratch).
    #[arg(long, default_value = "efficientnet_lite0")]
    backbone: BackboneKind,
    /// The EfficientNet-Lite0 weights: a .pth file, the wheel, or a folder holding the wheel.
    #[arg(long, default_value = ".cache/wheels")]
    weights: PathBuf,
    /// frozen_backbone (train the head on cached features), partial_fine_tune (the last
    /// --tail-blocks units of the backbone and the head, on cached activations) or fine_tune
    /// (train everything).
    #[arg(long, default_value = "frozen_backbone")]
    mode: TrainMode,
    /// Units trained from the end of EfficientNet-Lite0 in partial_fine_tune (1 = the head
    /// convolution, 2 = also the last block, ..., 17 = everything after the stem).
    #[arg(long, default_value_t = 1)]
    tail_blocks: usize,
    /// flex or ndarray.
    #[arg(long, default_value = "flex")]
    backend: ComputeBackend,
    /// Backbone features and fine-tuning of EfficientNet-Lite0: `fast` (our kernels) or
    /// `burn` (Burn's autodiff, the reference).
    #[arg(long, default_value = "fast")]
    engine: FeatureEngine,
    /// How partial fine-tuning keeps the activations at the cut: f16 or f32.
    #[arg(long, default_value = "f16")]
    activation_precision: mlops_core::train::fast::ActivationPrecision,
    /// MiB of activations at the cut kept in memory per set in partial fine-tuning; beyond,
    /// they go to a temporary file and are read back per batch.
    #[arg(long, default_value_t = 4096)]
    activation_memory_mib: u64,
    /// Epochs.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Input side in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Seed of the head's initialisation and the batch order.
    #[arg(long, default_value_t = 2022)]
    seed: u64,
    /// Folder for cached backbone features.
    #[arg(long)]
    feature_cache: Option<PathBuf>,
    /// Where to store the model package: a folder, file://, s3://bucket/prefix or memory://.
    #[arg(long)]
    out: String,
    /// Also write the metrics (history and test evaluation) as JSON here.
    #[arg(long)]
    metrics_json: Option<PathBuf>,
    /// Hide progress bars.
    #[arg(long)]
    quiet: bool,
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let classes = match &args.classes {
        Some(names) => ClassMap::new(names.clone())?,
        None => list_dataset(&args.root, &ListOptions::default())?.classes,
    };
    let train_manifest = Manifest::read(&args.train)?;
    let (train_manifest, test_manifest) = match &args.test {
        Some(path) => (train_manifest, Manifest::read(path)?),
        None => {
            let parts = split(
                &train_manifest,
                &SplitOptions {
                    seed: args.split_seed,
                    ..SplitOptions::default()
                },
            )?;
            (parts.train, parts.test)
        }
    };
    let backend = args.backend;
    let device = backend.device();
    let weights = if args.weights.is_dir() && args.backbone == BackboneKind::EfficientNetLite0 {
        mlops_examples::lite0_wheel(&args.weights)?
    } else {
        args.weights.clone()
    };
    let backbone = Backbone::from_name(args.backbone.name(), Some(&weights), &device)?;
    let config = TrainConfig {
        preprocess: Preprocess {
            size: args.size,
            ..Preprocess::default()
        },
        batch_size: args.batch_size,
        epochs: args.epochs,
        learning_rate: args.lr,
        seed: args.seed,
        mode: args.mode,
        tail_blocks: args.tail_blocks,
        backend,
        feature_engine: args.engine,
        feature_cache: args.feature_cache.clone(),
        activation_precision: args.activation_precision,
        activation_memory: args.activation_memory_mib << 20,
        ..TrainConfig::default()
    };
    eprintln!(
        "training {} ({:?}) on {} images, testing on {}, classes: {}",
        args.backbone,
        config.mode,
        train_manifest.len(),
        test_manifest.len(),
        classes.names().join(", ")
    );
    let outcome = train(
        backbone,
        &classes,
        &ImageSet {
            root: &args.root,
            manifest: &train_manifest,
        },
        &ImageSet {
            root: &args.root,
            manifest: &test_manifest,
        },
        &config,
        &mlops_examples::bars(!args.quiet),
    )?;
    for s in &outcome.skipped {
        eprintln!("skipped {}: {}", s.image_path, s.reason);
    }
    eprintln!("epoch     lr   train_loss train_acc  test_loss test_acc  seconds");
    for m in &outcome.history {
        eprintln!(
            "{:>5} {:.1e} {:>12.4} {:>9.3} {:>10.4} {:>8.3} {:>8.2}",
            m.epoch,
            m.learning_rate,
            m.train_loss,
            m.train_accuracy,
            m.test_loss,
            m.test_accuracy,
            m.seconds
        );
    }
    let test = &outcome.test;
    eprintln!("test accuracy {:.3} (loss {:.4})", test.accuracy, test.loss);
    eprintln!("confusion matrix (rows: true, columns: predicted):");
    for (c, row) in test.confusion.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
        eprintln!(
            "  {:<12} {}  acc {:.3}",
            classes.names()[c],
            cells.join(""),
            test.per_class_accuracy[c]
        );
    }
    eprintln!(
        "backbone features {:.1} s, {} epochs {:.2} s",
        outcome.feature_seconds,
        outcome.history.len(),
        outcome.train_seconds
    );
    let info = PackageInfo {
        train_config: Some(config.clone()),
        history: outcome.history.clone(),
        test: Some(outcome.test.clone()),
        manifests_sha256: vec![
            sha256_hex(train_manifest.to_jsonl().as_bytes()),
            sha256_hex(test_manifest.to_jsonl().as_bytes()),
        ],
        reference: outcome.reference.clone(),
        lineage: None,
    };
    let (package, _) = ModelPackage::new(outcome.model, classes, config.preprocess, info)?;
    package.save(&args.out)?;
    eprintln!(
        "saved model package to {} (weights sha256 {})",
        args.out, package.metadata.weights.sha256
    );
    if let Some(path) = &args.metrics_json {
        let json = serde_json::json!({ "history": package.metadata.history, "test": package.metadata.test });
        mlops_core::imageio::write_atomic(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    Ok(())
}

/// mimalloc: the backbone's large activations make the system allocator map and unmap
/// memory on every layer (measured: 1.7x faster forward at batch 32).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    mlops_examples::exit_code(run(&Args::parse()))
}
