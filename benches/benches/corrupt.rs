//! Corruption benchmarks: each kind in memory on real 512x512 and 1920x1080 RGB photos, and the
//! folder driver file to file on 200 JPEGs. Inputs: `make bench-data`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlops_benches::{bench_file, bench_image};
use mlops_core::corrupt::{Corruption, FolderOptions, corrupt_folder};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn in_memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("corrupt_in_memory");
    for name in ["photo_512.png", "photo_1080.png"] {
        let image = bench_image(name);
        let size = format!("{}x{}", image.width(), image.height());
        for kind in ["random_boxes", "mosaic", "random_line", "mixed"] {
            let corruption: Corruption = kind.parse().expect("known kind");
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut work = image.clone();
            group.bench_function(BenchmarkId::new(kind, &size), |b| {
                // One working copy corrupted over and over: the same work per call, no copy timed.
                b.iter(|| {
                    corruption
                        .apply_in_place(&mut work, &mut rng)
                        .expect("valid parameters")
                })
            });
        }
    }
    group.finish();
}

fn folder(c: &mut Criterion) {
    let input = bench_file("jpegs");
    let files = std::fs::read_dir(&input).expect("bench folder").count() as u64;
    let mut group = c.benchmark_group("corrupt_folder");
    group.sample_size(10);
    group.throughput(Throughput::Elements(files));
    for threads in [1, 2] {
        let out = tempfile::tempdir().expect("temp dir");
        let options = FolderOptions {
            seed: 3,
            threads: Some(threads),
            ..FolderOptions::default()
        };
        group.bench_function(
            BenchmarkId::new("mixed_jpeg_files", format!("{threads}_threads")),
            |b| {
                b.iter(|| {
                    let report = corrupt_folder(
                        &input,
                        out.path(),
                        &Corruption::mixed(),
                        &options,
                        &mlops_core::Control::new(),
                    )
                    .expect("folder run");
                    assert!(report.is_complete());
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, in_memory, folder);
criterion_main!(benches);
