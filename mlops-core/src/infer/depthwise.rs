//! Depthwise KxK convolution on NHWC activations with TensorFlow's SAME padding, bias and
//! ReLU6 fused, vectorised over channels (eight at a time).
//!
//! Padding is never materialised: taps that fall outside the input are skipped, and the
//! interior of each row, where no tap falls outside, runs a fully unrolled loop.

use rayon::prelude::*;

use super::simd::{Kernel, Lanes, dispatch};

/// TensorFlow's SAME padding along one axis: (output size, padding before).
pub(crate) fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(size);
    (out, total / 2)
}

/// Weights of a depthwise convolution with its BatchNorm folded in.
#[derive(Debug, Clone)]
pub(crate) struct DepthwiseWeights {
    channels: usize,
    kernel: usize,
    stride: usize,
    /// Per block of eight channels, the `kernel * kernel` taps (row-major), eight lanes each.
    taps: Vec<[f32; 8]>,
    bias: Vec<[f32; 8]>,
}

impl DepthwiseWeights {
    /// From a `[channels, 1, kernel, kernel]` weight and `bias[channels]`. `kernel` must be
    /// 3 or 5 (the sizes EfficientNet uses).
    pub(crate) fn new(
        weights: &[f32],
        bias: &[f32],
        channels: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        let kk = kernel * kernel;
        debug_assert_eq!(weights.len(), channels * kk);
        let blocks = channels.div_ceil(8);
        let mut taps = vec![[0.0; 8]; blocks * kk];
        for c in 0..channels {
            for t in 0..kk {
                taps[(c / 8) * kk + t][c % 8] = weights[c * kk + t];
            }
        }
        let mut padded = vec![[0.0; 8]; blocks];
        for (c, &b) in bias.iter().enumerate() {
            padded[c / 8][c % 8] = b;
        }
        DepthwiseWeights {
            channels,
            kernel,
            stride,
            taps,
            bias: padded,
        }
    }

    /// Output height and width for an input of `height x width`.
    pub(crate) fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        (
            same_padding(height, self.kernel, self.stride).0,
            same_padding(width, self.kernel, self.stride).0,
        )
    }

    /// Channels.
    pub(crate) fn channels(&self) -> usize {
        self.channels
    }

    /// Kernel side.
    pub(crate) fn kernel(&self) -> usize {
        self.kernel
    }
}

/// Output rows `first_row..` of a depthwise convolution (as many as `out` holds).
struct DepthwiseRows<'a> {
    input: &'a [f32],
    height: usize,
    width: usize,
    weights: &'a DepthwiseWeights,
    first_row: usize,
    out: &'a mut [f32],
}

impl Kernel for DepthwiseRows<'_> {
    type Output = ();

    #[inline(always)]
    fn run<L: Lanes>(self, l: L) {
        match (self.weights.kernel, self.weights.stride) {
            (3, 1) => self.rows::<L, 3, 1>(l),
            (3, _) => self.rows::<L, 3, 2>(l),
            (_, 1) => self.rows::<L, 5, 1>(l),
            _ => self.rows::<L, 5, 2>(l),
        }
    }
}

/// Output pixels computed together in the interior of a row: every tap vector loaded once
/// serves this many independent accumulators.
const PIXELS: usize = 6;

/// The eight values at `x[at..]` as lanes, zeros past the end (reached only by a last block
/// of fewer than eight channels).
#[inline(always)]
fn lanes_at<L: Lanes>(l: L, x: &[f32], at: usize) -> L::V {
    let tail = x.get(at..).unwrap_or_default();
    match tail.first_chunk::<8>() {
        Some(eight) => l.load(eight),
        None => l.load_partial(tail),
    }
}

/// One output row's inputs and geometry.
struct Row<'a, const K: usize> {
    /// The input rows under each tap row; empty where SAME padding falls.
    inputs: [&'a [f32]; K],
    channels: usize,
    width: usize,
    pad_left: usize,
}

impl<const K: usize> Row<'_, K> {
    /// Output pixels `ox..ox + N` of this row (as many as `outs` holds, at most `N`), every
    /// channel block: for each tap, one tap vector load serves `N` independent accumulators.
    /// Where every tap of the `N` pixels falls inside the row and the block has eight channels,
    /// one bounds check covers the whole span and the loads sit at offsets the compiler sees;
    /// otherwise (borders, a last block of fewer channels) every tap is checked.
    #[inline(always)]
    fn pixels<L: Lanes, const S: usize, const N: usize>(
        &self,
        l: L,
        w: &DepthwiseWeights,
        ox: usize,
        outs: &mut [f32],
    ) {
        let c = self.channels;
        let (lo, hi) = (l.splat(0.0), l.splat(6.0));
        let left = (ox * S) as isize - self.pad_left as isize;
        let span = (N - 1) * S + K;
        let inside = left >= 0 && left as usize + span <= self.width;
        let n = outs.len() / c;
        for (block, bias) in w.bias.iter().enumerate() {
            let c0 = block * 8;
            let lanes = (c - c0).min(8);
            let taps = &w.taps[block * K * K..(block + 1) * K * K];
            let mut acc = [l.load(bias); N];
            for (dy, row) in self.inputs.iter().enumerate() {
                let start = left.max(0) as usize * c + c0;
                let fast = if inside && lanes == 8 {
                    row.get(start..start + (span - 1) * c + 8)
                } else {
                    None
                };
                if let Some(values) = fast {
                    for dx in 0..K {
                        let tap = l.load(&taps[dy * K + dx]);
                        for (j, acc) in acc.iter_mut().enumerate() {
                            let at = (j * S + dx) * c;
                            let v = l.load_partial(&values[at..at + 8]);
                            *acc = l.mul_add(v, tap, *acc);
                        }
                    }
                } else if !row.is_empty() {
                    for dx in 0..K {
                        let tap = l.load(&taps[dy * K + dx]);
                        for (j, acc) in acc.iter_mut().enumerate() {
                            let ix = left + (j * S + dx) as isize;
                            if ix >= 0 && (ix as usize) < self.width {
                                let v = lanes_at(l, row, ix as usize * c + c0);
                                *acc = l.mul_add(v, tap, *acc);
                            }
                        }
                    }
                }
            }
            for (j, acc) in acc.into_iter().enumerate().take(n) {
                let o = &mut outs[j * c + c0..j * c + c0 + lanes];
                l.store_partial(l.clamp(acc, lo, hi), o);
            }
        }
    }
}

impl DepthwiseRows<'_> {
    /// Output pixels in order, each pixel's channels in order (the memory order of NHWC, so
    /// loads are contiguous): [`PIXELS`] at a time where all their taps fall inside the row,
    /// one at a time at the borders.
    #[inline(always)]
    fn rows<L: Lanes, const K: usize, const S: usize>(self, l: L) {
        let w = self.weights;
        let c = w.channels;
        let (h, wd) = (self.height, self.width);
        let (_, pad_top) = same_padding(h, K, S);
        let (ow, pad_left) = same_padding(wd, K, S);
        // Output columns whose taps all fall inside the row: ox * S >= pad_left and
        // ox * S - pad_left + K <= width.
        let interior_start = pad_left.div_ceil(S).min(ow);
        let interior_end = match (wd + pad_left).checked_sub(K) {
            Some(last) => (last / S + 1).clamp(interior_start, ow),
            None => interior_start,
        };
        let row_len = wd * c;
        for (r, out_row) in self.out.chunks_exact_mut(ow * c).enumerate() {
            let top = ((self.first_row + r) * S) as isize - pad_top as isize;
            let row: Row<K> = Row {
                inputs: std::array::from_fn(|dy| match usize::try_from(top + dy as isize) {
                    Ok(iy) if iy < h => &self.input[iy * row_len..][..row_len],
                    _ => &[],
                }),
                channels: c,
                width: wd,
                pad_left,
            };
            let mut ox = 0;
            while ox < ow {
                if ox >= interior_start && ox + PIXELS <= interior_end {
                    let outs = &mut out_row[ox * c..(ox + PIXELS) * c];
                    row.pixels::<L, S, PIXELS>(l, w, ox, outs);
                    ox += PIXELS;
                } else {
                    row.pixels::<L, S, 1>(l, w, ox, &mut out_row[ox * c..(ox + 1) * c]);
                    ox += 1;
                }
            }
        }
    }
}

/// `out = relu6(depthwise(input) + bias)` for an `height x width x channels` input; `out` holds
/// the whole output. Rows are split over `threads` threads.
pub(crate) fn depthwise(
    input: &[f32],
    height: usize,
    width: usize,
    weights: &DepthwiseWeights,
    out: &mut [f32],
    threads: usize,
) {
    let (oh, ow) = weights.output_size(height, width);
    let row = ow * weights.channels;
    debug_assert_eq!(out.len(), oh * row);
    debug_assert_eq!(input.len(), height * width * weights.channels);
    let per_thread = oh.div_ceil(threads.max(1));
    if threads <= 1 || per_thread >= oh {
        dispatch(DepthwiseRows {
            input,
            height,
            width,
            weights,
            first_row: 0,
            out,
        });
        return;
    }
    out.par_chunks_mut(per_thread * row)
        .enumerate()
        .for_each(|(i, out)| {
            dispatch(DepthwiseRows {
                input,
                height,
                width,
                weights,
                first_row: i * per_thread,
                out,
            });
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[allow(clippy::too_many_arguments)]
    fn reference(
        input: &[f32],
        h: usize,
        w: usize,
        c: usize,
        weights: &[f32],
        bias: &[f32],
        k: usize,
        s: usize,
    ) -> Vec<f32> {
        let (oh, pt) = same_padding(h, k, s);
        let (ow, pl) = same_padding(w, k, s);
        let mut out = vec![0.0; oh * ow * c];
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut acc = f64::from(bias[ch]);
                    for dy in 0..k {
                        for dx in 0..k {
                            let iy = (oy * s + dy) as isize - pt as isize;
                            let ix = (ox * s + dx) as isize - pl as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                acc += f64::from(input[(iy as usize * w + ix as usize) * c + ch])
                                    * f64::from(weights[ch * k * k + dy * k + dx]);
                            }
                        }
                    }
                    out[(oy * ow + ox) * c + ch] = acc.clamp(0.0, 6.0) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn same_padding_is_tensorflows() {
        assert_eq!(same_padding(256, 3, 2), (128, 0));
        assert_eq!(same_padding(255, 3, 2), (128, 1));
        assert_eq!(same_padding(64, 5, 1), (64, 2));
        assert_eq!(same_padding(7, 5, 2), (4, 2));
        assert_eq!(same_padding(1, 5, 2), (1, 2));
    }

    #[test]
    fn matches_a_direct_convolution_at_borders_strides_and_odd_channels() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for &(h, w, c, k, s) in &[
            (1, 1, 8, 3, 1),
            (2, 3, 5, 5, 2),
            (7, 9, 16, 3, 2),
            (8, 8, 24, 5, 1),
            (11, 6, 13, 5, 2),
            (16, 16, 32, 3, 1),
        ] {
            let input: Vec<f32> = (0..h * w * c)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let wts: Vec<f32> = (0..c * k * k)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let bias: Vec<f32> = (0..c).map(|_| rng.random_range(0.0..1.0)).collect();
            let packed = DepthwiseWeights::new(&wts, &bias, c, k, s);
            let (oh, ow) = packed.output_size(h, w);
            let want = reference(&input, h, w, c, &wts, &bias, k, s);
            for threads in [1, 2, 3] {
                let mut out = vec![f32::NAN; oh * ow * c];
                depthwise(&input, h, w, &packed, &mut out, threads);
                for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5,
                        "{h}x{w}x{c} k{k} s{s} threads {threads}: [{i}] {a} != {b}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p mlops-core --lib depthwise_speed -- --ignored`; the table is
    /// written to `target/timing/depthwise_speed.txt` (the library itself never prints).
    #[test]
    #[ignore = "timing, not a check"]
    fn depthwise_speed() {
        let mut report = String::new();
        for &(h, c, k, s) in &[
            (64, 144, 3, 1),
            (32, 240, 5, 1),
            (64, 144, 5, 2),
            (16, 672, 5, 1),
        ] {
            let input: Vec<f32> = (0..h * h * c).map(|i| (i % 17) as f32 * 0.1).collect();
            let w: Vec<f32> = (0..c * k * k).map(|i| (i % 7) as f32 * 0.01).collect();
            let packed = DepthwiseWeights::new(&w, &vec![0.1; c], c, k, s);
            let (oh, ow) = packed.output_size(h, h);
            let mut out = vec![0.0; oh * ow * c];
            let reps = 200;
            let started = std::time::Instant::now();
            for _ in 0..reps {
                depthwise(&input, h, h, &packed, &mut out, 1);
            }
            let secs = started.elapsed().as_secs_f64() / reps as f64;
            let macs = (oh * ow * c * k * k) as f64;
            report.push_str(&format!(
                "{h}x{h}x{c} k{k} s{s}: {:.1} us, {:.2} GMAC/s ({:.0}% of one core's peak)\n",
                secs * 1e6,
                macs / secs / 1e9,
                macs / secs / 58e9 * 100.0
            ));
        }
        crate::infer::write_timing_report("depthwise_speed", &report);
    }
}
