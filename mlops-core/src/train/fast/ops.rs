//! The training kernels of the fast path, on NHWC rows (`[pixels, channels]`, channels
//! contiguous): BatchNorm with batch statistics and its gradient (ReLU6's mask and the
//! residual folded into the same passes), depthwise convolution forward and backward
//! vectorised over channels, the stem's im2col, global pooling and the weight gradients of
//! 1x1 convolutions as matrix products.
//!
//! Every reduction runs over fixed chunks of rows whose partial results are combined in
//! order, so the results do not depend on how rayon schedules the chunks: same input, same
//! bytes (for a given CPU and thread count; gemm's blocking depends on both).

use rayon::prelude::*;

use crate::infer::depthwise::same_padding;
use crate::infer::simd::vectorized;
use crate::linalg::{View, gemm_into};

/// Values per parallel chunk of an elementwise pass or reduction.
const CHUNK_FLOATS: usize = 16 * 1024;

/// Rows of the inner dimension per partial product of a weight gradient: longer inner
/// dimensions are split in fixed chunks run in parallel and summed in order.
const SPLIT_ROWS: usize = 8192;

/// Rows per chunk for rows of `channels` values.
fn chunk_rows(channels: usize) -> usize {
    (CHUNK_FLOATS / channels.max(1)).max(1)
}

/// Rows per chunk of a per-channel reduction: at least 64, since merging the chunks' partial
/// results costs work per channel and chunk on one thread.
fn reduction_rows(channels: usize) -> usize {
    (4 * CHUNK_FLOATS / channels.max(1)).clamp(64, 4096)
}

/// Per-channel sums of `parts` (one `channels`-long vector per chunk) in chunk order, divided
/// by `count`.
fn combine(parts: &[Vec<f32>], channels: usize, count: usize) -> Vec<f32> {
    let mut total = vec![0f64; channels];
    for part in parts {
        for (t, &v) in total.iter_mut().zip(part) {
            *t += f64::from(v);
        }
    }
    let count = count.max(1) as f64;
    total.iter().map(|t| (t / count) as f32).collect()
}

/// Per-channel mean and biased variance of `x`'s rows of `channels` values, in two passes
/// as Burn computes them (the mean, then the mean of the centred squares): a one-pass
/// version (shifted sums merged pairwise) was 1.8x faster on the large early activations but
/// moved the gradients of a 10-image batch by 4e-4 against Burn's, where these stay at 2e-5.
pub(super) fn batch_statistics(x: &[f32], channels: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / channels.max(1);
    let chunk = reduction_rows(channels) * channels;
    let sums: Vec<Vec<f32>> = x
        .par_chunks(chunk)
        .map(|part| {
            vectorized(
                #[inline(always)]
                || column_sums(part, channels),
            )
        })
        .collect();
    let mean = combine(&sums, channels, rows);
    let squares: Vec<Vec<f32>> = x
        .par_chunks(chunk)
        .map(|part| {
            vectorized(
                #[inline(always)]
                || centred_squares(part, &mean),
            )
        })
        .collect();
    let variance = combine(&squares, channels, rows);
    (mean, variance)
}

#[inline(always)]
fn centred_squares(part: &[f32], mean: &[f32]) -> Vec<f32> {
    let mut sum = vec![0f32; mean.len()];
    for row in part.chunks_exact(mean.len()) {
        for ((s, &v), &m) in sum.iter_mut().zip(row).zip(mean) {
            let d = v - m;
            *s += d * d;
        }
    }
    sum
}

/// Per-channel sums of `part`'s rows of `channels` values.
#[inline(always)]
fn column_sums(part: &[f32], channels: usize) -> Vec<f32> {
    let mut sum = vec![0f32; channels];
    for row in part.chunks_exact(channels) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    sum
}

/// `act(x * scale + shift (+ residual))` per channel, with `act` ReLU6 or the identity.
pub(super) fn scale_shift(
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    relu6: bool,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let channels = scale.len();
    let chunk = chunk_rows(channels) * channels;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .enumerate()
        .for_each(|(i, (out, x))| {
            let residual = residual.map(|r| &r[i * chunk..i * chunk + x.len()]);
            vectorized(
                #[inline(always)]
                || scale_shift_part(out, x, scale, shift, relu6, residual),
            );
        });
    out
}

#[inline(always)]
fn scale_shift_part(
    out: &mut [f32],
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    relu6: bool,
    residual: Option<&[f32]>,
) {
    let channels = scale.len();
    for (o, x) in out.chunks_exact_mut(channels).zip(x.chunks_exact(channels)) {
        for (((o, &x), &a), &b) in o.iter_mut().zip(x).zip(scale).zip(shift) {
            *o = x * a + b;
        }
        if relu6 {
            for o in o.iter_mut() {
                *o = o.clamp(0.0, 6.0);
            }
        }
    }
    if let Some(r) = residual {
        for (o, &r) in out.iter_mut().zip(r) {
            *o += r;
        }
    }
}

/// The gradient through BatchNorm with batch statistics (and ReLU6 when `output` is given:
/// the mask `0 < output < 6`), in place: `grad` holds the gradient of the output and is
/// turned into that of the input `x`. Returns the gradients of gamma and beta.
pub(super) fn norm_backward(
    grad: &mut [f32],
    x: &[f32],
    output: Option<&[f32]>,
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let channels = mean.len();
    let rows = x.len() / channels;
    let chunk = reduction_rows(channels) * channels;
    let parts: Vec<(Vec<f32>, Vec<f32>)> = grad
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .enumerate()
        .map(|(i, (grad, x))| {
            let output = output.map(|o| &o[i * chunk..i * chunk + x.len()]);
            vectorized(
                #[inline(always)]
                || masked_sums(grad, x, output, mean, inv_std),
            )
        })
        .collect();
    let (sum_grad, sum_grad_normed): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    let mean_grad = combine(&sum_grad, channels, rows);
    let mean_grad_normed = combine(&sum_grad_normed, channels, rows);
    let beta_grad: Vec<f32> = mean_grad.iter().map(|m| m * rows as f32).collect();
    let gamma_grad: Vec<f32> = mean_grad_normed.iter().map(|m| m * rows as f32).collect();
    let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    grad.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(grad, x)| {
            vectorized(
                #[inline(always)]
                || {
                    norm_input_grad(
                        grad,
                        x,
                        mean,
                        inv_std,
                        &scale,
                        &mean_grad,
                        &mean_grad_normed,
                    )
                },
            );
        });
    (gamma_grad, beta_grad)
}

/// Applies ReLU6's mask to `grad` and returns the per-channel sums of the gradient and of the
/// gradient times the normalised input.
#[inline(always)]
fn masked_sums(
    grad: &mut [f32],
    x: &[f32],
    output: Option<&[f32]>,
    mean: &[f32],
    inv_std: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let channels = mean.len();
    if let Some(out) = output {
        for (g, &o) in grad.iter_mut().zip(out) {
            if !(o > 0.0 && o < 6.0) {
                *g = 0.0;
            }
        }
    }
    let mut sum = vec![0f32; channels];
    let mut sum_normed = vec![0f32; channels];
    for (g, x) in grad.chunks_exact(channels).zip(x.chunks_exact(channels)) {
        for ((((s, sn), &g), &x), (&m, &is)) in sum
            .iter_mut()
            .zip(sum_normed.iter_mut())
            .zip(g)
            .zip(x)
            .zip(mean.iter().zip(inv_std))
        {
            *s += g;
            *sn += g * ((x - m) * is);
        }
    }
    (sum, sum_normed)
}

#[inline(always)]
fn norm_input_grad(
    grad: &mut [f32],
    x: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    scale: &[f32],
    mean_grad: &[f32],
    mean_grad_normed: &[f32],
) {
    let channels = mean.len();
    for (g, x) in grad
        .chunks_exact_mut(channels)
        .zip(x.chunks_exact(channels))
    {
        for (c, (g, &x)) in g.iter_mut().zip(x).enumerate() {
            let normed = (x - mean[c]) * inv_std[c];
            *g = scale[c] * ((*g - mean_grad[c]) - normed * mean_grad_normed[c]);
        }
    }
}

/// `a + b` elementwise, into `a`.
pub(super) fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK_FLOATS)
        .zip(b.par_chunks(CHUNK_FLOATS))
        .for_each(|(a, b)| {
            vectorized(
                #[inline(always)]
                || {
                    for (a, &b) in a.iter_mut().zip(b) {
                        *a += b;
                    }
                },
            );
        });
}

/// The geometry of a depthwise convolution on `images` NHWC activations.
#[derive(Debug, Clone, Copy)]
pub(super) struct DepthwiseGeometry {
    pub images: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl DepthwiseGeometry {
    /// Output height and width (SAME padding).
    pub fn output(&self) -> [usize; 2] {
        [
            same_padding(self.height, self.kernel, self.stride).0,
            same_padding(self.width, self.kernel, self.stride).0,
        ]
    }

    fn padding(&self) -> [usize; 2] {
        [
            same_padding(self.height, self.kernel, self.stride).1,
            same_padding(self.width, self.kernel, self.stride).1,
        ]
    }

    /// The input pixel a tap of an output pixel reads along one axis, if inside.
    #[inline(always)]
    fn source(out: usize, tap: usize, stride: usize, pad: usize, size: usize) -> Option<usize> {
        (out * stride + tap).checked_sub(pad).filter(|&i| i < size)
    }
}

/// Depthwise convolution of NHWC `x` with `weight` laid out `[kernel * kernel, channels]`.
pub(super) fn depthwise_forward(x: &[f32], weight: &[f32], g: &DepthwiseGeometry) -> Vec<f32> {
    let [oh, ow] = g.output();
    let c = g.channels;
    let mut out = vec![0f32; g.images * oh * ow * c];
    out.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(row, out)| {
            let (image, oy) = (row / oh, row % oh);
            let plane = &x[image * g.height * g.width * c..(image + 1) * g.height * g.width * c];
            vectorized(
                #[inline(always)]
                || depthwise_row(out, plane, weight, g, oy),
            );
        });
    out
}

#[inline(always)]
fn depthwise_row(out: &mut [f32], plane: &[f32], weight: &[f32], g: &DepthwiseGeometry, oy: usize) {
    let c = g.channels;
    let k = g.kernel;
    let [pad_top, pad_left] = g.padding();
    for ky in 0..k {
        let Some(iy) = DepthwiseGeometry::source(oy, ky, g.stride, pad_top, g.height) else {
            continue;
        };
        let input_row = &plane[iy * g.width * c..(iy + 1) * g.width * c];
        for (ox, o) in out.chunks_exact_mut(c).enumerate() {
            for kx in 0..k {
                let Some(ix) = DepthwiseGeometry::source(ox, kx, g.stride, pad_left, g.width)
                else {
                    continue;
                };
                let input = &input_row[ix * c..(ix + 1) * c];
                let w = &weight[(ky * k + kx) * c..(ky * k + kx + 1) * c];
                for ((o, &v), &w) in o.iter_mut().zip(input).zip(w) {
                    *o += v * w;
                }
            }
        }
    }
}

/// Gradients of a depthwise convolution: of its input (NHWC, like `x`) and of its weight
/// (`[kernel * kernel, channels]`), given the gradient of its output. Images run in
/// parallel; their weight gradients are summed in image order.
pub(super) fn depthwise_backward(
    grad_out: &[f32],
    x: &[f32],
    weight: &[f32],
    g: &DepthwiseGeometry,
) -> (Vec<f32>, Vec<f32>) {
    let [oh, ow] = g.output();
    let c = g.channels;
    let plane = g.height * g.width * c;
    let out_plane = oh * ow * c;
    let mut grad_in = vec![0f32; x.len()];
    let parts: Vec<Vec<f32>> = grad_in
        .par_chunks_mut(plane)
        .enumerate()
        .map(|(image, grad_in)| {
            let x = &x[image * plane..(image + 1) * plane];
            let grad_out = &grad_out[image * out_plane..(image + 1) * out_plane];
            vectorized(
                #[inline(always)]
                || depthwise_image_backward(grad_in, x, grad_out, weight, g),
            )
        })
        .collect();
    let mut grad_weight = vec![0f32; weight.len()];
    for part in &parts {
        for (s, &v) in grad_weight.iter_mut().zip(part) {
            *s += v;
        }
    }
    (grad_in, grad_weight)
}

#[inline(always)]
fn depthwise_image_backward(
    grad_in: &mut [f32],
    x: &[f32],
    grad_out: &[f32],
    weight: &[f32],
    g: &DepthwiseGeometry,
) -> Vec<f32> {
    let [oh, ow] = g.output();
    let [pad_top, pad_left] = g.padding();
    let (c, k) = (g.channels, g.kernel);
    let mut grad_weight = vec![0f32; weight.len()];
    for oy in 0..oh {
        for ky in 0..k {
            let Some(iy) = DepthwiseGeometry::source(oy, ky, g.stride, pad_top, g.height) else {
                continue;
            };
            for ox in 0..ow {
                let go = &grad_out[(oy * ow + ox) * c..(oy * ow + ox + 1) * c];
                for kx in 0..k {
                    let Some(ix) = DepthwiseGeometry::source(ox, kx, g.stride, pad_left, g.width)
                    else {
                        continue;
                    };
                    let at = (iy * g.width + ix) * c;
                    let tap = (ky * k + kx) * c;
                    let w = &weight[tap..tap + c];
                    let gw = &mut grad_weight[tap..tap + c];
                    let gi = &mut grad_in[at..at + c];
                    let xi = &x[at..at + c];
                    for ((((gi, gw), &xi), &w), &go) in
                        gi.iter_mut().zip(gw.iter_mut()).zip(xi).zip(w).zip(go)
                    {
                        *gi += go * w;
                        *gw += go * xi;
                    }
                }
            }
        }
    }
    grad_weight
}

/// The stem's im2col of `images` planar (CHW) images of `channels x height x width`: one row
/// of `channels * kernel * kernel` values per output pixel (SAME padding, zeros outside).
pub(super) fn im2col(
    images: &[f32],
    count: usize,
    [channels, height, width]: [usize; 3],
    kernel: usize,
    stride: usize,
) -> (Vec<f32>, [usize; 2]) {
    let (oh, pad_top) = same_padding(height, kernel, stride);
    let (ow, pad_left) = same_padding(width, kernel, stride);
    let patch = channels * kernel * kernel;
    let image_len = channels * height * width;
    let mut cols = vec![0f32; count * oh * ow * patch];
    cols.par_chunks_mut(ow * patch)
        .enumerate()
        .for_each(|(row, values)| {
            let (image, oy) = (row / oh, row % oh);
            let image = &images[image * image_len..(image + 1) * image_len];
            for (ox, patch_values) in values.chunks_exact_mut(patch).enumerate() {
                let mut i = 0;
                for ch in 0..channels {
                    for ky in 0..kernel {
                        let iy = (oy * stride + ky)
                            .checked_sub(pad_top)
                            .filter(|&y| y < height);
                        for kx in 0..kernel {
                            let ix = (ox * stride + kx)
                                .checked_sub(pad_left)
                                .filter(|&x| x < width);
                            if let (Some(iy), Some(ix)) = (iy, ix) {
                                patch_values[i] = image[ch * height * width + iy * width + ix];
                            }
                            i += 1;
                        }
                    }
                }
            }
        });
    (cols, [oh, ow])
}

/// The mean of each image's `pixels` rows of `channels` values: `[images, channels]`.
pub(super) fn pool(x: &[f32], images: usize, channels: usize) -> Vec<f32> {
    let pixels = x.len() / (images * channels).max(1);
    x.par_chunks(pixels * channels)
        .flat_map_iter(|image| {
            let mut sum = column_sums(image, channels);
            sum.iter_mut().for_each(|s| *s /= pixels as f32);
            sum
        })
        .collect()
}

/// Rows of the output per task of a tall matrix product.
const ROW_BLOCK: usize = 4096;

/// `a * b` into the row-major `out`: a tall `a` with at most 256 columns in `b` in blocks of
/// [`ROW_BLOCK`] rows, one task each (-5% to +34% against gemm's own threads on the early
/// layers' shapes, `product_speed`); anything else with gemm's threads (no slower there).
fn product(out: &mut [f32], a: View<'_>, b: View<'_>) {
    let n = b.cols;
    if a.rows < 2 * ROW_BLOCK || n == 0 || n > 256 {
        gemm_into(out, a, b, false, true);
        return;
    }
    out.par_chunks_mut(ROW_BLOCK * n)
        .enumerate()
        .for_each(|(i, dst)| {
            let first = i * ROW_BLOCK;
            let block = View {
                data: &a.data[first * a.row_stride..],
                rows: dst.len() / n,
                ..a
            };
            gemm_into(dst, block, b, false, false);
        });
}

/// `x * w^T` for rows `x` of `inputs` values and `w` as `outputs` rows of `inputs` (a 1x1
/// convolution's `[out, in]` weight): `[rows, outputs]`.
pub(super) fn pointwise(x: &[f32], w: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
    let rows = x.len() / inputs;
    let mut out = vec![0f32; rows * outputs];
    product(
        &mut out,
        View::rows(x, rows, inputs),
        View::rows(w, outputs, inputs).t(),
    );
    out
}

/// The gradient of a 1x1 convolution's input: `grad * w`, `[rows, inputs]`.
pub(super) fn pointwise_input_grad(
    grad: &[f32],
    w: &[f32],
    inputs: usize,
    outputs: usize,
) -> Vec<f32> {
    let rows = grad.len() / outputs;
    let mut out = vec![0f32; rows * inputs];
    product(
        &mut out,
        View::rows(grad, rows, outputs),
        View::rows(w, outputs, inputs),
    );
    out
}

/// The gradient of a 1x1 convolution's `[out, in]` weight: `grad^T * x`, the rows split in
/// fixed chunks (computed in parallel, summed in order) when there are many.
pub(super) fn pointwise_weight_grad(
    grad: &[f32],
    x: &[f32],
    inputs: usize,
    outputs: usize,
) -> Vec<f32> {
    let rows = x.len() / inputs;
    let product = |first: usize, count: usize, parallel: bool| {
        let mut out = vec![0f32; outputs * inputs];
        gemm_into(
            &mut out,
            View::rows(
                &grad[first * outputs..(first + count) * outputs],
                count,
                outputs,
            )
            .t(),
            View::rows(&x[first * inputs..(first + count) * inputs], count, inputs),
            false,
            parallel,
        );
        out
    };
    if rows <= SPLIT_ROWS {
        return product(0, rows, true);
    }
    let parts: Vec<Vec<f32>> = (0..rows.div_ceil(SPLIT_ROWS))
        .into_par_iter()
        .map(|i| {
            let first = i * SPLIT_ROWS;
            product(first, SPLIT_ROWS.min(rows - first), false)
        })
        .collect();
    let mut total = vec![0f32; outputs * inputs];
    for part in &parts {
        for (t, &v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_the_biased_mean_and_variance_per_channel() {
        let x = [1.0, 10.0, 3.0, 20.0, 5.0, 60.0];
        let (mean, var) = batch_statistics(&x, 2);
        assert_eq!(mean, vec![3.0, 30.0]);
        assert!((var[0] - 8.0 / 3.0).abs() < 1e-6);
        assert!((var[1] - 1400.0 / 3.0).abs() < 1e-3);
    }

    #[test]
    fn depthwise_backward_is_the_adjoint_of_forward() {
        // <forward(x), y> = <x, backward_input(y)> and = <w, backward_weight(y)>: the
        // convolution is linear in x and in w.
        for (kernel, stride, size) in [(3, 1, 5), (3, 2, 6), (5, 2, 7), (5, 1, 4)] {
            let g = DepthwiseGeometry {
                images: 2,
                height: size,
                width: size + 1,
                channels: 11,
                kernel,
                stride,
            };
            let value = |i: usize, s: f32| (i as f32 * 0.37 + s).sin() * 2.0;
            let x: Vec<f32> = (0..2 * size * (size + 1) * 11)
                .map(|i| value(i, 0.1))
                .collect();
            let w: Vec<f32> = (0..kernel * kernel * 11).map(|i| value(i, 1.3)).collect();
            let out = depthwise_forward(&x, &w, &g);
            let y: Vec<f32> = (0..out.len()).map(|i| value(i, 2.9)).collect();
            let (gx, gw) = depthwise_backward(&y, &x, &w, &g);
            let dot = |a: &[f32], b: &[f32]| -> f64 {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum()
            };
            let lhs = dot(&out, &y);
            assert!(
                (lhs - dot(&x, &gx)).abs() < 1e-3 * lhs.abs().max(1.0),
                "{kernel} {stride}"
            );
            assert!(
                (lhs - dot(&w, &gw)).abs() < 1e-3 * lhs.abs().max(1.0),
                "{kernel} {stride}"
            );
        }
    }

    #[test]
    fn weight_gradient_split_in_chunks_equals_one_product() {
        let rows = SPLIT_ROWS * 2 + 5;
        let x: Vec<f32> = (0..rows * 3).map(|i| (i % 7) as f32 - 3.0).collect();
        let g: Vec<f32> = (0..rows * 2).map(|i| (i % 5) as f32 * 0.5).collect();
        let split = pointwise_weight_grad(&g, &x, 3, 2);
        for o in 0..2 {
            for i in 0..3 {
                let want: f64 = (0..rows)
                    .map(|r| f64::from(g[r * 2 + o]) * f64::from(x[r * 3 + i]))
                    .sum();
                assert!((f64::from(split[o * 3 + i]) - want).abs() < 1e-3 * want.abs().max(1.0));
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    #[test]
    #[ignore = "timing: cargo test --release -p mlops-core --lib product_speed -- --ignored; table in target/timing/product_speed.txt"]
    fn product_speed() {
        let mut report = String::new();
        for (rows, k, n) in [
            (1 << 20, 32, 16),
            (1 << 18, 24, 144),
            (1 << 16, 40, 240),
            (1 << 14, 112, 672),
            (4096, 320, 1280),
        ] {
            let a: Vec<f32> = (0..rows * k).map(|i| (i % 13) as f32 * 0.1).collect();
            let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.1).collect();
            let time = |f: &dyn Fn() -> Vec<f32>| {
                let _ = f();
                let t = std::time::Instant::now();
                for _ in 0..3 {
                    std::hint::black_box(f());
                }
                t.elapsed().as_secs_f64() / 3.0
            };
            let blocks = time(&|| pointwise(&a, &w, k, n));
            let whole = time(&|| {
                let mut out = vec![0f32; rows * n];
                gemm_into(
                    &mut out,
                    View::rows(&a, rows, k),
                    View::rows(&w, n, k).t(),
                    false,
                    true,
                );
                out
            });
            let gflop = (rows * k * n) as f64 / 1e9;
            report.push_str(&format!(
                "{rows} x {k} -> {n}: row blocks {:.1} GFMA/s, gemm's threads {:.1} GFMA/s\n",
                gflop / blocks,
                gflop / whole
            ));
        }
        crate::infer::write_timing_report("product_speed", &report);
    }
}
