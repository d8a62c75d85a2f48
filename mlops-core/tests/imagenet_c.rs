//! ImageNet-C in Rust: every corruption on every colour type and odd or tiny sizes, seeded
//! across thread counts, clear errors. (Faithfulness to the reference is tested in Python, where
//! the reference runs: mlops-py/tests/test_imagenet_c.py.)

#![allow(clippy::unwrap_used)]

use std::path::Path;

use image::{DynamicImage, GenericImageView};
use mlops_core::control::Control;
use mlops_core::corrupt::imagenet_c::FrostTextures;
use mlops_core::corrupt::{
    Corruption, FolderOptions, ImagenetC, ImagenetCKind, Preset, corrupt_folder,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn wheel() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.cache/wheels/imagecorruptions-1.1.2-py3-none-any.whl")
}

fn textured(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, (255 - x - y) as u8])
    }))
}

fn setup() {
    let wheel = wheel();
    assert!(
        wheel.is_file(),
        "{} is missing: run `make wheels`",
        wheel.display()
    );
    mlops_core::corrupt::imagenet_c::set_frost_textures(&wheel).expect("frost textures");
}

#[test]
fn every_kind_keeps_size_and_colour_type_on_any_input() {
    setup();
    let base = textured(37, 23);
    let inputs = [
        base.clone(),
        DynamicImage::ImageLuma8(base.to_luma8()),
        DynamicImage::ImageLumaA8(base.to_luma_alpha8()),
        DynamicImage::ImageRgba8(base.to_rgba8()),
        DynamicImage::ImageRgb16(base.to_rgb16()),
        DynamicImage::ImageRgba32F(base.to_rgba32f()),
        textured(16, 16),
        textured(1, 1),
        textured(2, 301),
    ];
    for kind in ImagenetCKind::ALL {
        for preset in [Preset::Imagenet, Preset::Cifar10] {
            for severity in 1..=5 {
                let c = ImagenetC::new(kind, severity).unwrap().with_preset(preset);
                for input in &inputs {
                    let mut rng = ChaCha8Rng::seed_from_u64(3);
                    let out = c
                        .apply(input, &mut rng)
                        .unwrap_or_else(|e| panic!("{kind} {severity}: {e}"));
                    assert_eq!(out.dimensions(), input.dimensions(), "{kind} {severity}");
                    assert_eq!(out.color(), input.color(), "{kind} {severity}");
                }
            }
        }
    }
}

#[test]
fn alpha_is_kept_and_grey_stays_grey() {
    setup();
    let mut rgba = textured(40, 30).to_rgba8();
    for (i, p) in rgba.pixels_mut().enumerate() {
        p.0[3] = (i % 256) as u8;
    }
    let input = DynamicImage::ImageRgba8(rgba.clone());
    for kind in ImagenetCKind::ALL {
        let out = ImagenetC::new(kind, 3)
            .unwrap()
            .apply(&input, &mut ChaCha8Rng::seed_from_u64(1))
            .unwrap()
            .to_rgba8();
        for (a, b) in rgba.pixels().zip(out.pixels()) {
            assert_eq!(a.0[3], b.0[3], "{kind}");
        }
    }
}

#[test]
fn same_seed_same_bytes_and_a_change_at_every_severity() {
    setup();
    let image = textured(64, 48);
    for kind in ImagenetCKind::ALL {
        for severity in 1..=5 {
            let c = ImagenetC::new(kind, severity).unwrap();
            let a = c.apply(&image, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
            let b = c.apply(&image, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
            assert_eq!(a.as_bytes(), b.as_bytes(), "{kind} {severity}");
            assert_ne!(
                a.as_bytes(),
                image.as_bytes(),
                "{kind} {severity} changed nothing"
            );
        }
    }
}

#[test]
fn folders_are_the_same_bytes_with_one_or_two_threads() {
    setup();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    for class in ["a", "b"] {
        std::fs::create_dir_all(input.join(class)).unwrap();
        for i in 0..4u32 {
            textured(50 + i, 40 + 2 * i)
                .save(input.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    for kind in [
        ImagenetCKind::GlassBlur,
        ImagenetCKind::Snow,
        ImagenetCKind::Frost,
        ImagenetCKind::Spatter,
    ] {
        let corruption = Corruption::imagenet_c(kind, 4).unwrap();
        let mut outputs = Vec::new();
        for threads in [1, 2] {
            let out = dir.path().join(format!("{kind}-{threads}"));
            let options = FolderOptions {
                seed: 5,
                threads: Some(threads),
                ..FolderOptions::default()
            };
            let report =
                corrupt_folder(&input, &out, &corruption, &options, &Control::new()).unwrap();
            assert_eq!(report.written.len(), 8);
            assert!(
                report
                    .written
                    .iter()
                    .all(|f| f.kind.to_string() == kind.name())
            );
            outputs.push(out);
        }
        for class in ["a", "b"] {
            for i in 0..4 {
                let rel = Path::new(class).join(format!("{i}.png"));
                let one = std::fs::read(outputs[0].join(&rel)).unwrap();
                let two = std::fs::read(outputs[1].join(&rel)).unwrap();
                assert_eq!(one, two, "{kind} {}", rel.display());
            }
        }
    }
}

#[test]
fn names_severities_and_errors() {
    assert_eq!(ImagenetCKind::ALL.len(), 19);
    let fog: Corruption = "fog/3".parse().unwrap();
    assert_eq!((fog.name(), fog.severity()), ("fog", Some(3)));
    let json = serde_json::to_string(&fog).unwrap();
    assert_eq!(
        json,
        r#"{"type":"imagenet_c","kind":"fog","severity":3,"preset":"imagenet"}"#
    );
    assert_eq!(
        serde_json::from_str::<Corruption>(r#"{"type":"imagenet_c","kind":"fog","severity":3}"#)
            .unwrap(),
        fog
    );
    let err = "fog".parse::<Corruption>().unwrap_err().to_string();
    assert!(err.contains("severity"), "{err}");
    let err = "fog/6".parse::<Corruption>().unwrap_err().to_string();
    assert!(err.contains("severity") && err.contains('6'), "{err}");
    let err = Corruption::from_name("mosaic", Some(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no severity"), "{err}");
    let err = "blizzard".parse::<Corruption>().unwrap_err().to_string();
    assert!(
        err.contains("blizzard") && err.contains("glass_blur"),
        "{err}"
    );
    let empty = DynamicImage::new_rgb8(0, 5);
    assert!(
        ImagenetC::new(ImagenetCKind::Fog, 1)
            .unwrap()
            .apply(&empty, &mut ChaCha8Rng::seed_from_u64(0))
            .is_err()
    );
    let err = FrostTextures::load(Path::new("/nonexistent/imagecorruptions.whl"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/imagecorruptions.whl"), "{err}");
    let textures = FrostTextures::load(&wheel()).unwrap();
    assert_eq!(textures.source(), wheel());
}
