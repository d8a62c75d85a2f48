//! What a live stream needs to watch for a shift: the model's reference sample (stored in its
//! package) and a sliding window checked every few rows.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{DriftDetector, DriftOptions, DriftResult, Method};
use crate::error::{Error, Result};
use crate::select::Embeddings;

const MAGIC: &[u8; 8] = b"MLOPSREF";
const VERSION: u32 = 1;

/// A seeded subsample of a model's training rows: backbone features, softmax outputs and
/// predicted classes, what live windows are compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceSample {
    features: Embeddings,
    probabilities: Embeddings,
    predicted: Vec<u32>,
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
        })
    }

    /// At most `rows` of `features` / `probabilities` chosen with `seed` (kept in order).
    pub fn subsample(
        features: &[f32],
        probabilities: &[f32],
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
        Self::new(
            Embeddings::named("reference", pick(features, dim), dim)?,
            Embeddings::named("reference", pick(probabilities, classes), classes)?,
        )
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.predicted.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.predicted.is_empty()
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

    /// The sample as bytes: a header (magic, version, rows, feature width, classes), then
    /// little-endian f32 features and probabilities.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            24 + 4 * (self.features.as_slice().len() + self.probabilities.as_slice().len()),
        );
        out.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            self.len() as u32,
            self.features.dim() as u32,
            self.probabilities.dim() as u32,
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
        out
    }

    /// Reads [`ReferenceSample::to_bytes`]'s format.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: &str| Error::invalid("reference", reason.to_string());
        if bytes.len() < 24 || &bytes[..8] != MAGIC {
            return Err(bad("not a reference sample (bad header)"));
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if word(8) != VERSION {
            return Err(bad("reference sample of an unknown version"));
        }
        let (rows, dim, classes) = (word(12) as usize, word(16) as usize, word(20) as usize);
        // Checked all the way: a header whose sizes overflow must not wrap to the real length.
        let body = dim
            .checked_add(classes)
            .and_then(|width| rows.checked_mul(width))
            .and_then(|values| values.checked_mul(4))
            .ok_or_else(|| bad("reference sample header overflows"))?;
        if bytes.len() - 24 != body || dim == 0 || classes == 0 {
            return Err(bad("reference sample has the wrong length for its header"));
        }
        let floats: Vec<f32> = bytes[24..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (features, probabilities) = floats.split_at(rows * dim);
        Self::new(
            Embeddings::named("reference", features.to_vec(), dim)?,
            Embeddings::named("reference", probabilities.to_vec(), classes)?,
        )
    }
}

fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as u32)
}

/// How a stream watches for a shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorConfig {
    /// Rows in the sliding window.
    pub window: usize,
    /// A check every this many rows (once the window is full).
    pub every: usize,
    /// Compare each window row only with reference rows of its predicted class (`mmd` only):
    /// streams that deliver rows class by class then do not alarm.
    pub by_class: bool,
    /// An alarm needs this many checks in a row with a p-value below alpha: a stream runs
    /// a test every `every` rows, so single false positives would otherwise add up.
    pub consecutive: usize,
    /// The test and its settings (`bbsd` tests the softmax outputs, the others the features).
    pub options: DriftOptions,
}

impl Default for MonitorConfig {
    /// A 50-row window checked every 25 rows with the class-conditional MMD test at alpha
    /// 0.01; an alarm after two checks in a row below it.
    fn default() -> Self {
        MonitorConfig {
            window: 50,
            every: 25,
            by_class: true,
            consecutive: 2,
            options: DriftOptions {
                alpha: 0.01,
                ..DriftOptions::new(Method::Mmd)
            },
        }
    }
}

/// One check of the window: the ids of its first and last rows and the test's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftCheck {
    /// Id of the window's first row.
    pub first_id: i64,
    /// Id of its last row.
    pub last_id: i64,
    /// The result.
    pub result: DriftResult,
    /// Whether this check raises an alarm: its p-value and those of the
    /// `consecutive - 1` checks before it are below alpha.
    pub alarm: bool,
}

/// A sliding window over live rows, checked against a reference every few rows.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    config: MonitorConfig,
    /// Shared: cloning a monitor (to try a batch before it commits) copies only the window.
    detector: Arc<DriftDetector>,
    rows: VecDeque<(i64, Vec<f32>, u32)>,
    since_check: usize,
    /// Checks in a row so far with a p-value below alpha.
    below: usize,
    /// The reference's predicted classes when windows are compared within classes.
    reference_classes: Option<BTreeSet<u32>>,
}

impl DriftMonitor {
    /// Fits the reference once.
    pub fn new(reference: &ReferenceSample, config: MonitorConfig) -> Result<Self> {
        if config.window < 2 {
            return Err(Error::invalid("window", "must be at least 2 rows"));
        }
        if config.every == 0 {
            return Err(Error::invalid("every", "must be at least 1 row"));
        }
        if config.consecutive == 0 {
            return Err(Error::invalid("consecutive", "must be at least 1 check"));
        }
        let by_class = config.by_class && config.options.method == Method::Mmd;
        let rows = if config.options.method == Method::Bbsd {
            reference.probabilities()
        } else {
            reference.features()
        };
        let detector = if by_class {
            DriftDetector::fit_with_labels(rows, reference.predicted(), config.options.clone())?
        } else {
            DriftDetector::fit(rows, config.options.clone())?
        };
        let reference_classes = by_class.then(|| reference.predicted().iter().copied().collect());
        Ok(DriftMonitor {
            config,
            detector: Arc::new(detector),
            rows: VecDeque::new(),
            since_check: 0,
            below: 0,
            reference_classes,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Adds one predicted row (`features` and `probabilities` as the reference's); returns a
    /// check when one is due.
    pub fn push(
        &mut self,
        id: i64,
        features: &[f32],
        probabilities: &[f32],
    ) -> Result<Option<DriftCheck>> {
        let values = if self.config.options.method == Method::Bbsd {
            probabilities
        } else {
            features
        };
        if values.len() != self.detector.dim() {
            return Err(Error::invalid(
                "monitor",
                format!(
                    "row {id} has width {}, the reference {}",
                    values.len(),
                    self.detector.dim()
                ),
            ));
        }
        self.rows
            .push_back((id, values.to_vec(), argmax(probabilities)));
        if self.rows.len() > self.config.window {
            self.rows.pop_front();
        }
        self.since_check += 1;
        if self.rows.len() < self.config.window || self.since_check < self.config.every {
            return Ok(None);
        }
        self.since_check = 0;
        let data: Vec<f32> = self.rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        let window = Embeddings::named("window", data, self.detector.dim())?;
        let result = match &self.reference_classes {
            Some(classes) => {
                let labels: Vec<u32> = self.rows.iter().map(|r| r.2).collect();
                // A window whose every class is missing from the reference cannot be compared.
                if !labels.iter().any(|l| classes.contains(l)) {
                    return Ok(None);
                }
                self.detector.check_with_labels(&window, &labels)?
            }
            None => self.detector.check(&window)?,
        };
        self.below = if result.drift { self.below + 1 } else { 0 };
        Ok(Some(DriftCheck {
            first_id: self.rows.front().map_or(id, |r| r.0),
            last_id: id,
            alarm: self.below >= self.config.consecutive,
            result,
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
            .flat_map(|i| if i % 2 == 0 { [0.8, 0.2] } else { [0.3, 0.7] })
            .collect();
        ReferenceSample::new(
            Embeddings::new(features, 4).unwrap(),
            Embeddings::new(probabilities, 2).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn bytes_round_trip_and_bad_bytes_are_refused() {
        let s = sample(30, 0.0);
        assert_eq!(ReferenceSample::from_bytes(&s.to_bytes()).unwrap(), s);
        assert_eq!(s.predicted()[..2], [0, 1]);
        let bytes = s.to_bytes();
        assert!(ReferenceSample::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(ReferenceSample::from_bytes(b"not a sample at all, no").is_err());
    }

    #[test]
    fn subsample_is_seeded_and_bounded() {
        let s = sample(100, 0.0);
        let a = ReferenceSample::subsample(
            s.features().as_slice(),
            s.probabilities().as_slice(),
            4,
            2,
            40,
            1,
        )
        .unwrap();
        let b = ReferenceSample::subsample(
            s.features().as_slice(),
            s.probabilities().as_slice(),
            4,
            2,
            40,
            1,
        )
        .unwrap();
        assert_eq!(a.len(), 40);
        assert_eq!(a, b);
    }

    #[test]
    fn monitor_checks_every_k_rows_once_the_window_is_full() {
        let reference = sample(200, 0.0);
        let config = MonitorConfig {
            window: 20,
            every: 10,
            ..MonitorConfig::default()
        };
        let mut monitor = DriftMonitor::new(&reference, config).unwrap();
        let shifted = sample(60, 3.0);
        let mut checks = Vec::new();
        for i in 0..60 {
            let f = shifted.features().row(i);
            let p = shifted.probabilities().row(i);
            if let Some(c) = monitor.push(i as i64 + 100, f, p).unwrap() {
                checks.push(c);
            }
        }
        let spans: Vec<(i64, i64)> = checks.iter().map(|c| (c.first_id, c.last_id)).collect();
        assert_eq!(
            spans,
            [(100, 119), (110, 129), (120, 139), (130, 149), (140, 159)]
        );
        assert!(checks.iter().all(|c| c.result.drift));
        // Two checks below alpha make the first alarm.
        let alarms: Vec<bool> = checks.iter().map(|c| c.alarm).collect();
        assert_eq!(alarms, [false, true, true, true, true]);
        assert!(monitor.push(1, &[0.0; 3], &[0.5, 0.5]).is_err());
    }
}
