//! Evaluation: loss, accuracy, confusion matrix and per-class accuracy.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Evaluation of a model on a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy (`NaN` for an empty set).
    #[serde(with = "crate::json_float")]
    pub loss: f64,
    /// Fraction of correct predictions (`NaN` for an empty set).
    #[serde(with = "crate::json_float")]
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Accuracy per true class (`NaN` for a class with no sample).
    #[serde(with = "crate::json_float::vec")]
    pub per_class_accuracy: Vec<f64>,
    /// Predicted class per evaluated sample, in order.
    pub predictions: Vec<u32>,
}

pub(crate) fn targets_tensor(targets: &[u32], device: &Device) -> Tensor<1, Int> {
    let ints: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(ints, [targets.len()]), device)
}

/// Evaluates logits `[n, classes]` against targets.
pub fn evaluate_logits(logits: Tensor<2>, targets: &[u32], classes: usize) -> Result<Evaluation> {
    let device = logits.device();
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), targets_tensor(targets, &device));
    let loss: f64 = loss.into_scalar::<f32>().elem();
    let predictions: Vec<i64> = logits
        .argmax(1)
        .into_data()
        .try_to_vec_as::<i64>()
        .map_err(|e| Error::internal("predictions", e))?;
    let predictions: Vec<u32> = predictions.into_iter().map(|p| p as u32).collect();
    Ok(score(&predictions, targets, classes, loss))
}

/// Accuracy, confusion matrix and per-class accuracy of predictions.
pub fn score(predictions: &[u32], targets: &[u32], classes: usize, loss: f64) -> Evaluation {
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (&p, &t) in predictions.iter().zip(targets) {
        if (t as usize) < classes && (p as usize) < classes {
            confusion[t as usize][p as usize] += 1;
        }
    }
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: u64 = row.iter().sum();
            if n == 0 {
                f64::NAN
            } else {
                row[c] as f64 / n as f64
            }
        })
        .collect();
    Evaluation {
        loss,
        accuracy: if targets.is_empty() {
            f64::NAN
        } else {
            correct as f64 / targets.len() as f64
        },
        confusion,
        per_class_accuracy,
        predictions: predictions.to_vec(),
    }
}

pub(crate) fn features_tensor(features: &[f32], rows: usize, device: &Device) -> Tensor<2> {
    let width = features.len().checked_div(rows).unwrap_or(0);
    Tensor::from_data(TensorData::new(features.to_vec(), [rows, width]), device)
}

/// Evaluates a linear head on feature rows.
pub fn evaluate_head(
    head: &burn::nn::Linear,
    features: &[f32],
    targets: &[u32],
    classes: usize,
    device: &Device,
) -> Result<Evaluation> {
    if targets.is_empty() {
        return Ok(score(&[], &[], classes, f64::NAN));
    }
    let head = head.valid();
    let logits = head.forward(features_tensor(features, targets.len(), device));
    evaluate_logits(logits, targets, classes)
}

/// Softmax probabilities `[n, classes]` of logits, as rows.
pub fn probabilities(logits: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [n, c] = logits.dims();
    let flat: Vec<f32> = softmax(logits, 1)
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| Error::internal("probabilities", e))?;
    Ok((0..n).map(|i| flat[i * c..(i + 1) * c].to_vec()).collect())
}
