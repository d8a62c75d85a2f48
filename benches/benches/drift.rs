//! Time per drift check (`mlops_core::drift`): a fitted reference of 1000 x 1280 (the
//! backbone's width) against windows of 20 to 500 rows, per method, on all threads; and the
//! one-time fit. Inputs are seeded Gaussian rows (a check's cost depends on the sizes, not the
//! values); `make bench-drift` measures power and false alarms on real embeddings.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mlops_core::Embeddings;
use mlops_core::drift::{DriftDetector, DriftOptions, Method};
use rand::{Rng, SeedableRng};

const DIM: usize = 1280;
const CLASSES: usize = 5;

fn rows(n: usize, dim: usize, seed: u64) -> Embeddings {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data = (0..n * dim)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Embeddings::new(data, dim).expect("finite rows")
}

/// Softmax-like rows: positive, summing to one.
fn probabilities(n: usize, seed: u64) -> Embeddings {
    let raw = rows(n, CLASSES, seed);
    let data = (0..n)
        .flat_map(|i| {
            let e: Vec<f32> = raw.row(i).iter().map(|v| (2.0 * v).exp()).collect();
            let total: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / total)
        })
        .collect();
    Embeddings::new(data, CLASSES).expect("finite rows")
}

fn check(c: &mut Criterion) {
    let reference = rows(1000, DIM, 1);
    let reference_probs = probabilities(1000, 1);
    let mut group = c.benchmark_group("drift_check");
    group.sample_size(20);
    for method in [Method::Mmd, Method::Ks, Method::Bbsd, Method::Classifier] {
        let source = if method == Method::Bbsd {
            &reference_probs
        } else {
            &reference
        };
        let detector = DriftDetector::fit(source, DriftOptions::new(method)).expect("fit");
        for n in [20, 100, 500] {
            let window = if method == Method::Bbsd {
                probabilities(n, 2)
            } else {
                rows(n, DIM, 2)
            };
            group.bench_function(BenchmarkId::new(method.name(), n), |b| {
                b.iter(|| detector.check(&window).expect("check"))
            });
        }
    }
    group.finish();
}

fn fit(c: &mut Criterion) {
    let reference = rows(1000, DIM, 1);
    let mut group = c.benchmark_group("drift_fit");
    group.sample_size(10);
    for method in [Method::Mmd, Method::Ks, Method::Classifier] {
        group.bench_function(method.name(), |b| {
            b.iter(|| DriftDetector::fit(&reference, DriftOptions::new(method)).expect("fit"))
        });
    }
    group.finish();
}

criterion_group!(benches, check, fit);
criterion_main!(benches);
