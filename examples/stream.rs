//! The streaming predictor: tails the `cargo` table, predicts new rows in batches with a model
//! package and writes `cargo_prediction` exactly once (see `mlops_core::db::stream`). Stops
//! cleanly on Ctrl-C or SIGTERM after the batch in hand.
//!
//! ```text
//! cargo run --release --example stream -- --url postgresql://user:pw@127.0.0.1:5432/db \
//!     --package target/demo/models/monday --data-root data/monday
//! ```
//!
//! With `--compare` it is a benchmark instead: on a copy of the rows it times a direct batch
//! prediction of the same images, the stream end to end, and a row-at-a-time stream (one
//! model call and one commit per row, like the original's consumer).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use mlops_core::ComputeBackend;
use mlops_core::adapt::{ChampionWatch, Registry};
use mlops_core::db::{StreamConfig, connect, stream_predictions};
use mlops_core::drift::MonitorConfig;
use mlops_core::infer::FeatureEngine;
use mlops_core::predict::Predictor;

/// Stream predictions from `cargo` into `cargo_prediction`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Source database URL; without it the PG* environment variables are used.
    #[arg(long)]
    url: Option<String>,
    /// Database for the predictions (default: the source database).
    #[arg(long)]
    sink_url: Option<String>,
    /// Model package (folder, file://, s3:// URI).
    #[arg(long)]
    package: String,
    /// Folder the rows' image paths are relative to.
    #[arg(long)]
    data_root: PathBuf,
    /// Consumer name; its position is kept under this name.
    #[arg(long, default_value = "cargo_prediction")]
    stream: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Milliseconds between polls that find nothing.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// Seconds a missing id is awaited after every transaction that could hold it ended.
    #[arg(long, default_value_t = 600)]
    gap_grace_s: u64,
    /// Stop once caught up instead of waiting for new rows.
    #[arg(long)]
    until_idle: bool,
    /// Compute backend: flex or ndarray.
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Backbone features: `fast` (the inference path) or `burn` (the reference).
    #[arg(long, default_value = "fast")]
    engine: String,
    /// Benchmark: time batch prediction, the stream and a row-at-a-time stream over the
    /// first N rows of `cargo` (copied into scratch tables, the real ones untouched).
    #[arg(long)]
    compare: Option<usize>,
    /// Rows for the row-at-a-time stream in the benchmark (it is slow).
    #[arg(long, default_value_t = 300)]
    compare_row_at_a_time: usize,
    /// Drift monitoring: expected rows between false alarms when nothing shifts (the
    /// detector's threshold is calibrated for it; 0 turns monitoring off).
    #[arg(long, default_value_t = 10_000.0)]
    drift_ert: f64,
    /// Drift monitoring: a check (a `cargo_drift` row) every this many rows.
    #[arg(long, default_value_t = 25)]
    drift_every: usize,
    /// Drift monitoring: rows the estimated accuracy covers.
    #[arg(long, default_value_t = 100)]
    drift_accuracy_window: usize,
    /// Hot swap: serve this registry's champion (see `adapt`), swapping between batches when
    /// it moves; `--package` serves until the pointer is first read.
    #[arg(long)]
    champion: Option<String>,
    /// Hot swap: milliseconds between looks at the champion pointer.
    #[arg(long, default_value_t = 1000)]
    champion_ms: u64,
    /// Hot swap: serve `--package` when the champion cannot be loaded at start (its package
    /// missing, the store down) instead of refusing to start.
    #[arg(long)]
    champion_fallback: bool,
}

/// The monitor the options ask for (`None` when off).
fn drift_config(args: &Args) -> Option<MonitorConfig> {
    (args.drift_ert > 0.0).then(|| MonitorConfig {
        ert: args.drift_ert,
        every: args.drift_every,
        accuracy_window: args.drift_accuracy_window,
        ..MonitorConfig::default()
    })
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let version = model_version(&args.package)?;
    let config = StreamConfig {
        source_url: args.url.clone(),
        sink_url: args.sink_url.clone(),
        data_root: args.data_root.clone(),
        stream: args.stream.clone(),
        batch_size: args.batch_size,
        poll_interval: Duration::from_millis(args.poll_ms),
        gap_grace: Duration::from_secs(args.gap_grace_s),
        exit_when_idle: args.until_idle,
        drift: drift_config(args),
        champion: args.champion.as_ref().map(|uri| ChampionWatch {
            registry: Registry::new(uri.as_str()),
            interval: Duration::from_millis(args.champion_ms),
            fall_back_to_own_model: args.champion_fallback,
        }),
        ..StreamConfig::default()
    };
    if let Some(n) = args.compare {
        eprintln!("model {} ({}):", args.package, version);
        compare(
            args,
            &config,
            &|b| predictor_with_batch(args, b),
            &version,
            n,
        )?;
        eprintln!(
            "untrained small CNN on 32-pixel inputs (model time small, the stream's own cost shows):"
        );
        return compare(args, &config, &tiny_predictor, "tiny", n);
    }
    let predictor = predictor_with_batch(args, args.batch_size)?;
    let last_report = std::sync::Mutex::new(Instant::now());
    let control = mlops_core::Control::new().with_progress(move |p: &mlops_core::Progress<'_>| {
        let mut last = last_report.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = p.detail::<mlops_core::db::StreamStats>()
            && last.elapsed() >= Duration::from_secs(5)
        {
            *last = Instant::now();
            eprintln!(
                "{} rows ({} errors, {} drift alarms)",
                s.rows, s.errors, s.drift_alarms
            );
        }
    });
    let control = mlops_examples::cancel_on_signal(control, "stopping after the current batch")?;
    let stats = stream_predictions(&config, &predictor, &version, &control)?;
    eprintln!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}

/// The package's weights hash (short) identifies the model in `cargo_prediction`.
fn model_version(package: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (metadata, _) = mlops_core::artifact::load_parts(package)?;
    Ok(metadata.version().to_string())
}

/// The benchmark: the first `n` rows of `cargo` are copied into a scratch schema, and the
/// same images are predicted three ways by predictors from `make(batch_size)`.
fn compare(
    args: &Args,
    config: &StreamConfig,
    make: &dyn Fn(usize) -> Result<Predictor, Box<dyn std::error::Error>>,
    version: &str,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = connect(args.url.as_deref())?;
    let paths: Vec<PathBuf> = client
        .query(
            "SELECT image_path FROM cargo ORDER BY id LIMIT $1",
            &[&(n as i64)],
        )?
        .iter()
        .map(|r| args.data_root.join(r.get::<_, String>(0)))
        .collect();
    let n = paths.len();
    let predictor = make(config.batch_size)?;
    // Warm up (allocator, thread pool, first-call setup) before timing anything.
    predictor.predict_paths(&paths[..n.min(config.batch_size)])?;

    let started = Instant::now();
    let direct = predictor.predict_paths(&paths)?;
    let batch_rate = n as f64 / started.elapsed().as_secs_f64();
    let failed = direct.iter().filter(|r| r.is_err()).count();
    eprintln!("  batch prediction:  {n} images, {batch_rate:.1} rows/s ({failed} unreadable)");

    let stream_rate = scratch_stream(&mut client, config, &predictor, version, n)?;
    eprintln!(
        "  stream (batch {}): {stream_rate:.1} rows/s = {:.1}% of batch prediction",
        config.batch_size,
        100.0 * stream_rate / batch_rate
    );
    let m = args.compare_row_at_a_time.min(n);
    let single = StreamConfig {
        batch_size: 1,
        ..config.clone()
    };
    let row_rate = scratch_stream(&mut client, &single, &make(1)?, version, m)?;
    eprintln!(
        "  row at a time:     {m} rows, {row_rate:.1} rows/s; the stream is {:.1}x faster",
        stream_rate / row_rate
    );
    Ok(())
}

/// An untrained small CNN on 32-pixel inputs.
fn tiny_predictor(batch: usize) -> Result<Predictor, Box<dyn std::error::Error>> {
    use mlops_core::model::{Backbone, BackboneKind, Classifier};
    let device = ComputeBackend::Flex.device();
    device.seed(1);
    let model = Classifier::new(
        Backbone::init(BackboneKind::SmallCnn, &device),
        5,
        1,
        &device,
    );
    let classes =
        mlops_core::dataset::ClassMap::new(["background", "brick", "concrete", "ground", "wood"])?;
    let preprocess = mlops_core::vision::Preprocess {
        size: 32,
        ..Default::default()
    };
    let mut p = Predictor::new(model, classes, preprocess, device)?;
    p.batch_size = batch;
    Ok(p)
}

fn predictor_with_batch(
    args: &Args,
    batch: usize,
) -> Result<Predictor, Box<dyn std::error::Error>> {
    let mut p = Predictor::load_with_engine(
        &args.package,
        args.backend.parse::<ComputeBackend>()?,
        args.engine.parse::<FeatureEngine>()?,
    )?;
    p.batch_size = batch;
    Ok(p)
}

/// Streams the first `n` rows of `cargo` from a scratch copy (schema `mlops_bench`, dropped
/// afterwards) and returns rows per second end to end.
fn scratch_stream(
    client: &mut postgres::Client,
    config: &StreamConfig,
    predictor: &Predictor,
    version: &str,
    n: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    client
        .batch_execute("DROP SCHEMA IF EXISTS mlops_bench CASCADE; CREATE SCHEMA mlops_bench;")?;
    client.execute(
        "CREATE TABLE mlops_bench.cargo AS SELECT * FROM cargo ORDER BY id LIMIT $1",
        &[&(n as i64)],
    )?;
    client.batch_execute("ALTER TABLE mlops_bench.cargo ADD PRIMARY KEY (id)")?;
    let scoped = |url: &Option<String>| -> Result<Option<String>, Box<dyn std::error::Error>> {
        let base = match url {
            Some(u) => u.clone(),
            None => return Err("--compare needs --url".into()),
        };
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(Some(format!(
            "{base}{sep}options=-csearch_path%3Dmlops_bench"
        )))
    };
    let bench = StreamConfig {
        source_url: scoped(&config.source_url)?,
        sink_url: None,
        exit_when_idle: true,
        stream: "bench".into(),
        // The benchmark times prediction and the exactly-once writes, as before monitoring.
        drift: None,
        ..config.clone()
    };
    let started = Instant::now();
    let stats = stream_predictions(&bench, predictor, version, &mlops_core::Control::new())?;
    let rate = stats.rows as f64 / started.elapsed().as_secs_f64();
    client.batch_execute("DROP SCHEMA mlops_bench CASCADE")?;
    Ok(rate)
}

fn main() -> ExitCode {
    mlops_examples::init_logging();
    mlops_examples::exit_code(run(&Args::parse()))
}
