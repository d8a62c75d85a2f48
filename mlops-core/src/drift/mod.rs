//! Shift monitoring. Two kinds:
//!
//! - **In a stream**, [`DriftMonitor`]: an online detector fed one row at a time (a CUSUM over
//!   per-row novelty ranks, [`online`]) whose expected rows between false alarms is a setting
//!   ([`MonitorConfig::ert`]), and an estimate of the live accuracy without labels
//!   ([`AccuracyEstimator`], ATC on temperature-scaled confidences). Both are fitted on the
//!   model's reference sample and stored with it in the package ([`MonitorCalibration`]).
//! - **Batch comparisons**, [`DriftDetector`] / [`detect`]: two-sample tests between a
//!   reference sample and a window of rows, on any `N x D` float matrix (backbone embeddings,
//!   softmax outputs), below.
//!
//! | method | what it tests | per check, reference `m`, window `n`, width `d` |
//! |---|---|---|
//! | [`Method::Mmd`] | squared MMD, Gaussian kernel (median-heuristic bandwidth on the reference), permutation test | O(n m d + n^2 d + P n^2), `P` permutations |
//! | [`Method::Ks`] | Kolmogorov-Smirnov per principal component of the reference, Bonferroni | O(n d k + k (m + n) + m n) |
//! | [`Method::Bbsd`] | black-box shift detection: KS per column of the model's softmax outputs, Bonferroni | O(c (m + n) + m n) |
//! | [`Method::Classifier`] | a domain classifier (logistic regression on the embeddings' principal components), trained on half of each side, AUC on the other halves, rank-sum test | O(n d k + (m + n) k^2) |
//!
//! Fitting ([`DriftDetector::fit`]) does the per-reference work once: the MMD kernel matrix
//! (O(m^2 d)), the principal components (O(m d k); fitted on a seeded half of the reference,
//! the other half is what windows are compared with, so the projection is not overfitted to
//! the rows it is compared with). Every random choice takes
//! [`DriftOptions::seed`]; the same seed and data give the same result.
//!
//! **Ordered streams.** A live table often delivers rows class by class, so a window of
//! consecutive rows has a class mix far from the reference's. That is a change of the label
//! prior, not of what the images look like. Pass the rows' predicted classes as labels
//! ([`DriftDetector::fit_with_labels`], [`DriftDetector::check_with_labels`]) and the MMD test
//! compares each window row only with reference rows of the same class (permutations stay
//! inside classes, and the statistic is the class-weighted mean of per-class MMDs), so the
//! class order of a stream does not raise an alarm while a change of the images within a
//! class does.
//!
//! ```
//! use mlops_core::Embeddings;
//! use mlops_core::drift::{DriftDetector, DriftOptions, Method};
//!
//! let reference = Embeddings::new((0..400).map(|i| ((i * 37) % 101) as f32 / 101.0).collect(), 4)?;
//! let shifted = Embeddings::new((0..80).map(|i| 2.0 + ((i * 17) % 13) as f32 / 13.0).collect(), 4)?;
//! let detector = DriftDetector::fit(&reference, DriftOptions::new(Method::Mmd))?;
//! let result = detector.check(&shifted)?;
//! assert!(result.drift && result.p_value < 0.05);
//! # Ok::<(), mlops_core::Error>(())
//! ```

mod accuracy;
mod classifier;
mod ks;
mod mmd;
mod monitor;
pub mod online;
mod pca;

pub use accuracy::{AccuracyEstimator, ConfidenceScore};
pub use monitor::{
    DriftCheck, DriftMonitor, MonitorCalibration, MonitorConfig, RECOMMENDED_REFERENCE_ROWS,
    ReferenceSample,
};

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::select::Embeddings;

/// A two-sample test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Squared maximum mean discrepancy with a permutation test.
    Mmd,
    /// Kolmogorov-Smirnov per principal component of the reference (Bonferroni).
    Ks,
    /// Kolmogorov-Smirnov per column of softmax outputs (Bonferroni).
    Bbsd,
    /// A domain classifier's cross-validated AUC.
    Classifier,
}

crate::names::named_enum!(Method, "method", {
    Mmd => "mmd",
    Ks => "ks",
    Bbsd => "bbsd",
    Classifier => "classifier",
});

/// How to test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftOptions {
    /// The test.
    pub method: Method,
    /// Significance level: a p-value below it is an alarm.
    pub alpha: f64,
    /// Seed of every random choice (permutations, splits, projections, subsampling).
    pub seed: u64,
    /// Permutations of the MMD test (its smallest p-value is `1 / (permutations + 1)`).
    pub permutations: usize,
    /// Principal components for `ks` and `classifier`.
    pub components: usize,
    /// References with more rows are subsampled (seeded) to this many.
    pub max_reference_rows: usize,
}

impl DriftOptions {
    /// Defaults for `method`: alpha 0.05, seed 2022, 200 permutations, 32 components,
    /// at most 2000 reference rows.
    pub fn new(method: Method) -> Self {
        DriftOptions {
            method,
            alpha: 0.05,
            seed: 2022,
            permutations: 200,
            components: 32,
            max_reference_rows: 2000,
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::invalid(
                "alpha",
                format!("{} is not between 0 and 1", self.alpha),
            ));
        }
        if self.method == Method::Mmd && self.permutations == 0 {
            return Err(Error::invalid("permutations", "must be at least 1"));
        }
        // The permutation p-value is at least 1 / (permutations + 1): at or above alpha, no
        // check could ever alarm.
        let smallest = 1.0 / (self.permutations as f64 + 1.0);
        if self.method == Method::Mmd && smallest >= self.alpha {
            return Err(Error::invalid(
                "permutations",
                format!(
                    "{} permutations give p-values of at least {smallest:.4}, never below alpha {}: \
                     use at least {} permutations",
                    self.permutations,
                    self.alpha,
                    (1.0 / self.alpha).floor() as usize
                ),
            ));
        }
        if self.components == 0 {
            return Err(Error::invalid("components", "must be at least 1"));
        }
        if self.max_reference_rows < 2 {
            return Err(Error::invalid("max_reference_rows", "must be at least 2"));
        }
        Ok(())
    }
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions::new(Method::Mmd)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftResult {
    /// The test that ran.
    pub method: Method,
    /// Its statistic: MMD^2, the largest KS distance, or the held-out AUC.
    pub statistic: f64,
    /// The p-value (Bonferroni-adjusted for `ks` and `bbsd`: the smallest per-column p-value
    /// times the number of columns, capped at 1).
    pub p_value: f64,
    /// The significance level the p-value is compared with (`alpha`).
    pub threshold: f64,
    /// `p_value < threshold`.
    pub drift: bool,
    /// Window rows the test used (with labels, rows of a class the reference lacks are left
    /// out).
    pub window_rows: usize,
}

/// A reference sample prepared for repeated checks.
#[derive(Debug, Clone)]
pub struct DriftDetector {
    options: DriftOptions,
    dim: usize,
    reference_rows: usize,
    labelled: bool,
    fitted: Fitted,
}

#[derive(Debug, Clone)]
enum Fitted {
    Mmd(mmd::Mmd),
    Ks {
        projection: Option<pca::Pca>,
        /// Per column, the sorted reference values.
        sorted_columns: Vec<Vec<f32>>,
    },
    Classifier {
        projection: pca::Pca,
        /// Per component: mean and standard deviation on the reference.
        scale: Vec<(f64, f64)>,
        reference: Vec<f64>,
    },
}

impl DriftDetector {
    /// Prepares `reference` (at least two rows) for checks with `options`.
    pub fn fit(reference: &Embeddings, options: DriftOptions) -> Result<Self> {
        Self::fit_inner(reference, None, options)
    }

    /// Like [`DriftDetector::fit`], with a class label per reference row (usually the model's
    /// predicted class): checks with labels then compare rows only within a class. Only the
    /// `mmd` method takes labels.
    pub fn fit_with_labels(
        reference: &Embeddings,
        labels: &[u32],
        options: DriftOptions,
    ) -> Result<Self> {
        Self::fit_inner(reference, Some(labels), options)
    }

    fn fit_inner(
        reference: &Embeddings,
        labels: Option<&[u32]>,
        options: DriftOptions,
    ) -> Result<Self> {
        options.validate()?;
        let (rows, dim) = (reference.len(), reference.dim());
        let least = match options.method {
            Method::Ks | Method::Classifier => 4,
            Method::Mmd | Method::Bbsd => 2,
        };
        if rows < least {
            return Err(Error::invalid(
                "reference",
                format!(
                    "has {rows} rows; the {} test needs at least {least}",
                    options.method
                ),
            ));
        }
        if let Some(labels) = labels {
            if options.method != Method::Mmd {
                return Err(Error::invalid(
                    "labels",
                    format!(
                        "only the mmd test compares within classes, not {}",
                        options.method
                    ),
                ));
            }
            if labels.len() != rows {
                return Err(Error::invalid(
                    "reference_labels",
                    format!("{} labels for {rows} reference rows", labels.len()),
                ));
            }
        }
        if options.method == Method::Bbsd {
            check_probabilities("reference", reference)?;
        }
        // Seeded subsample of large references (kept in their original order).
        let keep: Vec<usize> = if rows > options.max_reference_rows {
            let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
            let mut keep = sample(&mut rng, rows, options.max_reference_rows).into_vec();
            keep.sort_unstable();
            keep
        } else {
            (0..rows).collect()
        };
        let data: Vec<f32> = keep
            .iter()
            .flat_map(|&i| reference.row(i).iter().copied())
            .collect();
        let rows = keep.len();
        let fitted = match options.method {
            Method::Mmd => {
                let strata = match labels {
                    Some(labels) => keep.iter().map(|&i| labels[i]).collect(),
                    None => vec![0; rows],
                };
                Fitted::Mmd(mmd::Mmd::fit(&data, rows, dim, strata))
            }
            Method::Bbsd => Fitted::Ks {
                projection: None,
                sorted_columns: columns(&data, dim).into_iter().map(sorted).collect(),
            },
            Method::Ks => {
                let (projection, rows, data) = split_projection(&data, rows, dim, &options);
                let columns = columns(&projection.project(&data, rows), projection.components());
                Fitted::Ks {
                    projection: Some(projection),
                    sorted_columns: columns.into_iter().map(sorted).collect(),
                }
            }
            Method::Classifier => {
                let (projection, rows, data) = split_projection(&data, rows, dim, &options);
                let projected = projection.project(&data, rows);
                let width = projection.components();
                let scale: Vec<(f64, f64)> = columns(&projected, width)
                    .iter()
                    .map(|c| mean_and_std(c))
                    .collect();
                let reference = standardise(&projected, &scale);
                Fitted::Classifier {
                    projection,
                    scale,
                    reference,
                }
            }
        };
        let reference_rows = match &fitted {
            Fitted::Mmd(_) => rows,
            Fitted::Ks { sorted_columns, .. } => sorted_columns[0].len(),
            Fitted::Classifier {
                reference, scale, ..
            } => reference.len() / scale.len(),
        };
        Ok(DriftDetector {
            options,
            dim,
            reference_rows,
            labelled: labels.is_some(),
            fitted,
        })
    }

    /// The options the detector was fitted with.
    pub fn options(&self) -> &DriftOptions {
        &self.options
    }

    /// Width of the rows it tests.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Reference rows it compares windows with: after subsampling, and for `ks` and
    /// `classifier` the half not used to fit the principal components.
    pub fn reference_rows(&self) -> usize {
        self.reference_rows
    }

    /// Tests `window` (at least two rows, the reference's width) against the reference.
    /// A detector fitted with labels needs [`DriftDetector::check_with_labels`].
    pub fn check(&self, window: &Embeddings) -> Result<DriftResult> {
        if self.labelled {
            return Err(Error::invalid(
                "window_labels",
                "the detector was fitted with reference labels; pass the window's labels too",
            ));
        }
        self.check_inner(window, None)
    }

    /// Tests `window` with a class label per row (see [`DriftDetector::fit_with_labels`]).
    pub fn check_with_labels(&self, window: &Embeddings, labels: &[u32]) -> Result<DriftResult> {
        if !self.labelled {
            return Err(Error::invalid(
                "window_labels",
                "the detector was fitted without reference labels; fit with labels to compare within classes",
            ));
        }
        if labels.len() != window.len() {
            return Err(Error::invalid(
                "window_labels",
                format!("{} labels for {} window rows", labels.len(), window.len()),
            ));
        }
        self.check_inner(window, Some(labels))
    }

    fn check_inner(&self, window: &Embeddings, labels: Option<&[u32]>) -> Result<DriftResult> {
        let n = window.len();
        if window.dim() != self.dim {
            return Err(Error::invalid(
                "window",
                format!(
                    "rows have width {} but the reference's have width {}",
                    window.dim(),
                    self.dim
                ),
            ));
        }
        if n < 2 {
            return Err(Error::invalid(
                "window",
                format!("has {n} rows; a test needs at least 2"),
            ));
        }
        let options = &self.options;
        let data = window.as_slice();
        let (statistic, p_value, used) = match &self.fitted {
            Fitted::Mmd(mmd) => {
                let strata = labels.map_or_else(|| vec![0; n], <[u32]>::to_vec);
                let outcome = mmd
                    .check(data, &strata, options.permutations, options.seed)
                    .ok_or_else(|| {
                        Error::invalid(
                            "window_labels",
                            "no window row has a class that the reference has",
                        )
                    })?;
                let used = labels.map_or(n, |labels| {
                    labels.iter().filter(|l| mmd.has_stratum(**l)).count()
                });
                (outcome.statistic, outcome.p_value, used)
            }
            Fitted::Ks {
                projection,
                sorted_columns,
            } => {
                if options.method == Method::Bbsd {
                    check_probabilities("window", window)?;
                }
                let window_columns = match projection {
                    Some(p) => columns(&p.project(data, n), p.components()),
                    None => columns(data, self.dim),
                };
                let largest = sorted_columns
                    .iter()
                    .zip(window_columns)
                    .map(|(reference, column)| ks::statistic(reference, &sorted(column)))
                    .fold(0.0, f64::max);
                let tests = sorted_columns.len() as f64;
                let p = ks::p_value(largest, self.reference_rows, n);
                (largest, (p * tests).min(1.0), n)
            }
            Fitted::Classifier {
                projection,
                scale,
                reference,
            } => {
                let projected = projection.project(data, n);
                let window = standardise(&projected, scale);
                let outcome = classifier::test(reference, &window, scale.len(), options.seed);
                (outcome.auc, outcome.p_value, n)
            }
        };
        Ok(DriftResult {
            method: options.method,
            statistic,
            p_value,
            threshold: options.alpha,
            drift: p_value < options.alpha,
            window_rows: used,
        })
    }
}

/// One-shot test of `window` against `reference` (fits, then checks). To check many windows
/// against one reference, fit a [`DriftDetector`] once.
pub fn detect(
    reference: &Embeddings,
    window: &Embeddings,
    options: &DriftOptions,
) -> Result<DriftResult> {
    DriftDetector::fit(reference, options.clone())?.check(window)
}

/// Principal components fitted on one half of the reference (seeded split) and the other
/// half, which the tests then compare windows with. Projecting the rows the components were
/// fitted on would inflate their variance along those components (with fewer rows than
/// dimensions, a lot), so new rows from the same distribution would look shifted.
fn split_projection(
    data: &[f32],
    rows: usize,
    dim: usize,
    options: &DriftOptions,
) -> (pca::Pca, usize, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5ca1_ab1e);
    let order = sample(&mut rng, rows, rows).into_vec();
    let fit_rows = rows / 2;
    let gather = |idx: &[usize]| -> Vec<f32> {
        let mut idx = idx.to_vec();
        idx.sort_unstable();
        idx.iter()
            .flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied())
            .collect()
    };
    let fit_data = gather(&order[..fit_rows]);
    let projection = pca::Pca::fit(&fit_data, fit_rows, dim, options.components, options.seed);
    let kept = gather(&order[fit_rows..]);
    (projection, rows - fit_rows, kept)
}

/// BBSD's inputs must be probabilities.
fn check_probabilities(name: &'static str, rows: &Embeddings) -> Result<()> {
    match rows
        .as_slice()
        .iter()
        .position(|v| !(-1e-6..=1.0 + 1e-6).contains(v))
    {
        Some(at) => Err(Error::invalid(
            name,
            format!(
                "bbsd tests softmax outputs, but row {} column {} holds {}",
                at / rows.dim(),
                at % rows.dim(),
                rows.as_slice()[at]
            ),
        )),
        None => Ok(()),
    }
}

/// The columns of a row-major matrix of width `width`.
fn columns(data: &[f32], width: usize) -> Vec<Vec<f32>> {
    (0..width)
        .map(|j| data.iter().skip(j).step_by(width).copied().collect())
        .collect()
}

fn sorted(mut values: Vec<f32>) -> Vec<f32> {
    values.sort_by(f32::total_cmp);
    values
}

fn mean_and_std(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt().max(1e-12))
}

fn standardise(data: &[f32], scale: &[(f64, f64)]) -> Vec<f64> {
    data.chunks(scale.len())
        .flat_map(|row| {
            row.iter()
                .zip(scale)
                .map(|(&v, (mean, std))| (f64::from(v) - mean) / std)
        })
        .collect()
}

#[cfg(test)]
mod tests;
