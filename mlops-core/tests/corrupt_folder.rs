//! The folder driver on a corpus of bad and unusual inputs, made here: every bad file gets a
//! clear per-file error naming it, every good file is written, the input is never touched.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{jpeg_bytes, pattern_gray16, pattern_rgb, pattern_rgba, png_bytes, sha256};
use image::{DynamicImage, ImageFormat};
use mlops_core::Error;
use mlops_core::corrupt::{Corruption, FolderOptions, corrupt_folder};

fn options() -> FolderOptions {
    FolderOptions {
        seed: 11,
        ..FolderOptions::default()
    }
}

fn hash_tree(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(root).unwrap().display().to_string(),
                sha256(&std::fs::read(e.path()).unwrap_or_default()),
            )
        })
        .collect()
}

/// CRC-32 (IEEE) as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid PNG whose header claims 100000 x 100000 pixels.
fn huge_header_png() -> Vec<u8> {
    let mut bytes = png_bytes(&pattern_rgb(1, 1));
    // Signature (8) + length (4) + "IHDR" (4) = 16: width and height follow, CRC after 13 bytes.
    bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn cmyk_jpeg() -> Vec<u8> {
    let mut out = Vec::new();
    let (w, h) = (40u16, 30u16);
    let data: Vec<u8> = (0..u32::from(w) * u32::from(h) * 4)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&data, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    out
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

#[test]
fn bad_files_fail_alone_and_good_files_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let output = tmp.path().join("out");
    std::fs::create_dir_all(input.join("nested/deeper")).unwrap();
    let rgb = pattern_rgb(300, 220);
    let jpeg = jpeg_bytes(&rgb);
    let png = png_bytes(&rgb);
    let write = |rel: &str, bytes: &[u8]| std::fs::write(input.join(rel), bytes).unwrap();

    // Good files, in every format and colour type we keep.
    write("good.jpg", &jpeg);
    write("nested/good.png", &png);
    write("nested/deeper/UPPER.JPEG", &jpeg);
    write("rgba.png", &png_bytes(&pattern_rgba(120, 90)));
    write("gray16.png", &png_bytes(&pattern_gray16(130, 70)));
    write(
        "gray8.png",
        &png_bytes(&DynamicImage::ImageLuma8(rgb.to_luma8())),
    );
    write(
        "anim.gif",
        &encode(
            &DynamicImage::ImageRgba8(pattern_rgba(64, 48).to_rgba8()),
            ImageFormat::Gif,
        ),
    );
    write("bitmap.bmp", &encode(&rgb, ImageFormat::Bmp));
    write("lossless.webp", &encode(&rgb, ImageFormat::WebP));
    write("cmyk.jpg", &cmyk_jpeg());
    write("tiny.png", &png_bytes(&pattern_rgb(1, 1)));

    // Bad files.
    write("empty.jpg", b"");
    write("truncated.jpg", &jpeg[..jpeg.len() / 3]);
    write("truncated.png", &png[..png.len() / 2]);
    write("text.jpg", b"this is not a picture\n");
    write("huge.png", &huge_header_png());
    std::os::unix::fs::symlink(input.join("gone.png"), input.join("dangling.png")).unwrap();
    write("locked.png", &png);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        input.join("locked.png"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let root_reads_anything = std::fs::read(input.join("locked.png")).is_ok();

    // Passed over on purpose.
    write("notes.txt", b"hello");
    write(".hidden.png", &png);
    std::fs::create_dir_all(input.join(".cache")).unwrap();
    write(".cache/x.png", &png);

    let before = hash_tree(&input);
    let report = corrupt_folder(
        &input,
        &output,
        &Corruption::mixed(),
        &options(),
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert_eq!(hash_tree(&input), before, "the input was modified");

    let written: Vec<String> = report
        .written
        .iter()
        .map(|w| w.path.display().to_string())
        .collect();
    let mut expected_written = vec![
        "anim.gif",
        "bitmap.bmp",
        "cmyk.jpg",
        "good.jpg",
        "gray16.png",
        "gray8.png",
        "lossless.webp",
        "nested/deeper/UPPER.JPEG",
        "nested/good.png",
        "rgba.png",
        "tiny.png",
    ];
    let mut expected_failed = vec![
        "dangling.png",
        "empty.jpg",
        "huge.png",
        "text.jpg",
        "truncated.jpg",
        "truncated.png",
    ];
    if root_reads_anything {
        // Running as root: permissions do not stop reading, so the file is simply processed.
        expected_written.push("locked.png");
    } else {
        expected_failed.push("locked.png");
    }
    expected_written.sort();
    expected_failed.sort();
    let mut written_sorted = written.clone();
    written_sorted.sort();
    assert_eq!(written_sorted, expected_written);
    let failed: Vec<String> = report
        .failed
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert_eq!(failed, expected_failed);
    let skipped: Vec<(String, String)> = report
        .skipped
        .iter()
        .map(|s| (s.path.display().to_string(), s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        vec![
            (".cache".into(), "hidden".into()),
            (".hidden.png".into(), "hidden".into()),
            ("notes.txt".into(), "not an image (extension)".into()),
        ]
    );

    // Every error names its file and says what went wrong.
    for f in &report.failed {
        let msg = f.error.to_string();
        let name = f.path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(msg.contains(&name), "error does not name the file: {msg}");
        match name.as_str() {
            "dangling.png" => assert!(matches!(f.error, Error::Io { .. }), "{msg}"),
            "locked.png" => assert!(msg.contains("ermission denied"), "{msg}"),
            "huge.png" => assert!(
                msg.contains("cannot decode") && msg.to_lowercase().contains("limit"),
                "{msg}"
            ),
            _ => assert!(matches!(f.error, Error::Decode { .. }), "{name}: {msg}"),
        }
        assert!(
            !output.join(&f.path).exists(),
            "a failed file left an output: {}",
            f.path.display()
        );
    }

    // Outputs keep name, format, size and (where the format allows) colour type.
    for rel in &expected_written {
        let src = image::open(input.join(rel));
        let out_bytes = std::fs::read(output.join(rel)).unwrap();
        let in_format = image::guess_format(&std::fs::read(input.join(rel)).unwrap()).unwrap();
        assert_eq!(
            image::guess_format(&out_bytes).unwrap(),
            in_format,
            "{rel}: format changed"
        );
        let out = image::load_from_memory(&out_bytes).unwrap();
        if let Ok(src) = src {
            assert_eq!(out.dimensions_pair(), src.dimensions_pair(), "{rel}");
            if matches!(in_format, ImageFormat::Png) {
                assert_eq!(out.color(), src.color(), "{rel}: colour type changed");
            }
        }
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = hash_tree(&output)
        .into_keys()
        .filter(|k| k.contains(".mlops-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

trait Dimensions {
    fn dimensions_pair(&self) -> (u32, u32);
}

impl Dimensions for DynamicImage {
    fn dimensions_pair(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
}

#[test]
fn overlapping_folders_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.png"), png_bytes(&pattern_rgb(20, 20))).unwrap();
    let before = hash_tree(&input);
    for output in [
        input.join("out"),
        input.clone(),
        tmp.path().to_path_buf(),
        input.join("x/../y"),
    ] {
        let err = corrupt_folder(
            &input,
            &output,
            &Corruption::mixed(),
            &options(),
            &mlops_core::Control::new(),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::OverlappingFolders { .. }),
            "{}: {err}",
            output.display()
        );
        assert!(err.to_string().contains("overlaps"), "{err}");
    }
    assert_eq!(hash_tree(&input), before);
    assert!(!input.join("out").exists() && !input.join("y").exists());
}

#[test]
fn missing_input_and_bad_thread_count_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = corrupt_folder(
        &tmp.path().join("nope"),
        &tmp.path().join("out"),
        &Corruption::mixed(),
        &options(),
        &mlops_core::Control::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    std::fs::create_dir_all(tmp.path().join("in")).unwrap();
    let zero = FolderOptions {
        threads: Some(0),
        ..options()
    };
    let err = corrupt_folder(
        &tmp.path().join("in"),
        &tmp.path().join("out"),
        &Corruption::mixed(),
        &zero,
        &mlops_core::Control::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`threads`"), "{err}");
}

#[test]
fn an_existing_output_file_is_replaced_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, output) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    std::fs::write(input.join("a.png"), png_bytes(&pattern_rgb(200, 150))).unwrap();
    std::fs::write(output.join("a.png"), b"stale").unwrap();
    let report = corrupt_folder(
        &input,
        &output,
        &Corruption::random_boxes(),
        &options(),
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert!(report.is_complete());
    let out = image::open(output.join("a.png")).unwrap();
    assert_eq!((out.width(), out.height()), (200, 150));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(output.join("a.png"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn progress_is_reported_per_file_and_a_cancel_writes_nothing_more() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("a")).unwrap();
    for i in 0..12 {
        std::fs::write(
            input.join(format!("a/{i:02}.png")),
            png_bytes(&pattern_rgb(40 + i, 30)),
        )
        .unwrap();
    }
    let seen = Arc::new(AtomicU64::new(0));
    let last_total = Arc::new(AtomicU64::new(0));
    let (s, t) = (seen.clone(), last_total.clone());
    let reporting =
        mlops_core::Control::new().with_progress(move |p: &mlops_core::Progress<'_>| {
            assert_eq!(p.stage, "files");
            s.fetch_add(1, Ordering::Relaxed);
            t.store(p.total.unwrap_or(0), Ordering::Relaxed);
        });
    let report = corrupt_folder(
        &input,
        &dir.path().join("out"),
        &Corruption::mixed(),
        &options(),
        &reporting,
    )
    .unwrap();
    assert_eq!(report.written.len(), 12);
    assert_eq!(
        (
            seen.load(Ordering::Relaxed),
            last_total.load(Ordering::Relaxed)
        ),
        (12, 12)
    );

    let cancelled = mlops_core::Control::new();
    cancelled.cancel();
    let err = corrupt_folder(
        &input,
        &dir.path().join("out2"),
        &Corruption::mixed(),
        &options(),
        &cancelled,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(!dir.path().join("out2/a/00.png").exists());
}
