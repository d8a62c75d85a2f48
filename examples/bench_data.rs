//! Builds the benchmark inputs from real photos in the scikit-image wheel (CC0 / public
//! domain images): `photo_512.png` (the 512x512 astronaut), `photo_1080.png` (the coffee photo
//! resized to 1920x1080) and `jpegs/`, 200 640x480 JPEG crops of six photos.
//! Deterministic. Run by `make bench-data`.
//!
//! ```text
//! cargo run --release --example bench_data -- --wheels .cache/wheels --out target/bench-data
//! ```

use std::path::PathBuf;

use clap::Parser;
use image::imageops::FilterType;
use mlops_core::imageio::write_atomic;
use mlops_examples::{find_wheel, read_from_wheel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Build benchmark inputs from the scikit-image wheel's photos.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder holding the downloaded wheels.
    #[arg(long, default_value = ".cache/wheels")]
    wheels: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "target/bench-data")]
    out: PathBuf,
}

const PHOTOS: &[&str] = &[
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let wheel = find_wheel(&args.wheels, "scikit_image-0.25.2")?;
    let mut photos = Vec::new();
    for name in PHOTOS {
        let bytes = read_from_wheel(&wheel, &format!("skimage/data/{name}"))?;
        photos.push(image::load_from_memory(&bytes)?.into_rgb8());
    }
    let png = |img: &image::RgbImage| -> Result<Vec<u8>, image::ImageError> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)?;
        Ok(out.into_inner())
    };
    write_atomic(&args.out.join("photo_512.png"), &png(&photos[0])?)?;
    let hd = image::imageops::resize(&photos[1], 1920, 1080, FilterType::Lanczos3);
    write_atomic(&args.out.join("photo_1080.png"), &png(&hd)?)?;

    let mut rng = ChaCha8Rng::seed_from_u64(2022);
    for i in 0..200 {
        let photo = &photos[i % photos.len()];
        let (w, h) = photo.dimensions();
        let scale = rng.random_range(0.6..=1.0);
        let (cw, ch) = (((w as f64) * scale) as u32, ((h as f64) * scale) as u32);
        let (x, y) = (rng.random_range(0..=w - cw), rng.random_range(0..=h - ch));
        let crop = image::imageops::crop_imm(photo, x, y, cw, ch).to_image();
        let frame = image::imageops::resize(&crop, 640, 480, FilterType::Triangle);
        let mut jpeg = Vec::new();
        frame.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut jpeg, 90,
        ))?;
        write_atomic(&args.out.join(format!("jpegs/photo_{i:03}.jpg")), &jpeg)?;
    }
    eprintln!("benchmark inputs in {}", args.out.display());
    Ok(())
}
