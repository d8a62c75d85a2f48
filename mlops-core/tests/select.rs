//! Replay selection strategies on hand-made embeddings where the right answer is known, and
//! properties every strategy keeps (unique, in range, budget respected, prefix-stable,
//! deterministic per seed).

#![allow(clippy::unwrap_used)]

use mlops_core::select::{
    Budget, Distance, Embeddings, Strategy, select, select_with_probabilities,
};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

fn emb(rows: &[&[f32]]) -> Embeddings {
    Embeddings::new(
        rows.iter().flat_map(|r| r.iter().copied()).collect(),
        rows[0].len(),
    )
    .unwrap()
}

const ALL: [Strategy; 12] = [
    Strategy::None,
    Strategy::All,
    Strategy::Random {
        class_balanced: false,
    },
    Strategy::Random {
        class_balanced: true,
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
    Strategy::Reservoir,
    Strategy::ClosestToCenter,
    Strategy::Uncertainty,
];

#[test]
fn distances_are_what_they_say() {
    let (a, b) = ([0.0f32, 0.0, 3.0], [4.0f32, 0.0, 0.0]);
    assert_eq!(Distance::L1.between(&a, &b), 7.0);
    assert_eq!(
        Distance::L2.between(&a, &b),
        5.0,
        "true Euclidean, not the original's L1"
    );
    assert!((Distance::Cosine.between(&a, &b) - 1.0).abs() < 1e-6);
    assert!(Distance::Cosine.between(&a, &[0.0, 0.0, 9.0]).abs() < 1e-6);
}

#[test]
fn core_pair_keeps_the_closest_other_class_sample() {
    // Two classes, one sample each per round: the anchor is paired with the other class's
    // drawn sample. With three classes, the anchor's partner must be the nearest one.
    let e = emb(&[&[0.0, 0.0], &[0.1, 0.0], &[10.0, 10.0]]);
    let labels = [0, 1, 2];
    for seed in 0..20 {
        let s = select(
            &Strategy::CorePair {
                distance: Distance::L2,
            },
            &e,
            &labels,
            Budget::Count(2),
            seed,
        )
        .unwrap();
        let mut pair = s.indices.clone();
        pair.sort();
        // Whatever the anchor, 0 and 1 are each other's nearest; 2's nearest is 1 (distance
        // sqrt(9.9^2 + 10^2) < sqrt(200)).
        assert!(
            pair == vec![0, 1] || pair == vec![1, 2],
            "seed {seed}: {pair:?}"
        );
        if s.indices[0] != 2 {
            assert_eq!(pair, vec![0, 1], "seed {seed}");
        }
        assert!(
            (s.scores[0]
                - f64::from(Distance::L2.between(e.row(s.indices[0]), e.row(s.indices[1]))))
            .abs()
                < 1e-9
        );
    }
    // Cosine looks at angles: [1, 0] is closer to [5, 0.1] than to [0.9, 0.9].
    let e = emb(&[&[1.0, 0.0], &[5.0, 0.1], &[0.9, 0.9]]);
    let found = (0..50).any(|seed| {
        let s = select(
            &Strategy::CorePair {
                distance: Distance::Cosine,
            },
            &e,
            &[0, 1, 2],
            Budget::Count(2),
            seed,
        )
        .unwrap();
        s.indices[0] == 0 && s.indices[1] == 1
    });
    assert!(found);
    let l2_pairs_0_with_2 = (0..50).any(|seed| {
        let s = select(
            &Strategy::CorePair {
                distance: Distance::L2,
            },
            &e,
            &[0, 1, 2],
            Budget::Count(2),
            seed,
        )
        .unwrap();
        s.indices[0] == 0 && s.indices[1] == 2
    });
    assert!(l2_pairs_0_with_2, "under L2, [1,0] is nearest to [0.9,0.9]");
}

#[test]
fn core_pair_stops_cleanly_when_classes_run_out() {
    let e = emb(&[&[0.0], &[1.0], &[2.0], &[3.0], &[4.0]]);
    let s = select(
        &Strategy::CorePair {
            distance: Distance::L1,
        },
        &e,
        &[0, 0, 0, 0, 1],
        Budget::Count(5),
        1,
    )
    .unwrap();
    assert_eq!(
        s.indices.len(),
        2,
        "only one pair can span two classes: {s:?}"
    );
    assert!(s.indices.contains(&4));
}

#[test]
fn k_center_covers_an_outlier() {
    let mut rows: Vec<Vec<f32>> = (0..50)
        .map(|i| vec![(i % 7) as f32 * 0.01, (i % 5) as f32 * 0.01])
        .collect();
    rows.push(vec![100.0, 100.0]);
    let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let e = emb(&refs);
    let labels = vec![0u32; 51];
    for seed in 0..5 {
        let s = select(
            &Strategy::KCenterGreedy,
            &e,
            &labels,
            Budget::Count(2),
            seed,
        )
        .unwrap();
        assert!(s.indices.contains(&50), "seed {seed}: {s:?}");
    }
}

#[test]
fn herding_matches_the_class_mean_first() {
    // Class 0: points around the mean 1.0, the exact mean present at index 2.
    let e = emb(&[
        &[0.0],
        &[2.0],
        &[1.0],
        &[1.9],
        &[0.1],
        &[10.0],
        &[12.0],
        &[11.0],
    ]);
    let labels = [0, 0, 0, 0, 0, 1, 1, 1];
    let s = select(&Strategy::Herding, &e, &labels, Budget::Count(4), 0).unwrap();
    // Round robin per class: class 0's best first, then class 1's best (its mean 11.0).
    assert_eq!(s.indices[0], 2);
    assert_eq!(s.indices[1], 7);
    // Class 0's second pick keeps the running mean closest to 1.0: with 1.0 taken, the pair
    // mean (1.0 + x) / 2 is 0.45 away for x = 1.9 or 0.1 and 0.5 away for 0.0 or 2.0.
    let second = s.indices[2];
    assert!(second == 3 || second == 4, "{s:?}");
    assert!(s.scores[0] < 1e-3);
}

#[test]
fn random_keeps_labels_with_their_samples_and_balances() {
    let e = Embeddings::new((0..40).map(|i| i as f32).collect(), 1).unwrap();
    let labels: Vec<u32> = (0..40).map(|i| u32::from(i >= 30)).collect();
    let s = select(
        &Strategy::Random {
            class_balanced: true,
        },
        &e,
        &labels,
        Budget::Count(10),
        3,
    )
    .unwrap();
    let ones = s.indices.iter().filter(|&&i| labels[i] == 1).count();
    assert_eq!(ones, 5, "class-balanced: 5 of each");
    let fraction = select(
        &Strategy::Random {
            class_balanced: false,
        },
        &e,
        &labels,
        Budget::Fraction(0.25),
        3,
    )
    .unwrap();
    assert_eq!(fraction.indices.len(), 10);
}

#[test]
fn reservoir_is_a_uniform_sample_of_the_stream() {
    // 10 rows, 3 slots: every row should be kept about 30% of the time over many seeds, the
    // last rows as often as the first (a stream buffer that does not favour early arrivals).
    let e = Embeddings::new((0..10).map(|i| i as f32).collect(), 1).unwrap();
    let labels = vec![0u32; 10];
    let mut kept = [0usize; 10];
    for seed in 0..3000 {
        let s = select(&Strategy::Reservoir, &e, &labels, Budget::Count(3), seed).unwrap();
        assert_eq!(s.indices.len(), 3);
        for i in s.indices {
            kept[i] += 1;
        }
    }
    for (i, &k) in kept.iter().enumerate() {
        assert!(
            (800..1000).contains(&k),
            "row {i} kept {k} times of 3000 (expected ~900)"
        );
    }
    // Fewer rows than slots: all of them, in arrival order.
    let s = select(&Strategy::Reservoir, &e, &labels, Budget::Count(20), 1).unwrap();
    assert_eq!(s.indices, (0..10).collect::<Vec<_>>());
}

#[test]
fn closest_to_center_takes_the_typical_samples_of_each_class_in_turn() {
    // Class 0 around 0 (the mean is 1.0: rows 0.9 and 1.2 are the closest), class 1 around 10.
    let e = emb(&[
        &[0.9],
        &[-1.0],
        &[1.2],
        &[2.9],
        &[10.0],
        &[14.0],
        &[6.0],
        &[10.5],
    ]);
    let labels = [0, 0, 0, 0, 1, 1, 1, 1];
    let s = select(&Strategy::ClosestToCenter, &e, &labels, Budget::Count(4), 0).unwrap();
    // class 1's mean is 10.125: 10.0 then 10.5.
    assert_eq!(s.indices, vec![0, 4, 2, 7]);
    assert!((s.scores[0] - 0.1).abs() < 1e-6, "{:?}", s.scores);
}

#[test]
fn uncertainty_takes_the_smallest_margins_per_class() {
    let e = emb(&[&[0.0], &[1.0], &[2.0], &[3.0], &[4.0]]);
    let labels = [0, 0, 0, 1, 1];
    let p = Embeddings::named(
        "probabilities",
        vec![
            0.9, 0.1, // margin 0.8
            0.55, 0.45, // 0.1
            0.7, 0.3, // 0.4
            0.2, 0.8, // 0.6
            0.48, 0.52, // 0.04
        ],
        2,
    )
    .unwrap();
    let s = select_with_probabilities(&Strategy::Uncertainty, &e, &labels, &p, Budget::Count(3), 0)
        .unwrap();
    assert_eq!(s.indices, vec![1, 4, 2]);
    assert!((s.scores[1] - 0.04).abs() < 1e-6);
    // Without probabilities it says what it needs; with the wrong number of rows too.
    let err = select(&Strategy::Uncertainty, &e, &labels, Budget::Count(3), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`probabilities`"), "{err}");
    let short = Embeddings::named("probabilities", vec![0.5, 0.5], 2).unwrap();
    let err = select_with_probabilities(&Strategy::All, &e, &labels, &short, Budget::Count(1), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 probability rows for 5"), "{err}");
}

#[test]
fn bad_inputs_are_refused_by_name() {
    let e = emb(&[&[0.0], &[1.0]]);
    let err = select(&Strategy::All, &e, &[0], Budget::Count(1), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`labels`"), "{err}");
    let err = select(&Strategy::All, &e, &[0, 1], Budget::Fraction(1.5), 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`budget`"), "{err}");
    assert!(
        Embeddings::new(vec![1.0, f32::NAN], 1)
            .unwrap_err()
            .to_string()
            .contains("row 1")
    );
    assert!(
        "cp_l3"
            .parse::<Strategy>()
            .unwrap_err()
            .to_string()
            .contains("cp_l2")
    );
    for s in ALL {
        assert_eq!(s.name().parse::<Strategy>().unwrap(), s);
    }
}

fn data() -> impl proptest::strategy::Strategy<Value = (Vec<f32>, usize, Vec<u32>)> {
    (1usize..60, 1usize..6, 1u32..5).prop_flat_map(|(n, d, c)| {
        (
            proptest::collection::vec(-5.0f32..5.0, n * d),
            Just(d),
            proptest::collection::vec(0..c, n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_strategy_keeps_its_contract((values, d, labels) in data(), budget in 0usize..70, seed in any::<u64>()) {
        let e = Embeddings::new(values, d).unwrap();
        let n = e.len();
        // Probabilities: a softmax-like row per sample from its first value.
        let p = Embeddings::new(
            (0..n).flat_map(|i| { let x = 1.0 / (1.0 + (-e.row(i)[0]).exp()); [x, 1.0 - x] }).collect(),
            2,
        ).unwrap();
        let choose = |strategy: &Strategy, budget: usize| {
            select_with_probabilities(strategy, &e, &labels, &p, Budget::Count(budget), seed).unwrap()
        };
        for strategy in ALL {
            let s = choose(&strategy, budget);
            prop_assert_eq!(s.indices.len(), s.scores.len());
            let mut seen = std::collections::HashSet::new();
            for &i in &s.indices {
                prop_assert!(i < n, "{} out of range", i);
                prop_assert!(seen.insert(i), "{:?} repeats {}", strategy, i);
            }
            match strategy {
                Strategy::None => prop_assert!(s.indices.is_empty()),
                Strategy::All => prop_assert_eq!(s.indices.len(), n),
                _ => prop_assert!(s.indices.len() <= budget.min(n)),
            }
            if matches!(
                strategy,
                Strategy::Random { .. }
                    | Strategy::Herding
                    | Strategy::Reservoir
                    | Strategy::ClosestToCenter
                    | Strategy::Uncertainty
            ) {
                prop_assert_eq!(s.indices.len(), budget.min(n));
            }
            // Same seed, same answer; a smaller budget is a prefix (not for the reservoir,
            // whose slots depend on their number).
            prop_assert_eq!(&choose(&strategy, budget), &s);
            if !matches!(strategy, Strategy::All | Strategy::Reservoir) && budget > 0 {
                let smaller = choose(&strategy, budget / 2);
                prop_assert_eq!(&smaller.indices[..], &s.indices[..smaller.indices.len()], "{:?}", strategy);
            }
        }
    }
}
