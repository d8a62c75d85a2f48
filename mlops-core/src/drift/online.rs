//! The stream's online shift detector: a CUSUM over per-row novelty scores, with a threshold
//! calibrated by simulation so that a stream without a shift runs, on average, the number of
//! rows the user sets (the expected run time, ERT) before a false alarm.
//!
//! **Per-row score.** A row's similarity to the reference is the mean Gaussian-kernel value
//! between its features and the reference rows of its predicted class (the cross term of the
//! class-conditional MMD, one row at a time). Its rank among the reference rows' own
//! similarities (each against the other reference rows of the class and the new row: the
//! full-conformal rank, exactly uniform when the row is exchangeable with the reference's),
//! turned into a normal score `z = -Phi^-1((rank + 0.5) / (rows + 1))`, is what the CUSUM adds
//! up: a row less similar to its class than most reference rows scores high. When live rows
//! come from the reference's distribution, a row's rank is uniform whatever its class, so `z`
//! has the same law in every class and streams that deliver rows class by class do not drift
//! the CUSUM (classes with fewer than [`MIN_CLASS_ROWS`] reference rows are ranked against the
//! whole reference).
//!
//! **CUSUM.** `S = max(0, S + z - allowance)`, an alarm while `S > threshold`. Because `z`'s
//! law under no shift is known from the ranks alone (the class mix and class sizes of the
//! reference, and a reference's similarities being draws from the same law as a live row's),
//! the threshold is found by simulating it ([`NullLaw`]): [`SIMULATED_REFERENCES`] simulated
//! references, each with a stream of [`ROWS_PER_REFERENCE`] ERTs of rows (the CUSUM restarted
//! after each false alarm), and bisection on the threshold until the median over references of
//! the rows per false alarm equals the ERT. Simulating the reference too matters: with few rows
//! per class, how alike a class's reference rows happen to be moves every live row's rank the
//! same way, and a CUSUM adds such a bias up.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::mmd::{median, row_norms, sq_distance};
use crate::error::{Error, Result};
use crate::linalg::{View, matmul};
use crate::select::dot;

/// Classes with fewer reference rows than this are ranked against the whole reference.
pub const MIN_CLASS_ROWS: usize = 10;

/// References simulated behind a calibrated threshold (the median of their run lengths is
/// what the threshold is set by).
pub const SIMULATED_REFERENCES: u64 = 31;

/// Rows simulated per reference, in ERTs (about ten false alarms each).
pub const ROWS_PER_REFERENCE: f64 = 10.0;

/// The largest ERT calibrated (the simulation keeps `SIMULATED_REFERENCES x
/// ROWS_PER_REFERENCE x ERT` scores in memory: 124 MB at 10^5).
pub const MAX_ERT: f64 = 1e5;

/// Per-row novelty ranks fitted on a reference sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoveltyScorer {
    /// `2 sigma^2` of the Gaussian kernel: twice the median squared distance between
    /// reference rows.
    pub two_sigma_sq: f32,
    /// Per class id: the leave-one-out mean similarity of each reference row predicted as it
    /// to the class's other rows, in reference order (empty when the class has fewer than
    /// [`MIN_CLASS_ROWS`] rows: its rows are ranked against `pooled`).
    pub classes: Vec<Vec<f32>>,
    /// The same against the whole reference.
    pub pooled: Vec<f32>,
}

impl NoveltyScorer {
    /// Fits on `features` (`predicted.len()` rows, row-major) with their predicted classes
    /// (`classes` of them).
    pub fn fit(features: &[f32], predicted: &[u32], classes: usize) -> NoveltyScorer {
        let rows = predicted.len();
        let dim = features.len() / rows.max(1);
        let norms = row_norms(features, dim);
        let view = View::rows(features, rows, dim);
        let gram = matmul(view, view.t());
        let mut squared = Vec::with_capacity(rows * rows.saturating_sub(1) / 2);
        for i in 0..rows {
            for j in i + 1..rows {
                squared.push(sq_distance(norms[i], norms[j], gram[i * rows + j]));
            }
        }
        let median = median(&mut squared);
        let two_sigma_sq = if median > 0.0 { 2.0 * median } else { 1.0 };
        let kernel = |i: usize, j: usize| {
            f64::from((-sq_distance(norms[i], norms[j], gram[i * rows + j]) / two_sigma_sq).exp())
        };
        let leave_one_out = |members: &[usize]| -> Vec<f32> {
            members
                .iter()
                .map(|&i| {
                    let sum: f64 = members
                        .iter()
                        .filter(|&&j| j != i)
                        .map(|&j| kernel(i, j))
                        .sum();
                    (sum / (members.len() - 1) as f64) as f32
                })
                .collect()
        };
        let class_scores = (0..classes as u32)
            .map(|c| {
                let members: Vec<usize> = (0..rows).filter(|&i| predicted[i] == c).collect();
                if members.len() < MIN_CLASS_ROWS {
                    Vec::new()
                } else {
                    leave_one_out(&members)
                }
            })
            .collect();
        let all: Vec<usize> = (0..rows).collect();
        NoveltyScorer {
            two_sigma_sq,
            classes: class_scores,
            pooled: if rows >= 2 {
                leave_one_out(&all)
            } else {
                Vec::new()
            },
        }
    }

    /// The leave-one-out similarities class `class`'s rows are ranked among.
    pub fn table(&self, class: u32) -> &[f32] {
        match self.classes.get(class as usize) {
            Some(scores) if !scores.is_empty() => scores,
            _ => &self.pooled,
        }
    }

    /// Whether class `class` is ranked within its class (else against the pooled reference).
    pub fn within_class(&self, class: u32) -> bool {
        self.classes
            .get(class as usize)
            .is_some_and(|s| !s.is_empty())
    }
}

/// The normal score of a rank: `-Phi^-1((rank + 0.5) / (rows + 1))`, `rank` being the number
/// of reference similarities below the row's (`0..=rows`).
pub fn normal_score(rank: usize, rows: usize) -> f64 {
    let standard = Normal::standard();
    -standard.inverse_cdf((rank as f64 + 0.5) / (rows as f64 + 1.0))
}

/// The CUSUM's calibrated settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CusumCalibration {
    /// Expected rows between false alarms it was calibrated for.
    pub ert: f64,
    /// The allowance subtracted from every row's score.
    pub allowance: f64,
    /// Seed of the simulation.
    pub seed: u64,
    /// The threshold: an alarm while the CUSUM is above it.
    pub threshold: f64,
    /// The simulated mean run length at `threshold` (close to `ert`).
    pub simulated_ert: f64,
    /// Rows simulated per bisection step.
    pub simulated_rows: u64,
    /// Tail of the CUSUM's distribution in a stream without shift: pairs of a value and the
    /// fraction of rows at or above it, values increasing (what a check's p-value reads).
    pub null_tail: Vec<(f64, f64)>,
}

impl CusumCalibration {
    /// The fraction of rows of a stream without shift whose CUSUM is at least `value`
    /// (interpolated; at most the smallest fraction the simulation resolved).
    pub fn p_value(&self, value: f64) -> f64 {
        let tail = &self.null_tail;
        let Some(&(first_value, first_p)) = tail.first() else {
            return 1.0;
        };
        if value <= first_value {
            return first_p;
        }
        for pair in tail.windows(2) {
            let ((v0, p0), (v1, p1)) = (pair[0], pair[1]);
            if value <= v1 {
                let t = if v1 > v0 {
                    (value - v0) / (v1 - v0)
                } else {
                    1.0
                };
                return (p0.ln() + t * (p1.ln() - p0.ln())).exp();
            }
        }
        tail.last().map_or(1.0, |&(_, p)| p)
    }
}

/// The score law of rows without shift, with the reference's own sampling variability: per
/// group (a class or the pooled reference) its share of rows and its size. A simulated
/// reference draws each group's similarities as uniform quantiles of the population's; a
/// simulated live row draws its class, then its own quantile, and ranks among its group's.
/// Within one simulated stream the reference stays fixed, as a real one does, so the
/// simulation sees what small references do: a class whose reference rows happen to be more
/// alike than most leaves every live row of it ranked high, and the CUSUM drifts up.
pub(crate) struct NullLaw {
    cumulative: Vec<f64>,
    sizes: Vec<usize>,
    tables: Vec<Vec<f64>>,
}

/// One simulated reference: per group, its sorted similarity quantiles.
struct SimulatedReference(Vec<Vec<f64>>);

impl NullLaw {
    /// From the reference's predicted classes: a row of class `c` is drawn with the class's
    /// share and ranked in its group.
    pub fn new(scorer: &NoveltyScorer, predicted: &[u32]) -> NullLaw {
        let mut groups: Vec<(usize, f64)> = Vec::new(); // (group size, rows)
        let mut pooled_rows = 0.0;
        for (c, scores) in scorer.classes.iter().enumerate() {
            let rows = predicted.iter().filter(|&&p| p as usize == c).count() as f64;
            if scores.is_empty() {
                pooled_rows += rows;
            } else {
                groups.push((scores.len(), rows));
            }
        }
        // Predicted classes beyond the class list cannot occur; count them as pooled anyway.
        pooled_rows += predicted
            .iter()
            .filter(|&&p| p as usize >= scorer.classes.len())
            .count() as f64;
        if pooled_rows > 0.0 || groups.is_empty() {
            groups.push((scorer.pooled.len(), pooled_rows.max(1.0)));
        }
        let total: f64 = groups.iter().map(|g| g.1).sum();
        let mut running = 0.0;
        let cumulative = groups
            .iter()
            .map(|g| {
                running += g.1 / total;
                running
            })
            .collect();
        let tables = groups
            .iter()
            .map(|&(n, _)| (0..=n).map(|rank| normal_score(rank, n)).collect())
            .collect();
        NullLaw {
            cumulative,
            sizes: groups.iter().map(|g| g.0).collect(),
            tables,
        }
    }

    fn reference(&self, rng: &mut Xoshiro256PlusPlus) -> SimulatedReference {
        SimulatedReference(
            self.sizes
                .iter()
                .map(|&n| {
                    let mut quantiles: Vec<f64> = (0..n).map(|_| rng.random()).collect();
                    quantiles.sort_by(f64::total_cmp);
                    quantiles
                })
                .collect(),
        )
    }

    /// A simulated live row's group, drawn with the groups' shares.
    fn group(&self, rng: &mut Xoshiro256PlusPlus) -> usize {
        let u: f64 = rng.random();
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.tables.len() - 1)
    }

    fn draw(&self, reference: &SimulatedReference, rng: &mut Xoshiro256PlusPlus) -> f64 {
        let group = self.group(rng);
        let own: f64 = rng.random();
        let rank = reference.0[group].partition_point(|&q| q < own);
        self.tables[group][rank]
    }

    /// One stream of `rows` normal scores per simulated reference (f32: the bisection runs
    /// the CUSUM over the same streams at every step).
    fn streams(&self, rows: u64, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..SIMULATED_REFERENCES)
            .map(|_| {
                let reference = self.reference(&mut rng);
                (0..rows)
                    .map(|_| self.draw(&reference, &mut rng) as f32)
                    .collect()
            })
            .collect()
    }

    /// Per stream: its rows over its false alarms, the CUSUM restarted after each (no alarm
    /// at all: the rows, a lower bound).
    fn run_lengths(streams: &[Vec<f32>], threshold: f64, allowance: f64) -> Vec<f64> {
        streams
            .iter()
            .map(|stream| {
                let (mut s, mut alarms) = (0.0f64, 0u64);
                for &z in stream {
                    s = (s + f64::from(z) - allowance).max(0.0);
                    if s > threshold {
                        alarms += 1;
                        s = 0.0;
                    }
                }
                stream.len() as f64 / alarms.max(1) as f64
            })
            .collect()
    }

    /// The threshold whose median run length over simulated references is `ert`.
    pub fn calibrate(&self, ert: f64, allowance: f64, seed: u64) -> Result<CusumCalibration> {
        if !(ert.is_finite() && (10.0..=MAX_ERT).contains(&ert)) {
            return Err(Error::invalid(
                "ert",
                format!("{ert} is not between 10 and {MAX_ERT} rows"),
            ));
        }
        if !(allowance.is_finite() && allowance > 0.0) {
            return Err(Error::invalid(
                "allowance",
                format!("{allowance} is not a positive number"),
            ));
        }
        let rows = (ROWS_PER_REFERENCE * ert).ceil() as u64;
        let streams = self.streams(rows, seed);
        let run_length = |threshold: f64| -> f64 {
            let mut lengths = Self::run_lengths(&streams, threshold, allowance);
            lengths.sort_by(f64::total_cmp);
            lengths[lengths.len() / 2]
        };
        let (mut low, mut high) = (0.0f64, 1.0f64);
        while run_length(high) < ert {
            low = high;
            high *= 2.0;
            if high > 1e4 {
                return Err(Error::invalid(
                    "ert",
                    format!("no threshold reaches {ert} rows between false alarms"),
                ));
            }
        }
        for _ in 0..20 {
            let mid = 0.5 * (low + high);
            if run_length(mid) < ert {
                low = mid;
            } else {
                high = mid;
            }
        }
        let threshold = high;
        Ok(CusumCalibration {
            ert,
            allowance,
            seed,
            threshold,
            simulated_ert: run_length(threshold),
            simulated_rows: rows * SIMULATED_REFERENCES,
            null_tail: self.null_tail(allowance, rows * SIMULATED_REFERENCES, seed ^ 0x7a11),
        })
    }

    /// The stationary tail of the CUSUM (no restarts) when every live row's rank is uniform
    /// (a reference as typical as can be), at fractions 1/2, 1/4, ... down to about 100
    /// simulated rows, starting with `(0, 1)` (the CUSUM is never negative).
    fn null_tail(&self, allowance: f64, rows: u64, seed: u64) -> Vec<(f64, f64)> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let rows = rows.min(4_000_000);
        let mut values = Vec::with_capacity(rows as usize);
        let mut s = 0.0f64;
        for _ in 0..rows {
            let table = &self.tables[self.group(&mut rng)];
            s = (s + table[rng.random_range(0..table.len())] - allowance).max(0.0);
            values.push(s);
        }
        values.sort_by(|a, b| b.total_cmp(a));
        let mut tail = Vec::new();
        let mut fraction = 0.5;
        while fraction * rows as f64 >= 100.0 {
            let at = (fraction * rows as f64) as usize - 1;
            tail.push((values[at], fraction));
            fraction *= 0.5;
        }
        tail.retain(|&(value, _)| value > 0.0);
        tail.insert(0, (0.0, 1.0));
        tail.dedup_by(|later, earlier| later.0 == earlier.0);
        tail
    }
}

/// The full-conformal rank of `row` (squared norm `norm`) in a group of reference rows
/// (`members` of `reference`, with their leave-one-out similarities `loo` within the group):
/// how many members' similarity to the group's other rows and `row` is below `row`'s mean
/// similarity to the members (`0..=members.len()`).
pub(crate) fn conformal_rank(
    row: &[f32],
    norm: f32,
    reference: &[f32],
    norms: &[f32],
    members: &[usize],
    loo: &[f32],
    two_sigma_sq: f32,
) -> usize {
    let dim = row.len();
    let kernel: Vec<f32> = members
        .iter()
        .map(|&j| {
            let dot = dot(row, &reference[j * dim..(j + 1) * dim]);
            (-sq_distance(norm, norms[j], dot) / two_sigma_sq).exp()
        })
        .collect();
    let n = members.len();
    if n == 0 {
        return 0;
    }
    let own = kernel.iter().map(|&k| f64::from(k)).sum::<f64>() / n as f64;
    kernel
        .iter()
        .zip(loo)
        .filter(|&(&k, &s)| (f64::from(s) * (n - 1) as f64 + f64::from(k)) / (n as f64) < own)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_scores_are_symmetric_and_centred() {
        let scores: Vec<f64> = (0..=99).map(|r| normal_score(r, 99)).collect();
        assert!(scores.iter().sum::<f64>().abs() < 1e-9);
        assert!(scores[0] > 2.0 && scores[99] < -2.0);
        assert!(scores.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn calibrated_threshold_gives_the_ert_on_a_fresh_simulation() {
        let scorer = NoveltyScorer {
            two_sigma_sq: 1.0,
            classes: vec![vec![0.0; 40], vec![0.0; 160]],
            pooled: vec![0.0; 200],
        };
        let predicted: Vec<u32> = (0..200).map(|i| u32::from(i % 5 == 0)).collect();
        let law = NullLaw::new(&scorer, &predicted);
        let calibration = law.calibrate(2000.0, 0.25, 1).unwrap();
        assert!((calibration.simulated_ert / 2000.0 - 1.0).abs() < 0.2);
        // Another seed: the median run length over references is still close to the setting.
        let streams = law.streams(40_000, 99);
        let mut lengths = NullLaw::run_lengths(&streams, calibration.threshold, 0.25);
        lengths.sort_by(f64::total_cmp);
        let run = lengths[lengths.len() / 2];
        assert!((run / 2000.0 - 1.0).abs() < 0.35, "median run length {run}");
        // Small classes: their own threshold, calibrated as well.
        let small = NoveltyScorer {
            two_sigma_sq: 1.0,
            classes: vec![vec![0.0; 10], vec![0.0; 10]],
            pooled: vec![0.0; 20],
        };
        let small_predicted: Vec<u32> = (0..20).map(|i| i % 2).collect();
        let small_law = NullLaw::new(&small, &small_predicted);
        let small_calibration = small_law.calibrate(2000.0, 0.25, 1).unwrap();
        assert!((small_calibration.simulated_ert / 2000.0 - 1.0).abs() < 0.2);
        assert_ne!(small_calibration.threshold, calibration.threshold);
        assert!(calibration.p_value(calibration.threshold) < 0.05);
        assert!(calibration.p_value(0.0) > 0.3);
        assert!(law.calibrate(5.0, 0.25, 1).is_err());
        assert!(law.calibrate(1000.0, 0.0, 1).is_err());
    }
}
