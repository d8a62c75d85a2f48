//! The data generator, as the original's: create the `cargo` table (dropping it only when
//! asked), bulk-load manifests with COPY, then trickle randomly sampled rows like a live
//! source until a count is reached (or the program is stopped; every row is its own commit).
//!
//! ```text
//! cargo run --release --example generate -- --url postgresql://user:pw@127.0.0.1:5432/db \
//!     --manifest data/monday.jsonl --rate 1 --count 100
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::db::{bulk_load, connect, create_table, insert_row, trickle, trickle_in_order};

/// Fill the `cargo` table from manifests, then trickle rows.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Database URL; without it the PG* environment variables are used.
    #[arg(long)]
    url: Option<String>,
    /// Manifests to bulk-load, in order (JSON lines or CSV).
    #[arg(long)]
    manifest: Vec<PathBuf>,
    /// Drop and recreate `cargo` first (its rows are lost).
    #[arg(long)]
    drop: bool,
    /// Rows per second to trickle after the bulk load (0: none).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Stop trickling after this many rows (default: run until stopped).
    #[arg(long)]
    count: Option<u64>,
    /// Seed of the trickled rows' sampling.
    #[arg(long, default_value_t = 2022)]
    seed: u64,
    /// After the bulk load, insert this manifest's rows in order at --rate (instead of
    /// sampling the bulk-loaded rows), like a day's data arriving live.
    #[arg(long)]
    in_order: Option<PathBuf>,
    /// Also time N row-at-a-time inserts (one commit each, the original's way) against COPY.
    #[arg(long)]
    compare_row_at_a_time: Option<usize>,
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = connect(args.url.as_deref())?;
    create_table(&mut client, args.drop)?;
    let mut pool = Manifest::default();
    for path in &args.manifest {
        let m = Manifest::read(path)?;
        let started = Instant::now();
        let rows = bulk_load(&mut client, &m)?;
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {rows} rows with COPY in {s:.3} s ({:.0} rows/s)",
            path.display(),
            rows as f64 / s
        );
        pool.samples.extend(m.samples);
    }
    if let Some(n) = args.compare_row_at_a_time {
        let samples: Vec<&Sample> = pool.samples.iter().cycle().take(n).collect();
        let started = Instant::now();
        for s in &samples {
            insert_row(&mut client, s)?;
        }
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "{n} rows one INSERT and commit each in {s:.3} s ({:.0} rows/s)",
            n as f64 / s
        );
    }
    if let Some(path) = &args.in_order {
        let rows = Manifest::read(path)?;
        let rate = if args.rate > 0.0 { args.rate } else { 10.0 };
        eprintln!(
            "inserting {} rows of {} in order, {rate} rows/s",
            rows.len(),
            path.display()
        );
        let n = trickle_in_order(&mut client, &rows, rate, &mlops_core::Control::new())?;
        eprintln!("inserted {n} rows");
    } else if args.rate > 0.0 {
        eprintln!("trickling {} rows/s", args.rate);
        let n = trickle(
            &mut client,
            &pool,
            args.rate,
            args.count,
            args.seed,
            &mlops_core::Control::new(),
        )?;
        eprintln!("trickled {n} rows");
    }
    Ok(())
}

fn main() -> ExitCode {
    mlops_examples::exit_code(run(&Args::parse()))
}
