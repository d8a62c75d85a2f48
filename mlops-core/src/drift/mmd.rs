//! Squared maximum mean discrepancy with a Gaussian kernel and a permutation test.
//!
//! The reference-reference kernel matrix and its row sums are computed once, when the detector
//! is fitted. A check computes the window's kernel rows against the reference (one gemm,
//! O(n m d)) and among themselves (O(n^2 d)); each permutation then costs O(n^2): with the
//! pooled row sums `r` and total `T`, a random window `W` of size `n` has
//! `S_WW = sum over W x W`, `S_RW = sum_W r - S_WW` and `S_RR = T - 2 S_RW - S_WW`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::linalg::{View, matmul};

/// A reference sample prepared for MMD checks.
#[derive(Debug, Clone)]
pub(crate) struct Mmd {
    reference: Vec<f32>,
    norms: Vec<f32>,
    rows: usize,
    dim: usize,
    /// `2 sigma^2`: twice the median squared distance between reference rows.
    two_sigma_sq: f32,
    /// Reference kernel matrix, `rows x rows`.
    kernel: Vec<f32>,
    /// Per reference row: the sum of its kernel row over the rows of its stratum.
    stratum_row_sums: Vec<f64>,
    /// Stratum (class label) of each reference row; all zero when unconditioned.
    strata: Vec<u32>,
}

/// The observed statistic and its permutation p-value.
pub(crate) struct Outcome {
    pub statistic: f64,
    pub p_value: f64,
}

impl Mmd {
    /// Prepares `reference` (`rows x dim`, row-major) with per-row strata (all equal for the
    /// plain test).
    pub fn fit(reference: &[f32], rows: usize, dim: usize, strata: Vec<u32>) -> Mmd {
        let norms = row_norms(reference, dim);
        let view = View::rows(reference, rows, dim);
        let gram = matmul(view, view.t());
        let mut squared = Vec::with_capacity(rows * (rows - 1) / 2);
        for i in 0..rows {
            for j in i + 1..rows {
                squared.push(sq_distance(norms[i], norms[j], gram[i * rows + j]));
            }
        }
        let median = median(&mut squared);
        // Identical rows everywhere: any positive bandwidth gives the same (zero) statistic.
        let two_sigma_sq = if median > 0.0 { 2.0 * median } else { 1.0 };
        let kernel: Vec<f32> = gram
            .iter()
            .enumerate()
            .map(|(at, &g)| {
                let (i, j) = (at / rows, at % rows);
                (-sq_distance(norms[i], norms[j], g) / two_sigma_sq).exp()
            })
            .collect();
        let stratum_row_sums = (0..rows)
            .map(|i| {
                (0..rows)
                    .filter(|&j| strata[j] == strata[i])
                    .map(|j| f64::from(kernel[i * rows + j]))
                    .sum()
            })
            .collect();
        Mmd {
            reference: reference.to_vec(),
            norms,
            rows,
            dim,
            two_sigma_sq,
            kernel,
            stratum_row_sums,
            strata,
        }
    }

    /// Whether some reference row has stratum `label`.
    pub fn has_stratum(&self, label: u32) -> bool {
        self.strata.contains(&label)
    }

    /// Tests `window` (`n x dim`) with per-row strata against the reference, with
    /// `permutations` seeded shuffles inside each stratum. Window rows whose stratum has no
    /// reference row are left out (they cannot be compared); `None` when none is left.
    pub fn check(
        &self,
        window: &[f32],
        window_strata: &[u32],
        permutations: usize,
        seed: u64,
    ) -> Option<Outcome> {
        let n = window_strata.len();
        let (m, dim) = (self.rows, self.dim);
        let window_norms = row_norms(window, dim);
        let view = View::rows(window, n, dim);
        let cross_gram = matmul(view, View::rows(&self.reference, m, dim).t());
        let own_gram = matmul(view, view.t());
        let k = |sq: f32| (-sq / self.two_sigma_sq).exp();
        let cross: Vec<f32> = cross_gram
            .iter()
            .enumerate()
            .map(|(at, &g)| k(sq_distance(window_norms[at / m], self.norms[at % m], g)))
            .collect();
        let own: Vec<f32> = own_gram
            .iter()
            .enumerate()
            .map(|(at, &g)| k(sq_distance(window_norms[at / n], window_norms[at % n], g)))
            .collect();
        let pooled = Pooled {
            mmd: self,
            cross: &cross,
            own: &own,
            n,
        };

        let mut strata: Vec<Stratum> = Vec::new();
        let mut labels: Vec<u32> = window_strata.to_vec();
        labels.sort_unstable();
        labels.dedup();
        for label in labels {
            let reference: Vec<usize> = (0..m).filter(|&i| self.strata[i] == label).collect();
            let window_rows: Vec<usize> = (0..n).filter(|&w| window_strata[w] == label).collect();
            if reference.is_empty() {
                continue;
            }
            strata.push(Stratum::new(&pooled, reference, window_rows));
        }
        let counted: usize = strata.iter().map(|s| s.window_size).sum();
        if counted == 0 {
            return None;
        }
        let observed: f64 = strata
            .iter()
            .map(|s| s.weight(counted) * s.observed(&pooled))
            .sum();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut at_least = 0usize;
        for _ in 0..permutations {
            let permuted: f64 = strata
                .iter_mut()
                .map(|s| s.weight(counted) * s.permuted(&pooled, &mut rng))
                .sum();
            if permuted >= observed - 1e-12 * observed.abs() {
                at_least += 1;
            }
        }
        Some(Outcome {
            statistic: observed,
            p_value: (1 + at_least) as f64 / (1 + permutations) as f64,
        })
    }
}

/// Kernel values among the pooled rows: reference rows are `0..m`, window rows `m..m + n`.
struct Pooled<'a> {
    mmd: &'a Mmd,
    cross: &'a [f32],
    own: &'a [f32],
    n: usize,
}

impl Pooled<'_> {
    #[inline]
    fn kernel(&self, a: usize, b: usize) -> f32 {
        let m = self.mmd.rows;
        match (a < m, b < m) {
            (true, true) => self.mmd.kernel[a * m + b],
            (true, false) => self.cross[(b - m) * m + a],
            (false, true) => self.cross[(a - m) * m + b],
            (false, false) => self.own[(a - m) * self.n + (b - m)],
        }
    }
}

/// One stratum's pooled rows (reference first, then window), with their row sums inside the
/// stratum and the total, ready for permutations.
struct Stratum {
    members: Vec<usize>,
    row_sums: Vec<f64>,
    total: f64,
    reference_size: usize,
    window_size: usize,
    /// A permutation of `0..members.len()`, reshuffled in part for each permuted window.
    positions: Vec<usize>,
}

impl Stratum {
    fn new(pooled: &Pooled<'_>, reference: Vec<usize>, window: Vec<usize>) -> Self {
        let m = pooled.mmd.rows;
        let window_members: Vec<usize> = window.iter().map(|w| m + w).collect();
        let mut row_sums = Vec::with_capacity(reference.len() + window.len());
        for &i in &reference {
            let extra: f64 = window_members
                .iter()
                .map(|&w| f64::from(pooled.kernel(i, w)))
                .sum();
            row_sums.push(pooled.mmd.stratum_row_sums[i] + extra);
        }
        let all: Vec<usize> = reference.iter().copied().chain(window_members).collect();
        for &w in &all[reference.len()..] {
            row_sums.push(all.iter().map(|&j| f64::from(pooled.kernel(w, j))).sum());
        }
        Stratum {
            total: row_sums.iter().sum(),
            reference_size: reference.len(),
            window_size: window.len(),
            positions: (0..all.len()).collect(),
            members: all,
            row_sums,
        }
    }

    fn weight(&self, counted: usize) -> f64 {
        self.window_size as f64 / counted as f64
    }

    /// MMD^2 (biased V-statistic) when the positions `chosen` (indices into `members`) form
    /// the window.
    fn statistic(&self, pooled: &Pooled<'_>, chosen: &[usize]) -> f64 {
        if self.window_size == 0 {
            return 0.0;
        }
        let mut within = 0f64;
        for &a in chosen {
            let row = self.members[a];
            for &b in chosen {
                within += f64::from(pooled.kernel(row, self.members[b]));
            }
        }
        let window_row_sums: f64 = chosen.iter().map(|&a| self.row_sums[a]).sum();
        let cross = window_row_sums - within;
        let reference = self.total - 2.0 * cross - within;
        let (m, n) = (self.reference_size as f64, self.window_size as f64);
        reference / (m * m) + within / (n * n) - 2.0 * cross / (m * n)
    }

    fn observed(&self, pooled: &Pooled<'_>) -> f64 {
        let chosen: Vec<usize> = (self.reference_size..self.members.len()).collect();
        self.statistic(pooled, &chosen)
    }

    /// The statistic for a uniformly random window of the same size (partial Fisher-Yates
    /// over the stratum's positions).
    fn permuted(&mut self, pooled: &Pooled<'_>, rng: &mut ChaCha8Rng) -> f64 {
        let size = self.members.len();
        for k in 0..self.window_size {
            let pick = rng.random_range(k..size);
            self.positions.swap(k, pick);
        }
        self.statistic(pooled, &self.positions[..self.window_size])
    }
}

/// Squared norm of each row of a row-major matrix of width `dim`.
pub(crate) fn row_norms(data: &[f32], dim: usize) -> Vec<f32> {
    data.chunks(dim.max(1))
        .map(|row| row.iter().map(|v| v * v).sum())
        .collect()
}

/// Squared distance from two squared norms and the dot product (never negative).
#[inline]
pub(crate) fn sq_distance(norm_a: f32, norm_b: f32, dot: f32) -> f32 {
    (norm_a + norm_b - 2.0 * dot).max(0.0)
}

/// The upper median (0 for no values); reorders `values`.
pub(crate) fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    let (_, value, _) = values.select_nth_unstable_by(mid, f32::total_cmp);
    *value
}
