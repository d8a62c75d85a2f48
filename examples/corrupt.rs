//! Corrupt every image of a folder into another folder, as the original's
//! `corrupt.py -i IN -o OUT --type mixed`, but seeded, parallel and recursive.
//!
//! ```text
//! cargo run --release --example corrupt -- -i data/monday -o target/tuesday-42 --type mixed --seed 42
//! cargo run --release --example corrupt -- -i data/monday -o target/fog-3 --type fog --severity 3
//! cargo run --release --example corrupt -- -i data/monday -o target/imagenet-c --type all --severity 1..5
//! ```
//!
//! `--type all` writes ImageNet-C's layout: `<output>/<corruption>/<severity>/<class>/...`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlops_core::corrupt::{
    Corruption, Fill, FolderOptions, ImagenetC, ImagenetCKind, Preset, SizeRange, corrupt_folder,
};
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
    /// random_boxes, mosaic, random_line, mixed, an ImageNet-C corruption (fog, snow, ...;
    /// needs --severity), or `all` for the 19 ImageNet-C corruptions.
    #[arg(short = 't', long = "type", default_value = "mixed")]
    kind: String,
    /// Severity of an ImageNet-C corruption: 1..5, or a range such as 1..5 with `--type all`.
    #[arg(long)]
    severity: Option<String>,
    /// ImageNet-C parameter tables: imagenet (default) or cifar10.
    #[arg(long, default_value = "imagenet")]
    preset: String,
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

/// `3` or `1..5` (inclusive).
fn parse_severities(s: &str) -> Result<Vec<u8>, mlops_core::Error> {
    let bad = || {
        mlops_core::Error::invalid(
            "severity",
            format!("`{s}`: expected 1..=5 or a range such as 1..5"),
        )
    };
    let (lo, hi) = match s.split_once("..") {
        Some((lo, hi)) => (lo, hi.trim_start_matches('=')),
        None => (s, s),
    };
    let lo: u8 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u8 = hi.trim().parse().map_err(|_| bad())?;
    if !(1..=5).contains(&lo) || !(1..=5).contains(&hi) || lo > hi {
        return Err(bad());
    }
    Ok((lo..=hi).collect())
}

fn parse_preset(s: &str) -> Result<Preset, mlops_core::Error> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        mlops_core::Error::invalid("preset", format!("`{s}`: expected imagenet or cifar10"))
    })
}

/// The runs to make: (sub-folder, corruption); one with an empty sub-folder unless `all`.
fn plan(args: &Args) -> Result<Vec<(PathBuf, Corruption)>, mlops_core::Error> {
    if args.kind == "all" {
        let severities = parse_severities(args.severity.as_deref().unwrap_or("1..5"))?;
        let preset = parse_preset(&args.preset)?;
        let mut runs = Vec::new();
        for kind in ImagenetCKind::ALL {
            for &s in &severities {
                let c = ImagenetC::new(kind, s)?.with_preset(preset);
                runs.push((
                    PathBuf::from(kind.name()).join(s.to_string()),
                    Corruption::ImagenetC(c),
                ));
            }
        }
        return Ok(runs);
    }
    let severity = match &args.severity {
        Some(s) => match parse_severities(s)?[..] {
            [one] => Some(one),
            _ => {
                return Err(mlops_core::Error::invalid(
                    "severity",
                    "a range needs --type all",
                ));
            }
        },
        None => None,
    };
    Ok(vec![(PathBuf::new(), build(args, severity)?)])
}

fn build(args: &Args, severity: Option<u8>) -> Result<Corruption, mlops_core::Error> {
    let mut corruption = Corruption::from_name(&args.kind, severity)?;
    let (boxes, mosaic, line) = match &mut corruption {
        Corruption::RandomBoxes(b) => (Some(b), None, None),
        Corruption::Mosaic(m) => (None, Some(m), None),
        Corruption::RandomLine(l) => (None, None, Some(l)),
        Corruption::Mixed(x) => (Some(&mut x.boxes), Some(&mut x.mosaic), Some(&mut x.line)),
        Corruption::ImagenetC(c) => {
            *c = c.with_preset(parse_preset(&args.preset)?);
            (None, None, None)
        }
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
    let runs = match plan(&args) {
        Ok(runs) => runs,
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
    let mut complete = true;
    for (sub, corruption) in &runs {
        if runs.len() > 1 {
            eprintln!("{}", sub.display());
        }
        match corrupt_folder(
            &args.input,
            &args.output.join(sub),
            corruption,
            &options,
            &control,
        ) {
            Ok(report) => {
                print_folder_report(&report);
                complete &= report.is_complete();
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    eprintln!("took {:.2} s", started.elapsed().as_secs_f64());
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
