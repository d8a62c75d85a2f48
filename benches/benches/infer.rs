//! The fast inference path of EfficientNet-Lite0 (`mlops_core::infer::Lite0Inference`): time per
//! call for 224 and 256 px at batch 1 and 8, on all threads. The weights are a seeded random
//! initialisation (the arithmetic, and so the time, does not depend on their values);
//! `make bench-model` and `make bench-ort` time the pretrained network against Burn and ONNX
//! Runtime.

use burn::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::infer::Lite0Inference;
use mlops_core::model::EfficientNetLite0;
use rand::{Rng, SeedableRng};

fn forward(c: &mut Criterion) {
    let device = Device::flex();
    device.seed(7);
    let net = Lite0Inference::new(&EfficientNetLite0::new(false, &device)).expect("fold");
    let mut group = c.benchmark_group("lite0_forward");
    group.sample_size(10);
    for (size, batch) in [(224, 1), (256, 1), (256, 8)] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2022);
        let input: Vec<f32> = (0..batch * 3 * size * size)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("{size}px"), format!("batch {batch}")),
            &input,
            |b, input| b.iter(|| net.features(input, batch, size, size).expect("features")),
        );
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
