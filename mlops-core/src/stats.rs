//! Statistics over seeds: means with 95% confidence intervals, paired comparisons and the
//! Holm-Bonferroni correction, for experiments that must say when a difference is real.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, StudentsT};

/// A mean with the half-width of its two-sided 95% confidence interval (Student's t with
/// `n - 1` degrees of freedom; `NaN` half-width with fewer than two values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Mean of the values.
    #[serde(with = "crate::json_float")]
    pub mean: f64,
    /// Half-width of the 95% interval: the mean is in `mean ± half_width`.
    #[serde(with = "crate::json_float")]
    pub half_width: f64,
    /// Sample standard deviation (`NaN` with fewer than two values).
    #[serde(with = "crate::json_float")]
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

fn not_a_number() -> f64 {
    f64::NAN
}

/// The two-sided 97.5% quantile of Student's t with `df` degrees of freedom.
fn t_975(df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df).map_or(f64::NAN, |t| t.inverse_cdf(0.975))
}

/// Mean, sample standard deviation and 95% interval of `values` (`NaN` mean when empty).
pub fn mean_ci95(values: &[f64]) -> Interval {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Interval {
            mean,
            half_width: f64::NAN,
            std: f64::NAN,
            n,
        };
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    Interval {
        mean,
        half_width: t_975((n - 1) as f64) * std / (n as f64).sqrt(),
        std,
        n,
    }
}

/// A two-sided paired t-test of `a - b` over matched pairs (seeds), with the exact sign test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedTest {
    /// Mean difference `a - b` with its 95% interval.
    pub difference: Interval,
    /// The t statistic (infinite when every difference is the same non-zero value).
    #[serde(with = "crate::json_float")]
    pub t: f64,
    /// Two-sided p-value of the paired t-test (1 when every difference is 0; `NaN` with fewer
    /// than two pairs). When every difference is the same non-zero value the t statistic is
    /// unbounded and the test says nothing useful about so few pairs: `p` is then the sign
    /// test's.
    #[serde(with = "crate::json_float")]
    pub p: f64,
    /// Two-sided p-value of the exact sign test (ties dropped; 1 without wins or losses). With
    /// 5 pairs it cannot go below 0.0625.
    #[serde(with = "crate::json_float", default = "not_a_number")]
    pub sign_p: f64,
    /// The p-value after the Holm-Bonferroni correction over its family (set by [`holm`]).
    #[serde(with = "crate::json_float")]
    pub p_adjusted: f64,
    /// Pairs where `a` is larger, smaller, equal.
    pub wins: usize,
    /// Pairs where `a` is smaller.
    pub losses: usize,
    /// Pairs where they are equal.
    pub ties: usize,
}

/// The exact two-sided sign test of `wins` against `losses` (each 1/2 under the null).
pub fn sign_test(wins: usize, losses: usize) -> f64 {
    let n = wins + losses;
    if n == 0 {
        return 1.0;
    }
    Binomial::new(0.5, n as u64).map_or(f64::NAN, |b| {
        (2.0 * b.cdf(wins.min(losses) as u64)).min(1.0)
    })
}

/// The paired t-test of `a` against `b` (same length, matched by position).
pub fn paired_t_test(a: &[f64], b: &[f64]) -> PairedTest {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let difference = mean_ci95(&d);
    let wins = d.iter().filter(|&&x| x > 0.0).count();
    let losses = d.iter().filter(|&&x| x < 0.0).count();
    let sign_p = sign_test(wins, losses);
    let (t, p) = if d.len() < 2 {
        (f64::NAN, f64::NAN)
    } else if difference.std == 0.0 {
        if difference.mean == 0.0 {
            (0.0, 1.0)
        } else {
            (f64::INFINITY.copysign(difference.mean), sign_p)
        }
    } else {
        let t = difference.mean / (difference.std / (d.len() as f64).sqrt());
        let p = StudentsT::new(0.0, 1.0, (d.len() - 1) as f64)
            .map_or(f64::NAN, |dist| 2.0 * (1.0 - dist.cdf(t.abs())));
        (t, p)
    };
    PairedTest {
        difference,
        t,
        p,
        sign_p,
        p_adjusted: p,
        wins,
        losses,
        ties: d.len() - wins - losses,
    }
}

/// Holm-Bonferroni adjusted p-values of one family of tests, in the given order: the i-th
/// smallest p is multiplied by `m - i` (i from 0), made non-decreasing and capped at 1. `NaN`s
/// stay `NaN` and do not count.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running = 0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_uses_student_t() {
        let i = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(i.mean, 3.0);
        // s = sqrt(2.5), t(0.975, 4) = 2.7764
        assert!((i.half_width - 2.7764 * 2.5f64.sqrt() / 5f64.sqrt()).abs() < 1e-3);
        assert!(mean_ci95(&[1.0]).half_width.is_nan());
    }

    #[test]
    fn paired_test_matches_a_hand_computation() {
        // differences 1, 2, 3, 4, 5: mean 3, s = 1.5811, t = 3 / (1.5811 / sqrt 5) = 4.2426,
        // two-sided p with 4 df = 0.01324.
        let a = [2.0, 4.0, 6.0, 8.0, 10.0];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0];
        let test = paired_t_test(&a, &b);
        assert!((test.t - 4.2426).abs() < 1e-3, "{test:?}");
        assert!((test.p - 0.01324).abs() < 1e-4, "{test:?}");
        assert_eq!((test.wins, test.losses, test.ties), (5, 0, 0));
        assert_eq!(paired_t_test(&a, &a).p, 1.0);
        // Five equal non-zero differences: the t statistic is unbounded, p is the sign test's.
        let same = paired_t_test(&[2.0; 5], &[1.0; 5]);
        assert!(
            same.t.is_infinite() && (same.p - 0.0625).abs() < 1e-12,
            "{same:?}"
        );
        assert!((test.sign_p - 0.0625).abs() < 1e-12);
    }

    #[test]
    fn sign_test_is_exact() {
        // 9 wins, 1 loss: 2 * (1 + 10) / 1024.
        assert!((sign_test(9, 1) - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(sign_test(3, 3), 1.0);
        assert_eq!(sign_test(0, 0), 1.0);
    }

    #[test]
    fn holm_scales_and_keeps_the_order() {
        let adjusted = holm(&[0.01, 0.04, 0.03, f64::NAN]);
        assert!((adjusted[0] - 0.03).abs() < 1e-12);
        assert!((adjusted[2] - 0.06).abs() < 1e-12);
        assert!((adjusted[1] - 0.06).abs() < 1e-12); // 0.04 * 1 raised to the running max
        assert!(adjusted[3].is_nan());
    }
}
