use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// `rows x dim` standard normal values (Box-Muller), plus `shift` on the first `shifted`
/// columns.
fn gaussian(rows: usize, dim: usize, shift: f32, shifted: usize, seed: u64) -> Embeddings {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = || {
        let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random_range(0.0..1.0));
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    };
    let data = (0..rows * dim)
        .map(|i| normal() + if i % dim < shifted { shift } else { 0.0 })
        .collect();
    Embeddings::new(data, dim).unwrap()
}

fn softmax_rows(logits: &Embeddings) -> Embeddings {
    let data = (0..logits.len())
        .flat_map(|i| {
            let row = logits.row(i);
            let total: f32 = row.iter().map(|v| v.exp()).sum();
            row.iter().map(move |v| v.exp() / total).collect::<Vec<_>>()
        })
        .collect();
    Embeddings::new(data, logits.dim()).unwrap()
}

const METHODS: [Method; 3] = [Method::Mmd, Method::Ks, Method::Classifier];

#[test]
fn quiet_without_shift_and_alarmed_by_a_shift_for_every_method() {
    let reference = gaussian(300, 16, 0.0, 0, 1);
    for method in METHODS {
        let detector = DriftDetector::fit(&reference, DriftOptions::new(method)).unwrap();
        let alarms = (0..40)
            .filter(|&k| {
                detector
                    .check(&gaussian(30, 16, 0.0, 0, 100 + k))
                    .unwrap()
                    .drift
            })
            .count();
        assert!(
            alarms <= 6,
            "{method}: {alarms} of 40 same-distribution windows alarmed"
        );
        let detected = (0..20)
            .filter(|&k| {
                detector
                    .check(&gaussian(30, 16, 1.5, 4, 500 + k))
                    .unwrap()
                    .drift
            })
            .count();
        assert!(
            detected >= 18,
            "{method}: only {detected} of 20 shifted windows alarmed"
        );
    }
}

#[test]
fn bbsd_tests_softmax_outputs() {
    let reference = softmax_rows(&gaussian(300, 5, 0.0, 0, 2));
    let detector = DriftDetector::fit(&reference, DriftOptions::new(Method::Bbsd)).unwrap();
    let same = detector
        .check(&softmax_rows(&gaussian(50, 5, 0.0, 0, 3)))
        .unwrap();
    let shifted = detector
        .check(&softmax_rows(&gaussian(50, 5, 2.0, 1, 4)))
        .unwrap();
    assert!(!same.drift && shifted.drift, "{same:?} {shifted:?}");
    let err = detector.check(&gaussian(50, 5, 0.0, 0, 5)).unwrap_err();
    assert!(err.to_string().contains("softmax"), "{err}");
}

#[test]
fn same_seed_same_result_and_the_seed_matters() {
    let reference = gaussian(200, 8, 0.0, 0, 1);
    let window = gaussian(20, 8, 0.3, 2, 9);
    for method in METHODS {
        let options = DriftOptions::new(method);
        let a = detect(&reference, &window, &options).unwrap();
        let b = detect(&reference, &window, &options).unwrap();
        assert_eq!(a, b);
    }
    let mut other = DriftOptions::new(Method::Mmd);
    other.seed = 7;
    let a = detect(&reference, &window, &DriftOptions::new(Method::Mmd)).unwrap();
    let b = detect(&reference, &window, &other).unwrap();
    assert_eq!(a.statistic, b.statistic);
    assert_ne!(a.p_value, b.p_value);
}

#[test]
fn mmd_p_value_is_bounded_by_the_permutation_count() {
    let reference = gaussian(100, 4, 0.0, 0, 1);
    let mut options = DriftOptions::new(Method::Mmd);
    options.permutations = 99;
    let far = detect(&reference, &gaussian(20, 4, 10.0, 4, 2), &options).unwrap();
    assert_eq!(far.p_value, 0.01);
    assert!(far.statistic > 0.5);
}

#[test]
fn labels_keep_an_ordered_stream_quiet_but_catch_a_shift_within_a_class() {
    // Two classes far apart; windows of one class only, like a table loaded class by class.
    let class_a = gaussian(150, 6, 0.0, 0, 1);
    let class_b = gaussian(150, 6, 4.0, 6, 2);
    let data: Vec<f32> = [class_a.as_slice(), class_b.as_slice()].concat();
    let reference = Embeddings::new(data, 6).unwrap();
    let labels: Vec<u32> = (0..300).map(|i| u32::from(i >= 150)).collect();
    let plain = DriftDetector::fit(&reference, DriftOptions::new(Method::Mmd)).unwrap();
    let within =
        DriftDetector::fit_with_labels(&reference, &labels, DriftOptions::new(Method::Mmd))
            .unwrap();
    let mut plain_alarms = 0;
    let mut within_alarms = 0;
    for k in 0..20 {
        let window = gaussian(20, 6, 0.0, 0, 100 + k);
        plain_alarms += usize::from(plain.check(&window).unwrap().drift);
        within_alarms += usize::from(within.check_with_labels(&window, &[0; 20]).unwrap().drift);
    }
    assert_eq!(
        plain_alarms, 20,
        "the unconditioned test sees the class order"
    );
    assert!(
        within_alarms <= 3,
        "{within_alarms} of 20 ordered windows alarmed"
    );
    let shifted = gaussian(20, 6, 1.5, 3, 999);
    assert!(within.check_with_labels(&shifted, &[0; 20]).unwrap().drift);
    // A class the reference never saw cannot be compared.
    let err = within.check_with_labels(&shifted, &[7; 20]).unwrap_err();
    assert!(err.to_string().contains("window_labels"), "{err}");
}

#[test]
fn bad_input_gets_errors_that_name_the_parameter() {
    let reference = gaussian(50, 4, 0.0, 0, 1);
    let detector = DriftDetector::fit(&reference, DriftOptions::new(Method::Ks)).unwrap();
    let narrow = gaussian(10, 3, 0.0, 0, 2);
    let message = detector.check(&narrow).unwrap_err().to_string();
    assert!(
        message.contains("`window`") && message.contains("width 3"),
        "{message}"
    );
    let one = gaussian(1, 4, 0.0, 0, 2);
    let message = detector.check(&one).unwrap_err().to_string();
    assert!(message.contains("1 rows"), "{message}");
    let single = gaussian(1, 4, 0.0, 0, 2);
    let message = DriftDetector::fit(&single, DriftOptions::new(Method::Mmd))
        .unwrap_err()
        .to_string();
    assert!(message.contains("`reference`"), "{message}");
    let nan = Embeddings::named("window", vec![0.0, f32::NAN, 1.0, 2.0], 2).unwrap_err();
    assert!(nan.to_string().contains("`window`") && nan.to_string().contains("row 0 column 1"));
    let mut options = DriftOptions::new(Method::Mmd);
    options.alpha = 1.5;
    assert!(
        DriftDetector::fit(&reference, options)
            .unwrap_err()
            .to_string()
            .contains("alpha")
    );
    // 19 permutations give p >= 0.05: at alpha 0.05 no check could alarm, so it is refused;
    // one more makes the smallest p 1/21, below alpha.
    let mut options = DriftOptions::new(Method::Mmd);
    options.permutations = 19;
    let message = DriftDetector::fit(&reference, options.clone())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`permutations`") && message.contains("at least 20"),
        "{message}"
    );
    options.permutations = 20;
    assert!(DriftDetector::fit(&reference, options).is_ok());
    let labels = vec![0; 50];
    let message =
        DriftDetector::fit_with_labels(&reference, &labels, DriftOptions::new(Method::Ks))
            .unwrap_err()
            .to_string();
    assert!(message.contains("only the mmd test"), "{message}");
    assert!(detector.check_with_labels(&narrow, &[0; 10]).is_err());
    assert!(
        "nope"
            .parse::<Method>()
            .unwrap_err()
            .to_string()
            .contains("mmd, ks, bbsd")
    );
}

#[test]
fn large_references_are_subsampled_reproducibly() {
    let reference = gaussian(300, 4, 0.0, 0, 1);
    let mut options = DriftOptions::new(Method::Ks);
    options.max_reference_rows = 100;
    let detector = DriftDetector::fit(&reference, options.clone()).unwrap();
    // 100 kept, half of them fit the components, the other half is compared with.
    assert_eq!(detector.reference_rows(), 50);
    let window = gaussian(20, 4, 0.0, 0, 2);
    let again = DriftDetector::fit(&reference, options).unwrap();
    assert_eq!(
        detector.check(&window).unwrap(),
        again.check(&window).unwrap()
    );
}
