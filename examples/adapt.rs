//! The closed loop from the command line: a model registry with a champion, adaptation of the
//! champion to new labelled data with replay, promotion, and the trigger that does both when a
//! stream's drift monitor raises an alarm (see `mlops_core::adapt` and `mlops_core::db::adapt`).
//!
//! ```text
//! # the serving model becomes the first champion
//! cargo run --release --example adapt -- init --registry target/registry --package models/monday
//! # adapt to a manifest of new rows now (prints the decision)
//! cargo run --release --example adapt -- run --registry target/registry \
//!     --new-root data/tuesday --new data/tuesday_train.jsonl \
//!     --old-root data/monday --old data/monday_train.jsonl --old-holdout data/monday_test.jsonl
//! # or watch a stream: adapt when its drift alarm fired and 200 labelled rows arrived
//! cargo run --release --example adapt -- watch --url postgresql://... --registry target/registry \
//!     --data-root data --old-root data/monday --old data/monday_train.jsonl
//! # a challenger made elsewhere (`run --no-promote` prints its held-out rows): both models
//! # are scored again on those rows before the pointer moves
//! cargo run --release --example adapt -- promote --registry target/registry \
//!     --package s3://shared/models/abc --held-out held_out.json
//! # the champion, its history and every decision
//! cargo run --release --example adapt -- show --registry target/registry
//! ```
//! Streams serve the champion with `stream --champion target/registry`. Results are JSON on
//! standard output (for scripts), diagnostics on standard error.

#![allow(clippy::print_stdout)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};
use mlops_core::adapt::{
    AdaptConfig, AdaptData, HeldOut, PromotionPolicy, Registry, adapt, promote, promote_rescored,
};
use mlops_core::db::{AdaptLoopConfig, run_adaptation_loop};
use mlops_core::{Budget, ImageSet, Manifest, ModelPackage, TrainConfig};
use mlops_examples::BoxError;

/// Model registry, adaptation, promotion and the drift-triggered loop.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a package the registry's first champion.
    Init {
        /// Registry (folder, file://, s3://bucket/prefix).
        #[arg(long)]
        registry: String,
        /// The package.
        #[arg(long)]
        package: String,
    },
    /// Adapt the champion to a manifest of new rows, save the challenger, promote it if better.
    Run {
        /// Registry.
        #[arg(long)]
        registry: String,
        /// Folder of the new rows' images.
        #[arg(long)]
        new_root: PathBuf,
        /// The new labelled rows (JSON lines or CSV).
        #[arg(long)]
        new: PathBuf,
        /// Save the challenger but do not promote it (prints its lineage and held-out rows,
        /// what `promote --held-out` reads).
        #[arg(long)]
        no_promote: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Promote a challenger saved earlier or elsewhere, after scoring it and the champion
    /// again on the held-out rows its lineage names.
    Promote {
        /// Registry.
        #[arg(long)]
        registry: String,
        /// The challenger's package.
        #[arg(long)]
        package: String,
        /// The held-out rows (JSON: `old_root`, `old`, `new_root`, `new`, as `run
        /// --no-promote` prints them under `held_out`).
        #[arg(long)]
        held_out: PathBuf,
        /// Accuracy on the old held-out rows the challenger may lose.
        #[arg(long, default_value_t = 0.02)]
        margin: f64,
    },
    /// Watch a stream's drift alarms and adapt, save and promote when they call for it.
    Watch {
        /// Database with `cargo` (default: the PG* environment variables).
        #[arg(long)]
        url: Option<String>,
        /// Database with the stream's `cargo_drift` (default: --url).
        #[arg(long)]
        sink_url: Option<String>,
        /// The stream whose alarms count.
        #[arg(long, default_value = "cargo_prediction")]
        stream: String,
        /// Registry.
        #[arg(long)]
        registry: String,
        /// Folder the `cargo` rows' image paths are relative to.
        #[arg(long)]
        data_root: PathBuf,
        /// Labelled new rows needed to start an attempt.
        #[arg(long, default_value_t = 200)]
        min_rows: usize,
        /// Milliseconds between looks.
        #[arg(long, default_value_t = 2000)]
        poll_ms: u64,
        /// Stop after this many finished attempts (decided or failed).
        #[arg(long)]
        max_attempts: Option<u64>,
        /// Looks in a row that may fail (database or store outage, the champion's package
        /// unreadable) before giving up with the error.
        #[arg(long, default_value_t = 30)]
        max_failed_looks: u32,
        /// Also adapt when a check's estimated accuracy (no labels needed) falls below this
        /// (0..1), not only on drift alarms.
        #[arg(long)]
        min_estimated_accuracy: Option<f64>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Print the champion, the champions before it and every decision (JSON).
    Show {
        /// Registry.
        #[arg(long)]
        registry: String,
    },
}

/// The old data and how to adapt and promote.
#[derive(ClapArgs, Debug)]
struct Settings {
    /// Folder of the old training images.
    #[arg(long)]
    old_root: PathBuf,
    /// The old training rows (the replay pool).
    #[arg(long)]
    old: PathBuf,
    /// Held-out old rows (default: 20% of --old are held out).
    #[arg(long)]
    old_holdout: Option<PathBuf>,
    /// Replay strategy: none, all, random, random_balanced, cp_l1, cp_l2, cp_cosine, k_center,
    /// herding.
    #[arg(long, default_value = "k_center")]
    strategy: String,
    /// Replay rows.
    #[arg(long, default_value_t = 220)]
    budget: usize,
    /// Fraction of the new rows held out for the evaluation.
    #[arg(long, default_value_t = 0.2)]
    holdout: f64,
    /// Accuracy on the old held-out rows the challenger may lose.
    #[arg(long, default_value_t = 0.02)]
    margin: f64,
    /// Epochs of head training.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Seed of the splits, the selection and the training.
    #[arg(long, default_value_t = 2022)]
    seed: u64,
    /// Folder for cached backbone features.
    #[arg(long)]
    feature_cache: Option<PathBuf>,
}

impl Settings {
    fn adapt_config(&self) -> Result<AdaptConfig, BoxError> {
        Ok(AdaptConfig {
            strategy: self.strategy.parse()?,
            budget: Budget::Count(self.budget),
            holdout: self.holdout,
            train: TrainConfig {
                epochs: self.epochs,
                seed: self.seed,
                feature_cache: self.feature_cache.clone(),
                ..TrainConfig::default()
            },
        })
    }

    fn policy(&self) -> PromotionPolicy {
        PromotionPolicy {
            margin: self.margin,
            ..PromotionPolicy::default()
        }
    }

    fn old_holdout(&self) -> Result<Option<Manifest>, BoxError> {
        Ok(match &self.old_holdout {
            Some(path) => Some(Manifest::read(path)?),
            None => None,
        })
    }
}

fn run(cli: Cli) -> Result<(), BoxError> {
    let control = mlops_examples::cancel_on_signal(
        mlops_core::Control::new(),
        "stopping (an unfinished attempt is resumed by the next run)",
    )?;
    match cli.command {
        Command::Init { registry, package } => {
            let champion = Registry::new(registry).init_champion(&package)?;
            println!("{}", serde_json::to_string_pretty(&champion)?);
        }
        Command::Run {
            registry,
            new_root,
            new,
            no_promote,
            settings,
        } => {
            let registry = Registry::new(registry);
            let champion = registry
                .champion()?
                .ok_or("the registry has no champion (run `adapt init` first)")?;
            let config = settings.adapt_config()?;
            let device = config.train.backend.device();
            let parent = ModelPackage::load(&registry.package_uri(&champion), &device)?;
            let new_rows = Manifest::read(&new)?;
            let old = Manifest::read(&settings.old)?;
            let old_holdout = settings.old_holdout()?;
            let data = AdaptData {
                new: ImageSet {
                    root: &new_root,
                    manifest: &new_rows,
                },
                old: ImageSet {
                    root: &settings.old_root,
                    manifest: &old,
                },
                old_holdout: old_holdout.as_ref().map(|manifest| ImageSet {
                    root: &settings.old_root,
                    manifest,
                }),
            };
            let adaptation = adapt(&parent, &data, &config, &control)?
                .with_source(format!("manifest {}", new.display()))
                .with_parent_generation(champion.generation);
            for s in &adaptation.skipped {
                eprintln!("skipped {}: {}", s.image_path, s.reason);
            }
            let uri = registry.model_uri(adaptation.package.metadata.version());
            adaptation.package.save(&uri)?;
            eprintln!("challenger saved at {uri} ({:.1} s)", adaptation.seconds);
            if no_promote {
                let shown = serde_json::json!({
                    "package": uri,
                    "lineage": adaptation.lineage,
                    "held_out": adaptation.held_out,
                });
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                let decision = promote(&registry, &uri, &settings.policy())?;
                println!("{}", serde_json::to_string_pretty(&decision)?);
            }
        }
        Command::Promote {
            registry,
            package,
            held_out,
            margin,
        } => {
            let text = std::fs::read_to_string(&held_out)
                .map_err(|e| format!("{}: {e}", held_out.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)?;
            let rows: HeldOut =
                serde_json::from_value(value.get("held_out").unwrap_or(&value).clone())?;
            let policy = PromotionPolicy {
                margin,
                ..PromotionPolicy::default()
            };
            let decision = promote_rescored(&Registry::new(registry), &package, &policy, &rows)?;
            println!("{}", serde_json::to_string_pretty(&decision)?);
        }
        Command::Watch {
            url,
            sink_url,
            stream,
            registry,
            data_root,
            min_rows,
            poll_ms,
            max_attempts,
            max_failed_looks,
            min_estimated_accuracy,
            settings,
        } => {
            let mut config = AdaptLoopConfig::new(
                stream,
                Registry::new(registry),
                data_root,
                settings.old_root.clone(),
                Manifest::read(&settings.old)?,
            );
            config.source_url = url;
            config.sink_url = sink_url;
            config.old_holdout = settings.old_holdout()?;
            config.min_rows = min_rows;
            config.adapt = settings.adapt_config()?;
            config.policy = settings.policy();
            config.poll_interval = Duration::from_millis(poll_ms);
            config.max_attempts = max_attempts;
            config.max_failed_looks = max_failed_looks;
            config.min_estimated_accuracy = min_estimated_accuracy;
            let stats = run_adaptation_loop(&config, &control)?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
        }
        Command::Show { registry } => {
            let registry = Registry::new(registry);
            let shown = serde_json::json!({
                "champion": registry.champion()?,
                "history": registry.history()?,
                "decisions": registry.decisions()?,
            });
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    mlops_examples::init_logging();
    mlops_examples::exit_code(run(Cli::parse()))
}
