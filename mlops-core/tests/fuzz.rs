//! Untrusted inputs, fuzzed (see `tests/fuzzing/mod.rs` for the engine and its settings and
//! docs/reliability.md for the long runs): manifests (JSON lines and CSV), Kafka Connect
//! messages, images, drift reference samples, and model packages (metadata and weights) as a
//! shared bucket could hand them over. No input may panic; the allocator below refuses any
//! single allocation over 1 GiB (the process aborts, failing the run), so memory stays bounded.
//! Accepted inputs must also round-trip where the format allows.

#![allow(clippy::unwrap_used)]
// The one unsafe item of the crate: the capped allocator of this test binary.
#![allow(unsafe_code)]

mod common;
mod fuzzing;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;

use fuzzing::{Verdict, fuzz};
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::drift::ReferenceSample;
use mlops_core::imageio;

/// The system allocator, refusing single allocations over 1 GiB.
struct Capped;

const CAP: usize = 1 << 30;

// SAFETY: forwards to the system allocator; refusing (null) is allowed by `GlobalAlloc`.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn odd_samples() -> Vec<Sample> {
    vec![
        Sample::new("brick/a.jpg", 1),
        Sample::new("wood/it's \"odd\", really.png", 4),
        Sample::new("ground/ünï cödé/x y.webp", 3),
        Sample::new("concrete/line\nbreak.bmp", 2),
        Sample::new("", 0),
    ]
}

const JSON_TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"\\u0000",
    b"\\ud800",
    b"\n",
    b"\"image_path\"",
    b"\"target\"",
    b"\"payload\"",
    b"\"schema\"",
    b"\"id\"",
    b"\"timestamp\"",
    b"1e400",
    b"-1",
    b"4294967296",
];

#[test]
fn fuzz_manifest_jsonl() {
    let seeds = vec![Manifest::new(odd_samples()).to_jsonl().into_bytes()];
    fuzz("manifest_jsonl", seeds, JSON_TOKENS, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match Manifest::from_jsonl(&text, Path::new("fuzz.jsonl")) {
            Ok(m) => {
                let again = Manifest::from_jsonl(&m.to_jsonl(), Path::new("again.jsonl")).unwrap();
                assert_eq!(again, m, "JSON lines round trip");
                Verdict::Accepted
            }
            Err(e) => {
                assert!(e.to_string().contains("fuzz.jsonl"), "{e}");
                Verdict::Refused
            }
        }
    });
}

#[test]
fn fuzz_manifest_csv() {
    let seeds = vec![Manifest::new(odd_samples()).to_csv().unwrap().into_bytes()];
    let tokens: &[&[u8]] = &[
        b"\"",
        b",",
        b"\n",
        b"\r\n",
        b"image_path",
        b"target",
        b"-1",
        b"4294967296",
        b"\"\"",
    ];
    fuzz("manifest_csv", seeds, tokens, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match Manifest::from_csv(&text, Path::new("fuzz.csv")) {
            Ok(m) => {
                if let Ok(csv) = m.to_csv() {
                    let again = Manifest::from_csv(&csv, Path::new("again.csv")).unwrap();
                    assert_eq!(again, m, "CSV round trip of {csv:?}");
                }
                Verdict::Accepted
            }
            Err(e) => {
                assert!(e.to_string().contains("fuzz.csv"), "{e}");
                Verdict::Refused
            }
        }
    });
}

#[cfg(feature = "kafka")]
#[test]
fn fuzz_kafka_connect_messages() {
    use mlops_core::db::tail::SourceRow;
    use mlops_core::kafka::message;
    let rows = [
        SourceRow {
            id: 7,
            timestamp: Some("2026-11-26 10:00:00.250".into()),
            image_path: Some("brick/it's.jpg".into()),
            target: Some(1),
        },
        SourceRow {
            id: i32::MIN,
            timestamp: None,
            image_path: None,
            target: None,
        },
    ];
    let seeds = rows.iter().map(message::encode).collect();
    fuzz(
        "kafka_message",
        seeds,
        JSON_TOKENS,
        |bytes| match message::decode(bytes) {
            Ok(row) => {
                // What a consumer decodes, a publisher re-encodes to the same row.
                assert_eq!(message::decode(&message::encode(&row)).unwrap(), row);
                Verdict::Accepted
            }
            Err(_) => Verdict::Refused,
        },
    );
}

#[test]
fn fuzz_image_decoding_with_limits() {
    use image::ImageFormat;
    let picture = common::pattern_rgb(23, 17);
    let seeds = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::Bmp,
        ImageFormat::WebP,
    ]
    .iter()
    .map(|&f| imageio::encode(&picture, f, Path::new("seed")).unwrap())
    .collect();
    let tokens: &[&[u8]] = &[
        b"\xff\xd8",
        b"\xff\xd9",
        b"\xff\xda",
        b"\xff\xc0",
        b"IHDR",
        b"IDAT",
        b"IEND",
        b"GIF89a",
        b"BM",
        b"RIFF",
        b"WEBPVP8L",
        b"\x7f\xff\xff\xff",
    ];
    fuzz("image", seeds, tokens, |bytes| {
        match imageio::decode(Path::new("fuzz.img"), bytes, imageio::DEFAULT_MAX_ALLOC) {
            Ok(image) => {
                let decoded = image.as_bytes().len() as u64;
                assert!(
                    decoded <= imageio::DEFAULT_MAX_ALLOC,
                    "{decoded} bytes decoded"
                );
                Verdict::Accepted
            }
            Err(e) => {
                assert!(e.to_string().contains("fuzz.img"), "{e}");
                Verdict::Refused
            }
        }
    });
}

#[test]
fn fuzz_drift_reference_samples() {
    let (rows, dim, classes) = (6, 4, 3);
    let features: Vec<f32> = (0..rows * dim).map(|i| (i as f32 * 0.37).sin()).collect();
    let probabilities: Vec<f32> = (0..rows * classes)
        .map(|i| {
            if i % classes == i / classes % classes {
                0.8
            } else {
                0.1
            }
        })
        .collect();
    let sample =
        ReferenceSample::subsample(&features, &probabilities, None, dim, classes, 100, 1).unwrap();
    let targets: Vec<u32> = (0..rows as u32).map(|i| i % classes as u32).collect();
    let calibrated = ReferenceSample::subsample(
        &features,
        &probabilities,
        Some(&targets),
        dim,
        classes,
        60,
        1,
    )
    .unwrap()
    .calibrated(&mlops_core::drift::MonitorConfig {
        ert: 100.0,
        ..Default::default()
    })
    .unwrap();
    let seeds = vec![sample.to_bytes(), calibrated.to_bytes()];
    fuzz(
        "reference",
        seeds,
        &[],
        |bytes| match ReferenceSample::from_bytes(bytes) {
            Ok(sample) => {
                // The calibration's JSON may be spelled otherwise; written once, the bytes are
                // stable.
                let written = sample.to_bytes();
                let again = ReferenceSample::from_bytes(&written).expect("written bytes read");
                assert_eq!(again.to_bytes(), written, "reference round trip");
                Verdict::Accepted
            }
            Err(_) => Verdict::Refused,
        },
    );
}

/// A saved small-CNN package with a reference sample in `<dir>/p`: its folder and URI, its
/// metadata and the weights object's name and bytes.
struct SavedPackage {
    dir: tempfile::TempDir,
    folder: std::path::PathBuf,
    uri: String,
    metadata: serde_json::Value,
    weights_object: String,
    weights: Vec<u8>,
}

impl SavedPackage {
    /// Replaces the package's `metadata.json`.
    fn write_metadata(&self, metadata: &serde_json::Value) {
        std::fs::write(
            self.folder.join("metadata.json"),
            serde_json::to_vec(metadata).unwrap(),
        )
        .unwrap();
    }
}

fn saved_package() -> SavedPackage {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("p");
    let uri = folder.display().to_string();
    let predictor = common::small_cnn_predictor(9);
    let paths: Vec<_> = std::fs::read_dir(common::demo_data().join("monday/brick"))
        .unwrap()
        .take(8)
        .map(|e| e.unwrap().path())
        .collect();
    let mut package = common::small_cnn_package(9);
    package.reference = Some(common::reference_of(&predictor, &paths, None));
    package.save(&uri).unwrap();
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("metadata.json")).unwrap()).unwrap();
    let weights_object = metadata["weights"]["object"].as_str().unwrap().to_string();
    let weights = std::fs::read(folder.join(&weights_object)).unwrap();
    SavedPackage {
        dir,
        folder,
        uri,
        metadata,
        weights_object,
        weights,
    }
}

fn load(uri: &str) -> Verdict {
    match mlops_core::predict::Predictor::load(uri, mlops_core::ComputeBackend::Flex) {
        Ok(_) => Verdict::Accepted,
        Err(e) => {
            assert!(
                e.to_string().contains(uri),
                "the error names the package: {e}"
            );
            Verdict::Refused
        }
    }
}

/// The metadata as saved, and versions that disagree with the weights or the architecture: other
/// class counts, the other backbone, head sizes, preprocessing sizes, declared object sizes.
fn metadata_variants(metadata: &serde_json::Value) -> Vec<Vec<u8>> {
    let edits: Vec<(&str, serde_json::Value)> = vec![
        ("/backbone", "efficientnet_lite0".into()),
        ("/head/inputs", 1_000_000_000u64.into()),
        ("/head/outputs", 0.into()),
        ("/preprocess/size", 0.into()),
        ("/preprocess/size", u64::from(u32::MAX).into()),
        ("/weights/bytes", u64::MAX.into()),
        ("/weights/format", "pickle".into()),
        ("/classes", serde_json::json!(["only"])),
        ("/classes", serde_json::json!([])),
        ("/format_version", 99.into()),
    ];
    let mut out = vec![serde_json::to_vec_pretty(metadata).unwrap()];
    for (pointer, value) in edits {
        let mut edited = metadata.clone();
        if let Some(slot) = edited.pointer_mut(pointer) {
            *slot = value;
            out.push(serde_json::to_vec_pretty(&edited).unwrap());
        }
    }
    out
}

/// The weights as saved, and versions with a huge or short header length, cut in half, and with
/// dtypes and shapes that disagree with the model.
fn weights_variants(weights: &[u8]) -> Vec<Vec<u8>> {
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&weights[8..8 + header_len]).unwrap();
    let body = &weights[8 + header_len..];
    let with_header = |text: String| {
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(body);
        out
    };
    let mut out = vec![weights.to_vec()];
    let mut huge = weights.to_vec();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    out.push(huge);
    let mut short = weights.to_vec();
    short[..8].copy_from_slice(&4u64.to_le_bytes());
    out.push(short);
    out.push(weights[..weights.len() / 2].to_vec());
    for dtype in ["F16", "BF16", "F64", "I64", "U8", "BOOL"] {
        out.push(with_header(
            header.replace("\"F32\"", &format!("\"{dtype}\"")),
        ));
    }
    out.push(with_header(header.replace("[128,5]", "[128,6]")));
    out.push(with_header(header.replace("[5]", "[4]")));
    out
}

#[test]
fn fuzz_package_metadata() {
    let saved = saved_package();
    let metadata_path = saved.folder.join("metadata.json");
    let seeds = metadata_variants(&saved.metadata);
    let tokens: &[&[u8]] = &[
        b"\"small_cnn\"",
        b"\"efficientnet_lite0\"",
        b"\"../\"",
        b"\"/etc/passwd\"",
        b"18446744073709551615",
        b"0",
        b"null",
        b"\"classes\"",
        b"\"size\"",
        b"\"inputs\"",
        b"\"outputs\"",
        b"\"object\"",
    ];
    fuzz("package_metadata", seeds, tokens, |bytes| {
        std::fs::write(&metadata_path, bytes).unwrap();
        load(&saved.uri)
    });
}

#[test]
fn fuzz_package_weights() {
    let saved = saved_package();
    let seeds = weights_variants(&saved.weights);
    let tokens: &[&[u8]] = &[
        b"\"dtype\"",
        b"\"F32\"",
        b"\"F16\"",
        b"\"I64\"",
        b"\"shape\"",
        b"\"data_offsets\"",
        b"[0,0]",
        b"[1,2,3]",
        b"\xff\xff\xff\xff\xff\xff\xff\x7f",
    ];
    fuzz("package_weights", seeds, tokens, |bytes| {
        // The checksum in the metadata follows the bytes, so the parser is what is tested.
        let mut metadata = saved.metadata.clone();
        metadata["weights"]["sha256"] = mlops_core::seed::sha256_hex(bytes).into();
        metadata["weights"]["bytes"] = bytes.len().into();
        std::fs::write(saved.folder.join(&saved.weights_object), bytes).unwrap();
        saved.write_metadata(&metadata);
        load(&saved.uri)
    });
}

/// Object names in a package's metadata cannot reach outside its prefix: `..` and absolute
/// names stay inside (and are then not found), even when the named object exists next door.
#[test]
fn a_package_reads_nothing_outside_its_prefix() {
    let saved = saved_package();
    let neighbour = saved.dir.path().join("q");
    std::fs::create_dir_all(&neighbour).unwrap();
    std::fs::write(neighbour.join(&saved.weights_object), &saved.weights).unwrap();
    // Move the weights out of the package, leaving only the neighbour's copy to reach.
    std::fs::remove_file(saved.folder.join(&saved.weights_object)).unwrap();
    for object in [
        format!("../q/{}", saved.weights_object),
        format!("{}/q/{}", saved.dir.path().display(), saved.weights_object),
        format!("./../q/{}", saved.weights_object),
    ] {
        let mut metadata = saved.metadata.clone();
        metadata["weights"]["object"] = object.clone().into();
        saved.write_metadata(&metadata);
        let Err(e) =
            mlops_core::predict::Predictor::load(&saved.uri, mlops_core::ComputeBackend::Flex)
        else {
            panic!("{object}: loaded weights from outside the package");
        };
        assert!(e.to_string().contains(&saved.uri), "{object}: {e}");
    }
}
