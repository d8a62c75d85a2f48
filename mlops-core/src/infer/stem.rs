//! The stem: a KxK strided convolution of the planar (CHW) input image, computed as im2col
//! (one row of `channels * K * K` values per output pixel, zeros where SAME padding falls)
//! followed by the pointwise matrix product with ReLU6.

use rayon::prelude::*;

use super::depthwise::same_padding;
use super::pointwise::{Activation, PackedWeights, pointwise};

/// A dense KxK convolution from a CHW image to NHWC, BatchNorm folded.
#[derive(Debug, Clone)]
pub(crate) struct StemConv {
    channels: usize,
    kernel: usize,
    stride: usize,
    weights: PackedWeights,
}

impl StemConv {
    /// From a `[out, channels, kernel, kernel]` weight and its bias.
    pub(crate) fn new(
        weights: &[f32],
        bias: &[f32],
        outputs: usize,
        channels: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        StemConv {
            channels,
            kernel,
            stride,
            weights: PackedWeights::new(weights, bias, outputs, channels * kernel * kernel),
        }
    }

    /// Output height and width.
    pub(crate) fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        (
            same_padding(height, self.kernel, self.stride).0,
            same_padding(width, self.kernel, self.stride).0,
        )
    }

    /// Values per output pixel's patch (`channels * kernel * kernel`).
    pub(crate) fn patch(&self) -> usize {
        self.weights.inputs()
    }

    /// Output channels.
    pub(crate) fn outputs(&self) -> usize {
        self.weights.outputs()
    }

    /// Floats of im2col scratch for an input of `height x width`.
    pub(crate) fn scratch_len(&self, height: usize, width: usize) -> usize {
        let (oh, ow) = self.output_size(height, width);
        oh * ow * self.weights.inputs()
    }

    /// `out = relu6(conv(image) + bias)`; `image` is `channels x height x width`, `out` is
    /// `oh x ow x outputs`, `scratch` holds [`Self::scratch_len`] floats.
    pub(crate) fn forward(
        &self,
        image: &[f32],
        height: usize,
        width: usize,
        scratch: &mut [f32],
        out: &mut [f32],
        threads: usize,
    ) {
        let (oh, ow) = self.output_size(height, width);
        let patch = self.weights.inputs();
        let row = ow * patch;
        let per_thread = oh.div_ceil(threads.max(1));
        if threads <= 1 || per_thread >= oh {
            self.im2col(image, height, width, 0, scratch);
        } else {
            scratch
                .par_chunks_mut(per_thread * row)
                .enumerate()
                .for_each(|(i, rows)| self.im2col(image, height, width, i * per_thread, rows));
        }
        pointwise(
            scratch,
            &self.weights,
            None,
            out,
            Activation::Relu6,
            threads,
        );
    }

    /// The im2col rows of output rows `first_row..` (as many as `cols` holds).
    fn im2col(
        &self,
        image: &[f32],
        height: usize,
        width: usize,
        first_row: usize,
        cols: &mut [f32],
    ) {
        let (k, s) = (self.kernel, self.stride);
        let (_, pad_top) = same_padding(height, k, s);
        let (ow, pad_left) = same_padding(width, k, s);
        let patch = self.channels * k * k;
        let plane = height * width;
        for (r, row) in cols.chunks_exact_mut(ow * patch).enumerate() {
            let oy = first_row + r;
            for (ox, values) in row.chunks_exact_mut(patch).enumerate() {
                let mut i = 0;
                for ch in 0..self.channels {
                    for dy in 0..k {
                        let iy = (oy * s + dy).wrapping_sub(pad_top);
                        for dx in 0..k {
                            let ix = (ox * s + dx).wrapping_sub(pad_left);
                            values[i] = if iy < height && ix < width {
                                image[ch * plane + iy * width + ix]
                            } else {
                                0.0
                            };
                            i += 1;
                        }
                    }
                }
            }
        }
    }
}
