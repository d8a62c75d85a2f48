//! Timings of the corruption stage in a form a comparison script can read (JSON on stdout).
//! Used by `benches/pillow_compare.py` (`make bench-pillow`); the criterion benches
//! (`cargo bench -p mlops-benches`) are the detailed Rust-only view.
//!
//! ```text
//! cargo run --release --example corrupt_timing -- --image a.png --image b.png --folder jpegs/
//! ```

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use mlops_core::corrupt::{Corruption, FolderOptions, corrupt_folder};
use mlops_core::imageio::{DEFAULT_MAX_ALLOC, decode, encode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Time in-memory corruption per kind (one thread) and the folder driver file to file.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Images to corrupt in memory (each timed separately).
    #[arg(long)]
    image: Vec<PathBuf>,
    /// Calls per repetition.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// A folder of images to corrupt file to file.
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Worker threads for the folder run (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let kinds = ["random_boxes", "mosaic", "random_line", "mixed"];
    let mut in_memory = serde_json::Map::new();
    for path in &args.image {
        let image = image::open(path)?;
        let mut per_kind = serde_json::Map::new();
        for kind in kinds {
            let corruption: Corruption = kind.parse()?;
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut samples = Vec::new();
            // Corrupt one working copy over and over: the same work per call, without timing
            // an image copy (the Pillow side does the same).
            let mut work = image.clone();
            for _ in 0..=args.repeats {
                let started = Instant::now();
                for _ in 0..args.calls {
                    corruption.apply_in_place(&mut work, &mut rng)?;
                    std::hint::black_box(&work);
                }
                samples.push(started.elapsed().as_secs_f64() * 1e3 / args.calls as f64);
            }
            samples.remove(0); // warm-up
            per_kind.insert(kind.into(), median(samples).into());
        }
        let key = format!("{}x{}", image.width(), image.height());
        in_memory.insert(key, per_kind.into());
    }
    let mut result = serde_json::Map::new();
    result.insert("in_memory_ms_per_image".into(), in_memory.into());
    if let Some(folder) = &args.folder {
        let mut runs = Vec::new();
        let mut files = 0;
        for i in 0..3 {
            let out = std::env::temp_dir().join(format!("mlops-timing-{}-{i}", std::process::id()));
            let options = FolderOptions {
                seed: 7,
                threads: args.threads,
                ..FolderOptions::default()
            };
            let started = Instant::now();
            let report = corrupt_folder(
                folder,
                &out,
                &"mixed".parse()?,
                &options,
                &mlops_core::Control::new(),
            )?;
            runs.push(started.elapsed().as_secs_f64());
            files = report.written.len();
            std::fs::remove_dir_all(&out)?;
        }
        // The codecs alone, one thread: decode every file, then encode every decoded image
        // as JPEG at the quality the folder run writes (median of 3 passes, ms per file).
        let inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(folder)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .map(|p| std::fs::read(&p).map(|b| (p, b)))
            .collect::<Result<_, _>>()?;
        let (mut decode_ms, mut encode_ms) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let started = Instant::now();
            let decoded: Vec<image::DynamicImage> = inputs
                .iter()
                .map(|(p, b)| decode(p, b, DEFAULT_MAX_ALLOC))
                .collect::<Result<_, _>>()?;
            decode_ms.push(started.elapsed().as_secs_f64() * 1e3 / inputs.len().max(1) as f64);
            let started = Instant::now();
            for ((p, _), image) in inputs.iter().zip(&decoded) {
                std::hint::black_box(encode(image, image::ImageFormat::Jpeg, p)?);
            }
            encode_ms.push(started.elapsed().as_secs_f64() * 1e3 / inputs.len().max(1) as f64);
        }
        result.insert("decode_ms_per_file".into(), median(decode_ms).into());
        result.insert("encode_ms_per_file".into(), median(encode_ms).into());
        result.insert("folder_files".into(), files.into());
        result.insert("folder_seconds".into(), median(runs).into());
        result.insert(
            "folder_threads".into(),
            args.threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .into(),
        );
    }
    println!("{}", serde_json::Value::Object(result));
    Ok(())
}
