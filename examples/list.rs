//! List a class-folder data set (`ROOT/<class>/<image>`) into a manifest, as the original's
//! `monday.json`: one `{"image_path":"background/background_13.jpg","target":0}` per line.
//!
//! ```text
//! cargo run --release --example list -- data/monday -o monday.jsonl
//! cargo run --release --example list -- data/monday -o monday.jsonl --split
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mlops_core::dataset::{ListOptions, SplitOptions, list_dataset, split};

/// List a class-folder data set into a JSON-lines or CSV manifest.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Data set root: one folder per class.
    root: PathBuf,
    /// Manifest to write (.jsonl/.json: JSON lines, .csv: CSV). Printed to stdout when absent.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Classes in id order, comma separated (default: folder names, alphabetical).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// Fail on folders missing from --classes instead of reporting them.
    #[arg(long)]
    strict: bool,
    /// Also write <output>.train and <output>.test parts (needs --output).
    #[arg(long)]
    split: bool,
    /// Test fraction of the split.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 2022)]
    seed: u64,
    /// Split each class separately.
    #[arg(long)]
    stratified: bool,
}

fn sibling(path: &std::path::Path, part: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{part}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{part}"),
    };
    path.with_file_name(name)
}

fn run(args: &Args) -> Result<(), mlops_core::Error> {
    let options = ListOptions {
        classes: args.classes.clone(),
        strict: args.strict,
    };
    let listing = list_dataset(&args.root, &options)?;
    for (id, (name, count)) in listing.report.per_class.iter().enumerate() {
        eprintln!("{id:>3} {name:<20} {count:>7} images");
    }
    let r = &listing.report;
    let warn = |what: &str, items: &[String]| {
        if !items.is_empty() {
            eprintln!("warning: {what} ({}): {}", items.len(), items.join(", "));
        }
    };
    warn("empty classes", &r.empty_classes);
    warn(
        "folders not in the class list, not listed",
        &r.unknown_folders,
    );
    warn("hidden entries skipped", &r.hidden);
    warn("non-image files skipped", &r.non_images);
    warn("files outside class folders skipped", &r.stray_files);

    match &args.output {
        Some(path) => {
            listing.manifest.write(path)?;
            eprintln!(
                "wrote {} samples to {}",
                listing.manifest.len(),
                path.display()
            );
            if args.split {
                let parts = split(
                    &listing.manifest,
                    &SplitOptions {
                        test_fraction: args.test_fraction,
                        seed: args.seed,
                        stratified: args.stratified,
                    },
                )?;
                for (name, part) in [("train", &parts.train), ("test", &parts.test)] {
                    let p = sibling(path, name);
                    part.write(&p)?;
                    eprintln!("wrote {} samples to {}", part.len(), p.display());
                }
            }
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(listing.manifest.to_jsonl().as_bytes())
                .map_err(|e| mlops_core::Error::io("<stdout>", e))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    mlops_examples::exit_code(run(&Args::parse()).map_err(Into::into))
}
