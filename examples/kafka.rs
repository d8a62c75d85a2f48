//! Kafka scale-out: `publish` new `cargo` rows to a topic in the original's Kafka Connect JSON
//! format; `consume` a topic in a consumer group (start several to split the partitions) and
//! write `cargo_prediction`. Both stop cleanly on Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --release --example kafka -- publish --url postgresql://... --brokers 127.0.0.1:9092 \
//!     --partitions 2
//! cargo run --release --example kafka -- consume --url postgresql://... --brokers 127.0.0.1:9092 \
//!     --package target/demo/models/monday --data-root data/monday
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mlops_core::ComputeBackend;
use mlops_core::adapt::{ChampionWatch, Registry};
use mlops_core::kafka::{
    ConsumeConfig, DEFAULT_TOPIC, PublishConfig, consume_topic, ensure_topic, publish_rows,
};
use mlops_core::predict::Predictor;

/// Publish `cargo` rows to Kafka, or predict from a topic.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Database URL; without it the PG* environment variables are used.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Kafka bootstrap servers.
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic.
    #[arg(long, global = true, default_value = DEFAULT_TOPIC)]
    topic: String,
    /// Stop once caught up (publish) or after this many idle seconds (consume).
    #[arg(long, global = true)]
    until_idle: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publish new rows of `cargo` (creating the topic if needed).
    Publish {
        /// Partitions of the topic when it is created.
        #[arg(long, default_value_t = 2)]
        partitions: i32,
        /// Rows per batch.
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
    /// Predict the topic's rows into `cargo_prediction`.
    Consume {
        /// Model package (folder, file://, s3:// URI).
        #[arg(long)]
        package: String,
        /// Folder the rows' image paths are relative to.
        #[arg(long)]
        data_root: PathBuf,
        /// Consumer group.
        #[arg(long, default_value = "mlops-predict")]
        group: String,
        /// Messages per batch.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// With --until-idle: seconds without messages before stopping.
        #[arg(long, default_value_t = 10)]
        idle_s: u64,
        /// Compute backend: flex or ndarray.
        #[arg(long, default_value = "flex")]
        backend: String,
        /// Hot swap: serve this registry's champion (see the `adapt` example), swapping
        /// between batches when it moves.
        #[arg(long)]
        champion: Option<String>,
    },
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let stop = mlops_examples::cancel_on_signal(
        mlops_core::Control::new(),
        "stopping after the current batch",
    )?;
    match &args.command {
        Command::Publish {
            partitions,
            batch_size,
        } => {
            ensure_topic(&args.brokers, &args.topic, *partitions)?;
            let config = PublishConfig {
                source_url: args.url.clone(),
                brokers: args.brokers.clone(),
                topic: args.topic.clone(),
                batch_size: *batch_size,
                exit_when_idle: args.until_idle,
                ..PublishConfig::default()
            };
            let stats = publish_rows(&config, &stop)?;
            eprintln!("{}", serde_json::to_string_pretty(&stats)?);
        }
        Command::Consume {
            package,
            data_root,
            group,
            batch_size,
            idle_s,
            backend,
            champion,
        } => {
            let predictor = Predictor::load(package, backend.parse::<ComputeBackend>()?)?;
            let (metadata, _) = mlops_core::artifact::load_parts(package)?;
            let config = ConsumeConfig {
                brokers: args.brokers.clone(),
                topic: args.topic.clone(),
                group: group.clone(),
                sink_url: args.url.clone(),
                data_root: data_root.clone(),
                batch_size: *batch_size,
                exit_after_idle: args.until_idle.then(|| Duration::from_secs(*idle_s)),
                champion: champion
                    .as_ref()
                    .map(|uri| ChampionWatch::new(Registry::new(uri.as_str()))),
                ..ConsumeConfig::default()
            };
            let stats = consume_topic(&config, &predictor, metadata.version(), &stop)?;
            eprintln!("{}", serde_json::to_string_pretty(&stats)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    mlops_examples::init_logging();
    mlops_examples::exit_code(run(&Args::parse()))
}
