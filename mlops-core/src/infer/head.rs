//! A linear classifier head as plain numbers, for prediction on the fast path: the head of a
//! Burn [`Linear`](burn::nn::Linear) read once, applied to feature rows with a softmax.

use burn::prelude::*;

use crate::error::{Error, Result};

/// A linear head's parameters as plain numbers: `logits = features * weight + bias`.
#[derive(Debug, Clone)]
pub(crate) struct LinearHead {
    /// `[inputs, outputs]`, row-major (Burn's layout).
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl LinearHead {
    pub(crate) fn new(linear: &burn::nn::Linear) -> Result<Self> {
        let [inputs, outputs] = linear.weight.dims();
        let values = |t: Tensor<1>| {
            t.into_data()
                .try_to_vec_as::<f32>()
                .map_err(|e| Error::internal("head weights", e))
        };
        let weight = values(linear.weight.val().reshape([inputs * outputs]))?;
        let bias = match &linear.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; outputs],
        };
        Ok(LinearHead {
            weight,
            bias,
            inputs,
            outputs,
        })
    }

    /// Input width (the backbone's features).
    pub(crate) fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output width (the classes).
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// Softmax probabilities of one feature row.
    pub(crate) fn probabilities(&self, features: &[f32]) -> Vec<f32> {
        let mut logits = self.bias.clone();
        for (&x, row) in features.iter().zip(self.weight.chunks_exact(self.outputs)) {
            for (l, &w) in logits.iter_mut().zip(row) {
                *l += x * w;
            }
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for l in &mut logits {
            *l = (*l - max).exp();
            sum += *l;
        }
        for l in &mut logits {
            *l /= sum;
        }
        logits
    }
}

/// Softmax probabilities of row-major feature rows.
pub(crate) fn head_probabilities(head: &LinearHead, features: &[f32]) -> Vec<f32> {
    features
        .chunks_exact(head.inputs)
        .flat_map(|row| head.probabilities(row))
        .collect()
}
