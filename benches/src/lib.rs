//! Shared set-up for the benchmarks: the real photos made by `make bench-data`.

use std::path::PathBuf;

/// Folder of benchmark inputs made by `make bench-data` (`target/bench-data` in the workspace).
pub fn bench_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data")
}

/// A file of the benchmark data, or a panic that says how to make it.
pub fn bench_file(name: &str) -> PathBuf {
    let path = bench_data_dir().join(name);
    assert!(
        path.exists(),
        "benchmark input {} is missing: run `make bench-data` first",
        path.display()
    );
    path
}

/// A decoded photo of the benchmark data.
pub fn bench_image(name: &str) -> image::DynamicImage {
    let path = bench_file(name);
    image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
