//! Accuracy estimated without labels: average thresholded confidence (ATC, Garg et al.,
//! ICLR 2022) on temperature-scaled softmax outputs.
//!
//! Fitting, on held-out rows with their true classes (the package's reference): a temperature
//! `T` minimising the negative log-likelihood of `softmax(log p / T)` (temperature scaling,
//! Guo et al. 2017), then a threshold `t` on a confidence score such that the share of rows
//! scoring above `t` equals the rows' accuracy. On unlabelled rows, the estimated accuracy is
//! the share scoring above `t`. The score is the negative entropy of the calibrated
//! probabilities (ATC-NE, the variant Garg et al. found best) or their largest value.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which confidence ATC thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConfidenceScore {
    /// Negative entropy of the calibrated probabilities.
    #[default]
    NegativeEntropy,
    /// The largest calibrated probability.
    MaxProbability,
}

crate::names::named_enum!(ConfidenceScore, "score", {
    NegativeEntropy => "negative_entropy",
    MaxProbability => "max_probability",
});

/// A fitted accuracy estimator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyEstimator {
    /// The score thresholded.
    pub score: ConfidenceScore,
    /// The fitted temperature.
    pub temperature: f64,
    /// The score threshold.
    pub threshold: f64,
    /// Accuracy of the rows it was fitted on.
    pub reference_accuracy: f64,
    /// Rows it was fitted on.
    pub rows: usize,
}

impl AccuracyEstimator {
    /// Fits on softmax outputs (`targets.len()` rows of `classes` columns) and true classes.
    pub fn fit(
        probabilities: &[f32],
        classes: usize,
        targets: &[u32],
        score: ConfidenceScore,
    ) -> Result<Self> {
        let rows = targets.len();
        if rows < 2 || classes < 2 || probabilities.len() != rows * classes {
            return Err(Error::invalid(
                "reference",
                format!(
                    "an accuracy estimate needs at least 2 labelled rows of at least 2 classes \
                     ({rows} rows, {} values, {classes} classes)",
                    probabilities.len()
                ),
            ));
        }
        if let Some(bad) = targets.iter().find(|&&t| t as usize >= classes) {
            return Err(Error::invalid(
                "reference_targets",
                format!("class {bad} is not one of the {classes} classes"),
            ));
        }
        let logits: Vec<f64> = probabilities
            .iter()
            .map(|&p| f64::from(p.max(1e-12)).ln())
            .collect();
        let temperature = fit_temperature(&logits, classes, targets);
        let correct = logits
            .chunks(classes)
            .zip(targets)
            .filter(|(row, t)| argmax(row) == **t as usize)
            .count();
        let reference_accuracy = correct as f64 / rows as f64;
        let mut scores: Vec<f64> = logits
            .chunks(classes)
            .map(|row| confidence(row, temperature, score))
            .collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        // `correct` rows score above the threshold.
        let threshold = match correct {
            0 => scores[0] + 1e-9,
            k if k == rows => scores[rows - 1] - 1e-9,
            k => 0.5 * (scores[k - 1] + scores[k]),
        };
        Ok(AccuracyEstimator {
            score,
            temperature,
            threshold,
            reference_accuracy,
            rows,
        })
    }

    /// Whether one row (softmax outputs) scores above the threshold.
    pub fn confident(&self, probabilities: &[f32]) -> bool {
        let logits: Vec<f64> = probabilities
            .iter()
            .map(|&p| f64::from(p.max(1e-12)).ln())
            .collect();
        confidence(&logits, self.temperature, self.score) > self.threshold
    }

    /// The estimated accuracy of `rows` (softmax outputs of `classes` columns); `None` for no
    /// rows.
    pub fn estimate(&self, probabilities: &[f32], classes: usize) -> Option<f64> {
        let rows = probabilities.len() / classes.max(1);
        if rows == 0 {
            return None;
        }
        let above = probabilities
            .chunks(classes)
            .filter(|row| self.confident(row))
            .count();
        Some(above as f64 / rows as f64)
    }
}

/// The confidence score of one row of logits at `temperature`.
fn confidence(logits: &[f64], temperature: f64, score: ConfidenceScore) -> f64 {
    let probabilities = softmax(logits, temperature);
    match score {
        ConfidenceScore::MaxProbability => probabilities.iter().copied().fold(0.0, f64::max),
        ConfidenceScore::NegativeEntropy => probabilities
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| p * p.ln())
            .sum(),
    }
}

fn softmax(logits: &[f64], temperature: f64) -> Vec<f64> {
    let largest = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits
        .iter()
        .map(|&l| ((l - largest) / temperature).exp())
        .collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Mean negative log-likelihood of the true classes at `temperature`.
fn nll(logits: &[f64], classes: usize, targets: &[u32], temperature: f64) -> f64 {
    logits
        .chunks(classes)
        .zip(targets)
        .map(|(row, &t)| -softmax(row, temperature)[t as usize].max(1e-300).ln())
        .sum::<f64>()
        / targets.len() as f64
}

/// Golden-section search of the temperature on a log scale in [0.05, 20].
fn fit_temperature(logits: &[f64], classes: usize, targets: &[u32]) -> f64 {
    let f = |log_t: f64| nll(logits, classes, targets, log_t.exp());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let mut c = b - ratio * (b - a);
    let mut d = a + ratio * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - ratio * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + ratio * (b - a);
            fd = f(d);
        }
    }
    (0.5 * (a + b)).exp()
}

fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` rows the model gives class 0 with confidences spread below `confidence`; every
    /// `wrong_every`-th row is of class 1.
    fn rows(n: usize, confidence: f32, wrong_every: usize) -> (Vec<f32>, Vec<u32>) {
        let mut probabilities = Vec::new();
        let mut targets = Vec::new();
        for i in 0..n {
            let c = confidence - 0.3 * ((i * 37) % n) as f32 / n as f32;
            probabilities.extend([c, 1.0 - c]);
            targets.push(u32::from(i % wrong_every == 0));
        }
        (probabilities, targets)
    }

    #[test]
    fn reproduces_the_reference_accuracy_and_tracks_lower_confidence() {
        let (p, t) = rows(200, 0.95, 5);
        for score in [
            ConfidenceScore::NegativeEntropy,
            ConfidenceScore::MaxProbability,
        ] {
            let estimator = AccuracyEstimator::fit(&p, 2, &t, score).unwrap();
            assert!((estimator.reference_accuracy - 0.8).abs() < 1e-9);
            let own = estimator.estimate(&p, 2).unwrap();
            assert!((own - 0.8).abs() < 0.02, "{own}");
            // Less confident rows: a lower estimate.
            let (q, _) = rows(200, 0.75, 5);
            assert!(estimator.estimate(&q, 2).unwrap() < own - 0.2);
            assert!(estimator.temperature > 0.05 && estimator.temperature < 20.0);
        }
        assert!(AccuracyEstimator::fit(&p, 2, &t[..10], ConfidenceScore::default()).is_err());
        assert!(AccuracyEstimator::fit(&p[..4], 2, &[0, 7], ConfidenceScore::default()).is_err());
    }
}
