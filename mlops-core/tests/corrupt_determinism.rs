//! Reproducibility: golden hashes pin the exact output bytes for fixed seeds, and the folder
//! driver's output depends only on (seed, relative path, bytes), not on threads or order.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{jpeg_bytes, pattern_gray16, pattern_rgb, png_bytes, sha256};
use mlops_core::corrupt::{Corruption, FolderOptions, corrupt_folder};

/// Output hashes of each kind on a 97x61 RGB pattern with seed 42. A change here means every
/// user's corrupted data set changes: bump it only on purpose, and say so in the changelog.
const GOLDEN_IN_MEMORY: &[(&str, &str)] = &[
    (
        "random_boxes",
        "37b5ef6c4172072002d1ef3c310c9fc7e49f14f4bd6f69449d938fdf046e8e96",
    ),
    (
        "mosaic",
        "d9c6622f08aa0735986456a4642aa89cc15a3777116d0270dcb3f96485710da9",
    ),
    (
        "random_line",
        "5d8f72d5c3280033fd8b8c5cb61af7a87a707a2df8da31396e85b7a1c43a3884",
    ),
    (
        "mixed",
        "efc7df256909a73ba9c909f594869bec78a3d15284c19a8e99619041bec2d095",
    ),
];

/// Hash over (relative path, output bytes) of the folder made by `make_tree` with seed 7 (its
/// JPEG files as libjpeg-turbo writes them at quality 75; another encoder changes it).
const GOLDEN_FOLDER: &str = "4d4e78a80ade0a699e30ac9e74ffd5448b925c739bc2b0dcf3175151d29ef503";

#[test]
fn in_memory_output_is_pinned() {
    let image = pattern_rgb(97, 61);
    for (kind, golden) in GOLDEN_IN_MEMORY {
        let c: Corruption = kind.parse().unwrap();
        let (out, _) = c.apply_seeded(&image, 42).unwrap();
        let again = c.apply_seeded(&image, 42).unwrap().0;
        assert_eq!(
            out.as_bytes(),
            again.as_bytes(),
            "{kind} is not deterministic"
        );
        assert_eq!(sha256(out.as_bytes()), *golden, "{kind} output changed");
    }
}

#[test]
fn different_seeds_give_different_outputs() {
    let image = pattern_rgb(97, 61);
    let a = Corruption::mixed().apply_seeded(&image, 1).unwrap().0;
    let b = Corruption::mixed().apply_seeded(&image, 2).unwrap().0;
    assert_ne!(a.as_bytes(), b.as_bytes());
}

/// A small tree of real-format files: PNG and JPEG in nested folders.
fn make_tree(root: &Path) {
    for (i, rel) in [
        "a/one.png",
        "a/two.jpg",
        "b/c/three.PNG",
        "b/four.jpeg",
        "top.png",
    ]
    .iter()
    .enumerate()
    {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let image = if i % 2 == 0 {
            pattern_rgb(60 + i as u32 * 17, 45 + i as u32 * 9)
        } else {
            pattern_gray16(50, 70)
        };
        let bytes = if rel.to_ascii_lowercase().ends_with(".png") {
            png_bytes(&image)
        } else {
            jpeg_bytes(&image)
        };
        std::fs::write(path, bytes).unwrap();
    }
}

/// Every file under `root` by relative path.
fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn tree_hash(tree: &BTreeMap<String, Vec<u8>>) -> String {
    let mut all = Vec::new();
    for (k, v) in tree {
        all.extend_from_slice(k.as_bytes());
        all.push(0);
        all.extend_from_slice(v);
    }
    sha256(&all)
}

fn run(input: &Path, output: &Path, threads: usize) -> BTreeMap<String, Vec<u8>> {
    let options = FolderOptions {
        seed: 7,
        threads: Some(threads),
        ..FolderOptions::default()
    };
    let report = corrupt_folder(
        input,
        output,
        &Corruption::mixed(),
        &options,
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert!(report.is_complete(), "{:?}", report.failed);
    assert_eq!(report.written.len(), 5);
    read_tree(output)
}

#[test]
fn folder_output_is_pinned_and_independent_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    make_tree(&input);
    let sequential = run(&input, &tmp.path().join("out1"), 1);
    let parallel = run(&input, &tmp.path().join("out4"), 4);
    assert_eq!(sequential, parallel, "thread count changed the output");
    assert_eq!(tree_hash(&sequential), GOLDEN_FOLDER);

    // The input root's own name and location do not matter, only paths relative to it.
    let moved = tmp.path().join("elsewhere/renamed");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&input, &moved).unwrap();
    assert_eq!(run(&moved, &tmp.path().join("out_moved"), 2), sequential);
}

#[test]
fn output_depends_on_relative_path_and_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let bytes = png_bytes(&pattern_rgb(300, 200));
    std::fs::write(input.join("x.png"), &bytes).unwrap();
    std::fs::write(input.join("y.png"), &bytes).unwrap();
    let out = run_any(&input, &tmp.path().join("out"));
    assert_ne!(
        out["x.png"], out["y.png"],
        "same bytes under another name must draw differently"
    );
}

fn run_any(input: &Path, output: &Path) -> BTreeMap<String, Vec<u8>> {
    let options = FolderOptions {
        seed: 7,
        ..FolderOptions::default()
    };
    let report = corrupt_folder(
        input,
        output,
        &Corruption::mixed(),
        &options,
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert!(report.is_complete());
    read_tree(output)
}

/// JPEG output is byte for byte what Pillow 13.0.0 (libjpeg-turbo) writes for the same pixels
/// at quality 75, as the original pipeline saved them. The hashes are those of
/// `Image.save(buffer, "JPEG", quality=75)` on the same two patterns built in Python.
#[test]
fn jpeg_bytes_are_the_ones_pillow_writes() {
    use image::{DynamicImage, ImageBuffer, ImageFormat, Luma};
    use mlops_core::imageio::encode;
    let grey = DynamicImage::ImageLuma8(ImageBuffer::from_fn(64, 48, |x, y| {
        Luma([(x * 5 + y * 9) as u8])
    }));
    let rgb = encode(&pattern_rgb(64, 48), ImageFormat::Jpeg, "rgb.jpg".as_ref()).unwrap();
    let grey = encode(&grey, ImageFormat::Jpeg, "grey.jpg".as_ref()).unwrap();
    assert_eq!(
        sha256(&rgb),
        "60a337d7dd1551dda5907d75a71b744431d10d2b0226546ac8fb35b498ace78a"
    );
    assert_eq!(
        sha256(&grey),
        "3d0a2f0d50f5df38a97cbe20f4502645c6ddcf6d10c6b85bd30a0c05de32adb4"
    );
}
