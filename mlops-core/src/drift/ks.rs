//! The two-sample Kolmogorov-Smirnov test: statistic and two-sided p-value (exact for
//! `m * n` up to [`EXACT_LIMIT`], Kolmogorov's limit law with Stephens' correction above).

/// Largest `m * n` whose p-value is computed exactly (an O(m n) walk over the lattice).
pub(crate) const EXACT_LIMIT: usize = 4_000_000;

/// `sup |F_a - F_b|` of two sorted samples (ties handled: both steps are taken together).
pub(crate) fn statistic(a_sorted: &[f32], b_sorted: &[f32]) -> f64 {
    let (m, n) = (a_sorted.len(), b_sorted.len());
    let (mut i, mut j) = (0, 0);
    let mut largest = 0f64;
    while i < m && j < n {
        let x = a_sorted[i].min(b_sorted[j]);
        while i < m && a_sorted[i] <= x {
            i += 1;
        }
        while j < n && b_sorted[j] <= x {
            j += 1;
        }
        let gap = (i as f64 / m as f64 - j as f64 / n as f64).abs();
        largest = largest.max(gap);
    }
    largest
}

/// `P(D >= d)` for samples of sizes `m` and `n` from one continuous distribution.
pub(crate) fn p_value(d: f64, m: usize, n: usize) -> f64 {
    if d <= 0.0 {
        return 1.0;
    }
    let p = if m.saturating_mul(n) <= EXACT_LIMIT {
        exact_p_value(d, m, n)
    } else {
        asymptotic_p_value(d, m, n)
    };
    p.clamp(0.0, 1.0)
}

/// The fraction of monotone lattice paths from (0, 0) to (m, n) that leave the band
/// `|i/m - j/n| < d`: a path is the merged order of the two samples, all equally likely.
fn exact_p_value(d: f64, m: usize, n: usize) -> f64 {
    // Stay strictly inside the band; the tolerance keeps a lattice point at exactly `d`
    // (which realises D = d) outside.
    let limit = d - 1e-9;
    let inside = |i: usize, j: usize| (i as f64 / m as f64 - j as f64 / n as f64).abs() < limit;
    // inside_paths[j]: fraction of paths to (i, j) that stayed inside, for the current i.
    let mut inside_paths = vec![0f64; n + 1];
    inside_paths[0] = 1.0;
    for j in 1..=n {
        inside_paths[j] = if inside(0, j) {
            inside_paths[j - 1]
        } else {
            0.0
        };
    }
    for i in 1..=m {
        inside_paths[0] = if inside(i, 0) { inside_paths[0] } else { 0.0 };
        for j in 1..=n {
            inside_paths[j] = if inside(i, j) {
                (i as f64 * inside_paths[j] + j as f64 * inside_paths[j - 1]) / (i + j) as f64
            } else {
                0.0
            };
        }
    }
    1.0 - inside_paths[n]
}

fn asymptotic_p_value(d: f64, m: usize, n: usize) -> f64 {
    let en = ((m * n) as f64 / (m + n) as f64).sqrt();
    let lambda = (en + 0.12 + 0.11 / en) * d;
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += if k as u64 % 2 == 1 { term } else { -term };
        if term < 1e-16 {
            break;
        }
    }
    2.0 * sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_of_known_samples() {
        assert_eq!(statistic(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(statistic(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
        // F_a jumps to 1/2 at 1; F_b is 0 until 1.5.
        assert!((statistic(&[1.0, 2.0], &[1.5, 2.5]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn exact_p_values_match_hand_counts_and_scipy() {
        // m = n = 2, D = 1: of the 6 orderings, only aabb and bbaa give D = 1.
        assert!((p_value(1.0, 2, 2) - 2.0 / 6.0).abs() < 1e-12);
        // scipy 1.x `ks_2samp([0, 1, 2, 3, 4], [2.5, 3.5, ..., 8.5], method="exact")`:
        // D = 5/7, p = 0.0656565...
        let p = p_value(5.0 / 7.0, 5, 7);
        assert!((p - 0.065_656_565_656_565_65).abs() < 1e-9, "{p}");
    }

    #[test]
    fn asymptotic_and_exact_agree_for_large_samples() {
        let (exact, asymptotic) = (
            exact_p_value(0.1, 1000, 400),
            asymptotic_p_value(0.1, 1000, 400),
        );
        assert!((exact - asymptotic).abs() < 0.01, "{exact} {asymptotic}");
    }
}
