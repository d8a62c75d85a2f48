//! Domain-classifier test: an L2-regularised, class-balanced logistic regression learns to
//! tell window rows from reference rows (on the reference's standardised principal
//! components) on one seeded half of each, and scores the other halves; the AUC of those
//! held-out scores is tested with the Mann-Whitney rank-sum test (normal approximation).
//!
//! One split, not k-fold cross-validation: summing per-fold rank statistics treats the folds
//! as independent, but each fold's model was trained on the others' rows, and on Gaussian
//! data with no shift that test alarmed in 9-15% of windows at alpha 0.05. With one split the
//! held-out scores of both groups come from a model that saw none of them, so under no shift
//! their ranks are exchangeable and the test keeps its level.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::linalg::{cholesky_solve, normal_upper_tail};

/// L2 penalty on the weights (not the bias), per unit of total sample weight.
const PENALTY: f64 = 1e-2;
/// Newton steps per fit.
const NEWTON_STEPS: usize = 25;

/// The held-out AUC and its one-sided p-value (AUC above one half).
pub(crate) struct Outcome {
    pub auc: f64,
    pub p_value: f64,
}

/// Runs the test on already projected, standardised features (`width` columns); both sides
/// need at least two rows.
pub(crate) fn test(reference: &[f64], window: &[f64], width: usize, seed: u64) -> Outcome {
    let (m, n) = (reference.len() / width, window.len() / width);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let halves = |count: usize, rng: &mut ChaCha8Rng| {
        let mut order: Vec<usize> = (0..count).collect();
        order.shuffle(rng);
        // The larger half trains when the count is odd.
        let held = order.split_off(count.div_ceil(2));
        (order, held)
    };
    let (reference_train, reference_held) = halves(m, &mut rng);
    let (window_train, window_held) = halves(n, &mut rng);
    let train: Vec<(&[f64], bool)> = reference_train
        .iter()
        .map(|&i| (row(reference, width, i), false))
        .chain(window_train.iter().map(|&i| (row(window, width, i), true)))
        .collect();
    let weights = fit(&train, width);
    let score = |x: &[f64]| -> f64 {
        weights[width] + x.iter().zip(&weights).map(|(a, w)| a * w).sum::<f64>()
    };
    let held_window: Vec<f64> = window_held
        .iter()
        .map(|&i| score(row(window, width, i)))
        .collect();
    let held_reference: Vec<f64> = reference_held
        .iter()
        .map(|&i| score(row(reference, width, i)))
        .collect();
    let (n1, n0) = (held_window.len() as f64, held_reference.len() as f64);
    if n1 == 0.0 || n0 == 0.0 {
        return Outcome {
            auc: 0.5,
            p_value: 1.0,
        };
    }
    let u = mann_whitney_u(&held_window, &held_reference);
    let mean = n1 * n0 / 2.0;
    let var = n1 * n0 * (n1 + n0 + 1.0) / 12.0;
    Outcome {
        auc: u / (n1 * n0),
        p_value: normal_upper_tail((u - mean) / var.sqrt()),
    }
}

/// Row `i` of a row-major matrix of width `width`.
fn row(data: &[f64], width: usize, i: usize) -> &[f64] {
    &data[i * width..(i + 1) * width]
}

/// Class-balanced, L2-regularised logistic regression by Newton's method: `width` weights
/// then the bias.
fn fit(rows: &[(&[f64], bool)], width: usize) -> Vec<f64> {
    let positives = rows.iter().filter(|(_, y)| *y).count().max(1) as f64;
    let negatives = rows.iter().filter(|(_, y)| !*y).count().max(1) as f64;
    let weight_of = |y: bool| if y { 0.5 / positives } else { 0.5 / negatives };
    let size = width + 1;
    let mut beta = vec![0f64; size];
    for _ in 0..NEWTON_STEPS {
        let mut gradient = vec![0f64; size];
        let mut hessian = vec![0f64; size * size];
        for (row, y) in rows {
            let z = beta[width] + row.iter().zip(&beta).map(|(x, b)| x * b).sum::<f64>();
            let p = 1.0 / (1.0 + (-z).exp());
            let w = weight_of(*y);
            let residual = w * (p - if *y { 1.0 } else { 0.0 });
            let curvature = w * p * (1.0 - p);
            for a in 0..size {
                let xa = if a == width { 1.0 } else { row[a] };
                gradient[a] += residual * xa;
                for b in 0..=a {
                    let xb = if b == width { 1.0 } else { row[b] };
                    hessian[a * size + b] += curvature * xa * xb;
                }
            }
        }
        for a in 0..size {
            for b in 0..a {
                hessian[b * size + a] = hessian[a * size + b];
            }
        }
        for a in 0..width {
            gradient[a] += PENALTY * beta[a];
            hessian[a * size + a] += PENALTY;
        }
        hessian[width * size + width] += 1e-9;
        let Some(step) = cholesky_solve(&hessian, &gradient, size) else {
            break;
        };
        beta.iter_mut().zip(&step).for_each(|(b, s)| *b -= s);
        if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-8 {
            break;
        }
    }
    beta
}

/// Mann-Whitney U of `a` over `b`: pairs where `a` ranks higher, ties counted half.
fn mann_whitney_u(a: &[f64], b: &[f64]) -> f64 {
    let mut sorted = b.to_vec();
    sorted.sort_by(f64::total_cmp);
    a.iter()
        .map(|&x| {
            let below = sorted.partition_point(|&v| v < x);
            let not_above = sorted.partition_point(|&v| v <= x);
            below as f64 + 0.5 * (not_above - below) as f64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mann_whitney_counts_pairs_and_ties() {
        assert_eq!(mann_whitney_u(&[3.0, 4.0], &[1.0, 2.0]), 4.0);
        assert_eq!(mann_whitney_u(&[1.0], &[1.0, 0.0]), 1.5);
    }

    #[test]
    fn logistic_regression_separates_separable_groups() {
        let data: Vec<Vec<f64>> = (0..40).map(|i| vec![i as f64 / 10.0 - 2.0]).collect();
        let rows: Vec<(&[f64], bool)> = data.iter().map(|r| (r.as_slice(), r[0] > 0.0)).collect();
        let beta = fit(&rows, 1);
        assert!(beta[0] > 1.0, "{beta:?}");
    }
}
