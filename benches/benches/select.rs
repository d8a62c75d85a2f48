//! Selection time per strategy at n = 800, 10 000 and 100 000 embeddings of width 1280 (five
//! clustered classes, L2-normalised), budget 220 as the original, one thread.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mlops_core::select::{Budget, Distance, Embeddings, Strategy, select};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 1280;

fn clustered(n: usize) -> (Embeddings, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let centers: Vec<Vec<f32>> = (0..5)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    let mut data = Vec::with_capacity(n * DIM);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 5;
        labels.push(c as u32);
        data.extend(
            centers[c]
                .iter()
                .map(|v| v + rng.random_range(-0.5f32..0.5)),
        );
    }
    (
        Embeddings::new(data, DIM).expect("valid").l2_normalised(),
        labels,
    )
}

fn strategies(c: &mut Criterion) {
    let mut group = c.benchmark_group("select_budget_220");
    group.sample_size(10);
    for n in [800, 10_000, 100_000] {
        let (e, labels) = clustered(n);
        for strategy in [
            Strategy::Random {
                class_balanced: false,
            },
            Strategy::CorePair {
                distance: Distance::L1,
            },
            Strategy::CorePair {
                distance: Distance::L2,
            },
            Strategy::CorePair {
                distance: Distance::Cosine,
            },
            Strategy::KCenterGreedy,
            Strategy::Herding,
        ] {
            group.bench_function(BenchmarkId::new(strategy.name(), n), |b| {
                b.iter(|| select(&strategy, &e, &labels, Budget::Count(220), 1).expect("selection"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, strategies);
criterion_main!(benches);
