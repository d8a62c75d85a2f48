//! Corrupt every image of a folder into another folder, as the original's
//! `corrupt.py -i IN -o OUT --type mixed`, but seeded, parallel and recursive.
//!
//! ```text
//! cargo run --release --example corrupt -- -i data/monday -o target/tuesday-42 --type mixed --seed 42
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlops_core::corrupt::{Corruption, Fill, FolderOptions, SizeRange, corrupt_folder};
use mlops_examples::print_folder_report;

/// Corrupt images to simulate a distribution shift.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Input folder (read recursively, never modified).
    #[arg(short, long)]
    input: PathBuf,
    /// Output folder (same sub-folders, file names and formats); must not overlap the input.
    #[arg(short, long)]
    output: PathBuf,
    /// random_boxes, mosaic, random_line or mixed.
    #[arg(short = 't', long = "type", default_value = "mixed")]
    kind: String,
    /// Seed: same seed and input files give the same output bytes.
    #[arg(short, long, default_value_t = 0)]
    seed: u64,
    /// Boxes per image, MIN:MAX (boxes and mosaic; default 5:10).
    #[arg(long, value_parser = parse_range)]
    count: Option<SizeRange>,
    /// Box side in pixels, MIN:MAX (boxes and mosaic; default 100:200).
    #[arg(long, value_parser = parse_range)]
    box_size: Option<SizeRange>,
    /// Mosaic cells per box side, MIN:MAX (default 10:10).
    #[arg(long, value_parser = parse_range)]
    cells: Option<SizeRange>,
    /// Line width in pixels, MIN:MAX (default 50:200).
    #[arg(long, value_parser = parse_range)]
    line_width: Option<SizeRange>,
    /// Fill colour of boxes, R,G,B[,A] in 0..=255 (default 255,255,255).
    #[arg(long, value_parser = parse_fill)]
    box_fill: Option<Fill>,
    /// Fill colour of the line, R,G,B[,A] in 0..=255 (default 0,0,0).
    #[arg(long, value_parser = parse_fill)]
    line_fill: Option<Fill>,
    /// Worker threads (default: one per core).
    #[arg(short = 'j', long)]
    threads: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

fn parse_range(s: &str) -> Result<SizeRange, String> {
    let (lo, hi) = s.split_once(':').unwrap_or((s, s));
    let parse = |v: &str| v.trim().parse::<u32>().map_err(|e| format!("`{v}`: {e}"));
    Ok(SizeRange::new(parse(lo)?, parse(hi)?))
}

fn parse_fill(s: &str) -> Result<Fill, String> {
    let parts: Vec<u8> = s
        .split(',')
        .map(|v| v.trim().parse::<u8>().map_err(|e| format!("`{v}`: {e}")))
        .collect::<Result<_, _>>()?;
    match parts[..] {
        [r, g, b] => Ok(Fill([r, g, b, 255])),
        [r, g, b, a] => Ok(Fill([r, g, b, a])),
        _ => Err(format!("`{s}`: expected R,G,B or R,G,B,A")),
    }
}

fn build(args: &Args) -> Result<Corruption, mlops_core::Error> {
    let mut corruption: Corruption = args.kind.parse()?;
    let (boxes, mosaic, line) = match &mut corruption {
        Corruption::RandomBoxes(b) => (Some(b), None, None),
        Corruption::Mosaic(m) => (None, Some(m), None),
        Corruption::RandomLine(l) => (None, None, Some(l)),
        Corruption::Mixed(x) => (Some(&mut x.boxes), Some(&mut x.mosaic), Some(&mut x.line)),
    };
    if let Some(b) = boxes {
        b.count = args.count.unwrap_or(b.count);
        b.width = args.box_size.unwrap_or(b.width);
        b.height = args.box_size.unwrap_or(b.height);
        b.fill = args.box_fill.unwrap_or(b.fill);
    }
    if let Some(m) = mosaic {
        m.count = args.count.unwrap_or(m.count);
        m.width = args.box_size.unwrap_or(m.width);
        m.height = args.box_size.unwrap_or(m.height);
        m.cells = args.cells.unwrap_or(m.cells);
    }
    if let Some(l) = line {
        l.width = args.line_width.unwrap_or(l.width);
        l.fill = args.line_fill.unwrap_or(l.fill);
    }
    corruption.validate()?;
    Ok(corruption)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let corruption = match build(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let options = FolderOptions {
        seed: args.seed,
        threads: args.threads,
        ..FolderOptions::default()
    };
    let started = std::time::Instant::now();
    let control = mlops_examples::bars(!args.quiet);
    match corrupt_folder(&args.input, &args.output, &corruption, &options, &control) {
        Ok(report) => {
            print_folder_report(&report);
            eprintln!("took {:.2} s", started.elapsed().as_secs_f64());
            if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
