//! BatchNorm folded into the convolution before it, when weights load.
//!
//! In inference mode `bn(conv(x)) = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`, which is
//! a convolution with every output channel's weights scaled by `gamma / sqrt(var + eps)` and a
//! bias `beta - mean * gamma / sqrt(var + eps)`: exact, and one pass instead of five.

use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::error::{Error, Result};

/// A convolution with its BatchNorm folded in.
#[derive(Debug, Clone)]
pub(crate) struct FoldedConv {
    /// `[out, in / groups, kh, kw]`, row-major.
    pub(crate) weights: Vec<f32>,
    /// `[out]`.
    pub(crate) bias: Vec<f32>,
    /// `[out, in / groups, kh, kw]`.
    pub(crate) shape: [usize; 4],
    /// Stride (equal along both axes).
    pub(crate) stride: usize,
}

fn values<const D: usize>(tensor: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| Error::internal("weight folding", format!("{what}: {e:?}")))
}

fn param<const D: usize>(p: &Param<Tensor<D>>, what: &str) -> Result<Vec<f32>> {
    values(p.val(), what)
}

/// Folds `bn` into `conv`.
pub(crate) fn fold(conv: &Conv2d, bn: &BatchNorm, what: &str) -> Result<FoldedConv> {
    let shape = conv.weight.dims();
    let mut weights = param(&conv.weight, what)?;
    let gamma = param(&bn.gamma, what)?;
    let beta = param(&bn.beta, what)?;
    let mean = values(bn.running_mean.value(), what)?;
    let var = values(bn.running_var.value(), what)?;
    let conv_bias = match &conv.bias {
        Some(b) => param(b, what)?,
        None => vec![0.0; shape[0]],
    };
    let out = shape[0];
    if [
        gamma.len(),
        beta.len(),
        mean.len(),
        var.len(),
        conv_bias.len(),
    ]
    .iter()
    .any(|&n| n != out)
    {
        return Err(Error::invalid(
            "backbone",
            format!("{what}: BatchNorm width does not match the {out} output channels"),
        ));
    }
    if conv.stride[0] != conv.stride[1] || conv.dilation != [1, 1] {
        return Err(Error::invalid(
            "backbone",
            format!("{what}: only equal strides and no dilation are supported"),
        ));
    }
    let per_output = weights.len() / out.max(1);
    let mut bias = Vec::with_capacity(out);
    for o in 0..out {
        let scale = f64::from(gamma[o]) / (f64::from(var[o]) + bn.epsilon).sqrt();
        for w in &mut weights[o * per_output..(o + 1) * per_output] {
            *w = (f64::from(*w) * scale) as f32;
        }
        bias.push(
            (f64::from(beta[o]) + (f64::from(conv_bias[o]) - f64::from(mean[o])) * scale) as f32,
        );
    }
    Ok(FoldedConv {
        weights,
        bias,
        shape,
        stride: conv.stride[0],
    })
}
