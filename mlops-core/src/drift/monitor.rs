//! What a live stream needs to watch for a shift: the model's reference sample (stored in its
//! package, with the monitor's calibration) and an online detector fed one row at a time.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::accuracy::{AccuracyEstimator, ConfidenceScore};
use super::mmd::row_norms;
use super::online::{CusumCalibration, NoveltyScorer, NullLaw, conformal_rank, normal_score};
use crate::error::{Error, Result};
use crate::select::Embeddings;

const MAGIC: &[u8; 8] = b"MLOPSREF";
/// Version 1: features and probabilities. Version 2 adds the true classes (optional) and the
/// monitor's calibration (optional JSON).
const VERSION: u32 = 2;

/// Rows a package's reference keeps by default, and the fewest the monitor's documentation
/// recommends: the accuracy estimate's own error on `m` reference rows is about
/// `sqrt(a (1 - a) / m)` (1.3 points at 80% accuracy and 1000 rows, 2.8 at 200), and the
/// detector ranks a row among its class's rows (at least 40 per class for 5 classes and 200
/// rows; fewer make the ranks coarse and the detector slower to notice a shift).
pub const RECOMMENDED_REFERENCE_ROWS: usize = 1000;

/// A seeded subsample of a model's held-out rows: backbone features, softmax outputs,
/// predicted classes, their true classes when known, and the drift monitor's calibration.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceSample {
    features: Embeddings,
    probabilities: Embeddings,
    predicted: Vec<u32>,
    targets: Option<Vec<u32>>,
    calibration: Option<MonitorCalibration>,
}

impl ReferenceSample {
    /// A sample from matching rows (`features` N x D, `probabilities` N x C).
    pub fn new(features: Embeddings, probabilities: Embeddings) -> Result<Self> {
        if features.len() != probabilities.len() {
            return Err(Error::invalid(
                "reference",
                format!(
                    "{} feature rows but {} probability rows",
                    features.len(),
                    probabilities.len()
                ),
            ));
        }
        let predicted = (0..probabilities.len())
            .map(|i| argmax(probabilities.row(i)))
            .collect();
        Ok(ReferenceSample {
            features,
            probabilities,
            predicted,
            targets: None,
            calibration: None,
        })
    }

    /// This sample with the true class of each row (what the accuracy estimate is fitted on).
    pub fn with_targets(mut self, targets: Vec<u32>) -> Result<Self> {
        if targets.len() != self.len() {
            return Err(Error::invalid(
                "reference_targets",
                format!("{} targets for {} rows", targets.len(), self.len()),
            ));
        }
        if let Some(bad) = targets.iter().find(|&&t| t as usize >= self.classes()) {
            return Err(Error::invalid(
                "reference_targets",
                format!("class {bad} is not one of the {} classes", self.classes()),
            ));
        }
        self.targets = Some(targets);
        Ok(self)
    }

    /// This sample with the monitor's calibration for `config` fitted and kept (stored in the
    /// package with the rows).
    pub fn calibrated(self, config: &MonitorConfig) -> Result<Self> {
        let calibration = MonitorCalibration::fit(&self, config)?;
        self.with_calibration(calibration)
    }

    /// This sample with a calibration fitted on it ([`MonitorCalibration::fit`]); one of other
    /// rows is refused.
    pub fn with_calibration(mut self, calibration: MonitorCalibration) -> Result<Self> {
        calibration.check_fits(&self)?;
        self.calibration = Some(calibration);
        Ok(self)
    }

    /// At most `rows` of `features` / `probabilities` (and `targets`, when given) chosen with
    /// `seed` (kept in order).
    pub fn subsample(
        features: &[f32],
        probabilities: &[f32],
        targets: Option<&[u32]>,
        dim: usize,
        classes: usize,
        rows: usize,
        seed: u64,
    ) -> Result<Self> {
        let total = features.len() / dim.max(1);
        let mut keep: Vec<usize> = if total > rows {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            sample(&mut rng, total, rows).into_vec()
        } else {
            (0..total).collect()
        };
        keep.sort_unstable();
        let pick = |data: &[f32], width: usize| -> Vec<f32> {
            keep.iter()
                .flat_map(|&i| data[i * width..(i + 1) * width].iter().copied())
                .collect()
        };
        let sample = Self::new(
            Embeddings::named("reference", pick(features, dim), dim)?,
            Embeddings::named("reference", pick(probabilities, classes), classes)?,
        )?;
        match targets {
            Some(targets) if targets.len() == total => {
                sample.with_targets(keep.iter().map(|&i| targets[i]).collect())
            }
            Some(targets) => Err(Error::invalid(
                "reference_targets",
                format!("{} targets for {total} rows", targets.len()),
            )),
            None => Ok(sample),
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.predicted.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.predicted.is_empty()
    }

    /// Classes (columns of the softmax outputs).
    pub fn classes(&self) -> usize {
        self.probabilities.dim()
    }

    /// Backbone features.
    pub fn features(&self) -> &Embeddings {
        &self.features
    }

    /// Softmax outputs.
    pub fn probabilities(&self) -> &Embeddings {
        &self.probabilities
    }

    /// Predicted class of each row.
    pub fn predicted(&self) -> &[u32] {
        &self.predicted
    }

    /// True class of each row, when known.
    pub fn targets(&self) -> Option<&[u32]> {
        self.targets.as_deref()
    }

    /// The monitor's stored calibration, when fitted.
    pub fn calibration(&self) -> Option<&MonitorCalibration> {
        self.calibration.as_ref()
    }

    /// The sample as bytes: a header (magic, version, rows, feature width, classes, whether
    /// targets follow), little-endian f32 features and probabilities, u32 targets, then the
    /// calibration's JSON after its u32 length (0: none).
    pub fn to_bytes(&self) -> Vec<u8> {
        let calibration = self
            .calibration
            .as_ref()
            .and_then(|c| serde_json::to_vec(c).ok())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(
            32 + 4 * (self.features.as_slice().len() + 2 * self.probabilities.as_slice().len())
                + calibration.len(),
        );
        out.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            self.len() as u32,
            self.features.dim() as u32,
            self.probabilities.dim() as u32,
            u32::from(self.targets.is_some()),
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in self
            .features
            .as_slice()
            .iter()
            .chain(self.probabilities.as_slice())
        {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for t in self.targets.iter().flatten() {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&(calibration.len() as u32).to_le_bytes());
        out.extend_from_slice(&calibration);
        out
    }

    /// Reads [`ReferenceSample::to_bytes`]'s format (and version 1's: no targets, no
    /// calibration).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("reference", reason.to_string());
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(bad("not a reference sample (bad header)"));
        }
        let word = |at: usize| -> Option<u32> {
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let version = word(8).unwrap_or(0);
        if version != 1 && version != VERSION {
            return Err(bad("reference sample of an unknown version"));
        }
        let (rows, dim, classes) = (
            word(12).unwrap_or(0) as usize,
            word(16).unwrap_or(0) as usize,
            word(20).unwrap_or(0) as usize,
        );
        let (header, has_targets) = match version {
            1 => (24, false),
            _ => match word(24) {
                Some(0) => (28, false),
                Some(1) => (28, true),
                _ => return Err(bad("reference sample has a bad targets flag")),
            },
        };
        // Checked all the way: a header whose sizes overflow must not wrap to the real length.
        let floats_end = dim
            .checked_add(classes)
            .and_then(|width| rows.checked_mul(width))
            .and_then(|values| values.checked_mul(4))
            .and_then(|b| b.checked_add(header))
            .ok_or_else(|| bad("reference sample header overflows"))?;
        let targets_end = if has_targets {
            rows.checked_mul(4).and_then(|b| b.checked_add(floats_end))
        } else {
            Some(floats_end)
        }
        .ok_or_else(|| bad("reference sample header overflows"))?;
        if dim == 0 || classes == 0 || bytes.len() < targets_end {
            return Err(bad("reference sample has the wrong length for its header"));
        }
        let calibration_bytes = if version == 1 {
            if bytes.len() != targets_end {
                return Err(bad("reference sample has the wrong length for its header"));
            }
            &[][..]
        } else {
            let length = word(targets_end).ok_or_else(|| bad("reference sample is cut short"))?;
            let start = targets_end + 4;
            if bytes.len() - start != length as usize {
                return Err(bad("reference sample has the wrong length for its header"));
            }
            &bytes[start..]
        };
        let floats: Vec<f32> = bytes[header..floats_end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (features, probabilities) = floats.split_at(rows * dim);
        let mut sample = Self::new(
            Embeddings::named("reference", features.to_vec(), dim)?,
            Embeddings::named("reference", probabilities.to_vec(), classes)?,
        )?;
        if has_targets {
            let targets = bytes[floats_end..targets_end]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            sample = sample.with_targets(targets)?;
        }
        if !calibration_bytes.is_empty() {
            let calibration: MonitorCalibration = serde_json::from_slice(calibration_bytes)
                .map_err(|e| bad(&format!("the monitor calibration does not read: {e}")))?;
            calibration.check_fits(&sample)?;
            sample.calibration = Some(calibration);
        }
        Ok(sample)
    }
}

fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as u32)
}

/// How a stream watches for a shift: an online detector (a CUSUM over per-row novelty ranks,
/// see [`super::online`]) whose false-alarm rate is a setting, and an estimate of the live
/// accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Expected rows between false alarms when nothing shifts (the ERT): the detector's
    /// threshold is calibrated for it.
    pub ert: f64,
    /// A check (a `cargo_drift` row) every this many rows, and whenever the alarm starts or
    /// ends.
    pub every: usize,
    /// The CUSUM's allowance: subtracted from each row's normal score, so it sets the smallest
    /// mean score shift the detector is tuned to (twice the allowance is noticed fastest).
    pub allowance: f64,
    /// Rows the accuracy estimate covers (the latest ones).
    pub accuracy_window: usize,
    /// The confidence score the accuracy estimate thresholds.
    pub accuracy_score: ConfidenceScore,
    /// Seed of the calibration's simulation.
    pub seed: u64,
}

impl Default for MonitorConfig {
    /// 10,000 rows between false alarms on average, a check every 25 rows, allowance 0.25,
    /// accuracy estimated over the latest 100 rows with ATC on negative entropy, seed 2022.
    fn default() -> Self {
        MonitorConfig {
            ert: 10_000.0,
            every: 25,
            allowance: 0.25,
            accuracy_window: 100,
            accuracy_score: ConfidenceScore::NegativeEntropy,
            seed: 2022,
        }
    }
}

impl MonitorConfig {
    fn validate(&self) -> Result<()> {
        if self.every == 0 {
            return Err(Error::invalid("every", "must be at least 1 row"));
        }
        if self.accuracy_window == 0 {
            return Err(Error::invalid("accuracy_window", "must be at least 1 row"));
        }
        Ok(())
    }
}

/// What the monitor fits on a reference, stored with it in the package: the per-row
/// novelty ranks, the CUSUM's threshold for a configured ERT and the accuracy estimator (when
/// the reference has true classes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorCalibration {
    /// Ranks of the reference's rows.
    pub scorer: NoveltyScorer,
    /// The CUSUM's calibration.
    pub cusum: CusumCalibration,
    /// The accuracy estimator (`None` when the reference has no true classes, or too few to
    /// fit one on: fewer than 2 rows or classes).
    pub accuracy: Option<AccuracyEstimator>,
}

impl MonitorCalibration {
    /// Fits everything for `config` on `reference` (at least 2 rows).
    pub fn fit(reference: &ReferenceSample, config: &MonitorConfig) -> Result<Self> {
        config.validate()?;
        if reference.len() < 2 {
            return Err(Error::invalid(
                "reference",
                format!("has {} rows; the monitor needs at least 2", reference.len()),
            ));
        }
        let finite = |rows: &Embeddings| rows.as_slice().iter().all(|v| v.is_finite());
        if !finite(reference.features()) || !finite(reference.probabilities()) {
            return Err(Error::invalid(
                "reference",
                "holds a value that is not a finite number",
            ));
        }
        let scorer = NoveltyScorer::fit(
            reference.features().as_slice(),
            reference.predicted(),
            reference.classes(),
        );
        let cusum = NullLaw::new(&scorer, reference.predicted()).calibrate(
            config.ert,
            config.allowance,
            config.seed,
        )?;
        // Without true classes, or with too few of them (one row, one class), no estimate.
        let accuracy = reference.targets().and_then(|targets| {
            AccuracyEstimator::fit(
                reference.probabilities().as_slice(),
                reference.classes(),
                targets,
                config.accuracy_score,
            )
            .ok()
        });
        Ok(MonitorCalibration {
            scorer,
            cusum,
            accuracy,
        })
    }

    /// This calibration for `config`: itself when it was fitted for the same settings, else
    /// refitted where they differ.
    fn for_config(&self, reference: &ReferenceSample, config: &MonitorConfig) -> Result<Self> {
        let cusum = if self.cusum.ert == config.ert
            && self.cusum.allowance == config.allowance
            && self.cusum.seed == config.seed
        {
            self.cusum.clone()
        } else {
            NullLaw::new(&self.scorer, reference.predicted()).calibrate(
                config.ert,
                config.allowance,
                config.seed,
            )?
        };
        let accuracy = match (&self.accuracy, reference.targets()) {
            (Some(a), _) if a.score == config.accuracy_score => Some(a.clone()),
            (_, Some(targets)) => AccuracyEstimator::fit(
                reference.probabilities().as_slice(),
                reference.classes(),
                targets,
                config.accuracy_score,
            )
            .ok(),
            (_, None) => None,
        };
        Ok(MonitorCalibration {
            scorer: self.scorer.clone(),
            cusum,
            accuracy,
        })
    }

    /// Whether a stored calibration describes `sample` (as many classes, and per class as
    /// many ranked rows as the sample predicts in it).
    fn check_fits(&self, sample: &ReferenceSample) -> Result<()> {
        let per_class_fits = self.scorer.classes.iter().enumerate().all(|(c, loo)| {
            loo.is_empty()
                || loo.len()
                    == sample
                        .predicted()
                        .iter()
                        .filter(|&&p| p as usize == c)
                        .count()
        });
        if self.scorer.classes.len() != sample.classes()
            || self.scorer.pooled.len() != sample.len()
            || !per_class_fits
        {
            return Err(Error::invalid(
                "reference",
                "the monitor calibration does not match the reference rows",
            ));
        }
        Ok(())
    }
}

/// One check: the rows behind the current evidence, the CUSUM, the alarm and the estimated
/// accuracy of the latest rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftCheck {
    /// Id of the first row since the CUSUM last stood at zero (where a shift most likely
    /// began), or of the checked row when it stands at zero.
    pub first_id: i64,
    /// Id of the checked row.
    pub last_id: i64,
    /// The detector: `cusum`.
    pub method: String,
    /// The CUSUM's value after the checked row.
    pub statistic: f64,
    /// Its threshold (calibrated for the configured ERT).
    pub threshold: f64,
    /// The fraction of rows of a stream without shift whose CUSUM is at least `statistic`
    /// (from the calibration's simulation).
    pub p_value: f64,
    /// Whether the CUSUM is above its threshold.
    pub alarm: bool,
    /// Rows from `first_id` to `last_id`.
    pub window_rows: usize,
    /// Estimated accuracy of the latest `accuracy_window` rows (ATC), `None` when the
    /// reference has no true classes.
    pub estimated_accuracy: Option<f64>,
}

/// The reference rows of one rank group, ready for per-row ranks.
#[derive(Debug)]
struct Group {
    members: Vec<usize>,
    normal_scores: Vec<f64>,
    /// Leave-one-out similarities of the members, in member order.
    loo: Vec<f32>,
}

/// What does not change while a stream runs.
#[derive(Debug)]
struct Fitted {
    features: Vec<f32>,
    norms: Vec<f32>,
    dim: usize,
    classes: usize,
    two_sigma_sq: f32,
    /// Per class id, its group (`None`: the pooled group).
    class_groups: Vec<Option<Group>>,
    pooled: Group,
    calibration: MonitorCalibration,
}

/// An online shift detector over live rows, fed one row at a time.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    config: MonitorConfig,
    /// Shared: cloning a monitor (to try a batch before it commits) copies only its state.
    fitted: Arc<Fitted>,
    cusum: f64,
    /// The first row of the CUSUM's current run above zero, and its rows.
    run: Option<(i64, usize)>,
    alarmed: bool,
    since_check: usize,
    /// Whether each of the latest rows scored above the accuracy threshold.
    recent: VecDeque<bool>,
}

impl DriftMonitor {
    /// The monitor of `reference` for `config`: its stored calibration when it matches the
    /// settings, else one fitted now.
    pub fn new(reference: &ReferenceSample, config: MonitorConfig) -> Result<Self> {
        config.validate()?;
        let calibration = match reference.calibration() {
            Some(stored) => stored.for_config(reference, &config)?,
            None => MonitorCalibration::fit(reference, &config)?,
        };
        let features = reference.features().as_slice().to_vec();
        let dim = reference.features().dim();
        let group = |members: Vec<usize>, loo: &[f32]| Group {
            normal_scores: (0..=loo.len())
                .map(|rank| normal_score(rank, loo.len()))
                .collect(),
            loo: loo.to_vec(),
            members,
        };
        let class_groups = (0..reference.classes() as u32)
            .map(|c| {
                calibration.scorer.within_class(c).then(|| {
                    let members = (0..reference.len())
                        .filter(|&i| reference.predicted()[i] == c)
                        .collect();
                    group(members, calibration.scorer.table(c))
                })
            })
            .collect();
        let pooled = group((0..reference.len()).collect(), &calibration.scorer.pooled);
        Ok(DriftMonitor {
            fitted: Arc::new(Fitted {
                norms: row_norms(&features, dim),
                features,
                dim,
                classes: reference.classes(),
                two_sigma_sq: calibration.scorer.two_sigma_sq,
                class_groups,
                pooled,
                calibration,
            }),
            config,
            cusum: 0.0,
            run: None,
            alarmed: false,
            since_check: 0,
            recent: VecDeque::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// The calibration in use.
    pub fn calibration(&self) -> &MonitorCalibration {
        &self.fitted.calibration
    }

    /// The CUSUM's threshold.
    pub fn threshold(&self) -> f64 {
        self.fitted.calibration.cusum.threshold
    }

    /// A row's normal score (how much less like its class's reference rows it is than they
    /// are among themselves; about standard normal when nothing shifted).
    pub fn score(&self, features: &[f32], predicted: u32) -> f64 {
        let fitted = &self.fitted;
        let group = fitted
            .class_groups
            .get(predicted as usize)
            .and_then(Option::as_ref)
            .unwrap_or(&fitted.pooled);
        let norm: f32 = features.iter().map(|v| v * v).sum();
        let rank = conformal_rank(
            features,
            norm,
            &fitted.features,
            &fitted.norms,
            &group.members,
            &group.loo,
            fitted.two_sigma_sq,
        );
        group.normal_scores[rank.min(group.loo.len())]
    }

    /// Adds one predicted row (`features` and `probabilities` as the reference's); returns a
    /// check every `every` rows and when the alarm starts or ends.
    pub fn push(
        &mut self,
        id: i64,
        features: &[f32],
        probabilities: &[f32],
    ) -> Result<Option<DriftCheck>> {
        let fitted = Arc::clone(&self.fitted);
        if features.len() != fitted.dim || probabilities.len() != fitted.classes {
            return Err(Error::invalid(
                "monitor",
                format!(
                    "row {id} has {} features and {} probabilities, the reference {} and {}",
                    features.len(),
                    probabilities.len(),
                    fitted.dim,
                    fitted.classes
                ),
            ));
        }
        let z = self.score(features, argmax(probabilities));
        let cusum = &fitted.calibration.cusum;
        self.cusum = (self.cusum + z - cusum.allowance).max(0.0);
        self.run = match self.run {
            _ if self.cusum == 0.0 => None,
            Some((first, rows)) => Some((first, rows + 1)),
            None => Some((id, 1)),
        };
        if let Some(estimator) = &fitted.calibration.accuracy {
            self.recent.push_back(estimator.confident(probabilities));
            if self.recent.len() > self.config.accuracy_window {
                self.recent.pop_front();
            }
        }
        let alarm = self.cusum > cusum.threshold;
        self.since_check += 1;
        if self.since_check < self.config.every && alarm == self.alarmed {
            return Ok(None);
        }
        self.since_check = 0;
        self.alarmed = alarm;
        let (first_id, window_rows) = self.run.unwrap_or((id, 1));
        let estimated_accuracy = (!self.recent.is_empty())
            .then(|| self.recent.iter().filter(|&&c| c).count() as f64 / self.recent.len() as f64);
        Ok(Some(DriftCheck {
            first_id,
            last_id: id,
            method: "cusum".into(),
            statistic: self.cusum,
            threshold: cusum.threshold,
            p_value: cusum.p_value(self.cusum),
            alarm,
            window_rows,
            // Rows are only recorded when the reference has an accuracy estimator.
            estimated_accuracy,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rows: usize, offset: f32) -> ReferenceSample {
        let features: Vec<f32> = (0..rows * 4)
            .map(|i| ((i * 7919) % 97) as f32 / 97.0 + offset)
            .collect();
        let probabilities: Vec<f32> = (0..rows)
            .flat_map(|i| {
                let c = 0.6 + 0.35 * ((i * 37) % 100) as f32 / 100.0;
                if i % 2 == 0 {
                    [c, 1.0 - c]
                } else {
                    [1.0 - c, c]
                }
            })
            .collect();
        ReferenceSample::new(
            Embeddings::new(features, 4).unwrap(),
            Embeddings::new(probabilities, 2).unwrap(),
        )
        .unwrap()
    }

    fn targets(rows: usize) -> Vec<u32> {
        (0..rows)
            .map(|i| u32::from(i % 2 == 1 || i % 10 == 0))
            .collect()
    }

    #[test]
    fn bytes_round_trip_and_bad_bytes_are_refused() {
        let s = sample(30, 0.0);
        assert_eq!(ReferenceSample::from_bytes(&s.to_bytes()).unwrap(), s);
        let full = sample(30, 0.0)
            .with_targets(targets(30))
            .unwrap()
            .calibrated(&MonitorConfig {
                ert: 500.0,
                ..MonitorConfig::default()
            })
            .unwrap();
        let read = ReferenceSample::from_bytes(&full.to_bytes()).unwrap();
        assert_eq!(read, full);
        assert!(read.calibration().unwrap().accuracy.is_some());
        assert_eq!(s.predicted()[..2], [0, 1]);
        for bytes in [s.to_bytes(), full.to_bytes()] {
            assert!(ReferenceSample::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        }
        assert!(ReferenceSample::from_bytes(b"not a sample at all, no").is_err());
        // A calibration of other rows is refused.
        let small = sample(20, 0.0)
            .calibrated(&MonitorConfig::default())
            .unwrap();
        let mut mixed = s.to_bytes();
        let json = serde_json::to_vec(small.calibration().unwrap()).unwrap();
        mixed.truncate(mixed.len() - 4);
        mixed.extend_from_slice(&(json.len() as u32).to_le_bytes());
        mixed.extend_from_slice(&json);
        assert!(ReferenceSample::from_bytes(&mixed).is_err());
    }

    #[test]
    fn version_one_bytes_still_read() {
        let s = sample(12, 0.0);
        let bytes = s.to_bytes();
        // Version 1: the 24-byte header, the floats, nothing after.
        let mut old = bytes[..24].to_vec();
        old[8..12].copy_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&bytes[28..bytes.len() - 4]);
        assert_eq!(ReferenceSample::from_bytes(&old).unwrap(), s);
    }

    #[test]
    fn subsample_is_seeded_and_bounded() {
        let s = sample(100, 0.0);
        let t = targets(100);
        let draw = || {
            ReferenceSample::subsample(
                s.features().as_slice(),
                s.probabilities().as_slice(),
                Some(&t),
                4,
                2,
                40,
                1,
            )
            .unwrap()
        };
        let (a, b) = (draw(), draw());
        assert_eq!(a.len(), 40);
        assert_eq!(a.targets().unwrap().len(), 40);
        assert_eq!(a, b);
    }

    #[test]
    fn monitor_checks_every_k_rows_and_alarms_on_a_shift() {
        let reference = sample(200, 0.0).with_targets(targets(200)).unwrap();
        let config = MonitorConfig {
            every: 10,
            ert: 1000.0,
            ..MonitorConfig::default()
        };
        let mut monitor = DriftMonitor::new(&reference, config).unwrap();
        // Rows like the reference's own: no alarm over 100 rows.
        let same = sample(100, 0.0);
        let mut checks = Vec::new();
        for i in 0..100 {
            let f = same.features().row(i);
            let p = same.probabilities().row(i);
            checks.extend(monitor.push(i as i64, f, p).unwrap());
        }
        assert!(checks.iter().all(|c| !c.alarm));
        assert_eq!(checks.len(), 10);
        assert_eq!(checks[0].last_id, 9);
        let estimate = checks[9].estimated_accuracy.unwrap();
        assert!((estimate - 0.9).abs() < 0.15, "{estimate}");
        // Shifted rows: an alarm within a few rows, its first row at or after the shift.
        let shifted = sample(30, 3.0);
        let mut alarm = None;
        for i in 0..30 {
            let f = shifted.features().row(i);
            let p = shifted.probabilities().row(i);
            if let Some(c) = monitor.push(100 + i as i64, f, p).unwrap()
                && c.alarm
            {
                alarm = Some(c);
                break;
            }
        }
        let alarm = alarm.expect("the shift raises an alarm");
        assert!(alarm.last_id < 115, "alarm at {}", alarm.last_id);
        assert!(alarm.first_id >= 95 && alarm.p_value < 0.05, "{alarm:?}");
        assert!(monitor.push(1, &[0.0; 3], &[0.5, 0.5]).is_err());
    }
}
