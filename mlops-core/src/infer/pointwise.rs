//! Pointwise (1x1) convolution as a matrix product over NHWC pixels, with the bias, the
//! residual and ReLU6 applied while the result is still in registers.
//!
//! `out[m][n] = act(bias[n] + sum_k input[m][k] * w[k][n] (+ residual[m][n]))`: `m` runs over
//! pixels, `k` over input channels, `n` over output channels. The weights are packed once into
//! column panels of 16 (the last may be 8) so that the micro-kernel reads them in order; the
//! micro-kernel keeps a 6 x 16 block of the result in 12 vector registers.

use rayon::prelude::*;

use super::simd::{Kernel, Lanes, dispatch};

/// Rows of the result computed together by the micro-kernel.
const MR: usize = 6;
/// Input values per row block: a block of rows whose inputs fit in the L2 cache is multiplied
/// by every panel before the next block is read.
const ROW_BLOCK_FLOATS: usize = 32 * 1024;

/// The activation applied to a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// None (a projection before the residual sum).
    Linear,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

/// One column panel of the packed weights.
#[derive(Debug, Clone, Copy)]
struct Panel {
    /// First output column.
    col: usize,
    /// Vectors of eight columns (1 or 2).
    vectors: usize,
    /// Offset of its `k * vectors` vectors in [`PackedWeights::data`].
    offset: usize,
}

/// A `k x n` weight matrix with its bias, packed for the micro-kernel.
#[derive(Debug, Clone)]
pub(crate) struct PackedWeights {
    k: usize,
    n: usize,
    panels: Vec<Panel>,
    data: Vec<[f32; 8]>,
    /// The bias in column order, padded with zeros to whole vectors.
    bias: Vec<[f32; 8]>,
}

impl PackedWeights {
    /// Packs `weights` given as `n` rows of `k` values (the layout of a convolution's
    /// `[out, in, 1, 1]` weight, or of an im2col'd `[out, in, kh, kw]` one) and `bias[n]`.
    pub(crate) fn new(weights: &[f32], bias: &[f32], n: usize, k: usize) -> Self {
        debug_assert_eq!(weights.len(), n * k);
        debug_assert_eq!(bias.len(), n);
        let mut panels = Vec::new();
        let mut data = Vec::new();
        let mut col = 0;
        while col < n {
            let vectors = if n - col > 8 { 2 } else { 1 };
            let offset = data.len();
            for kk in 0..k {
                for v in 0..vectors {
                    let mut lanes = [0.0; 8];
                    for (lane, value) in lanes.iter_mut().enumerate() {
                        let c = col + 8 * v + lane;
                        if c < n {
                            *value = weights[c * k + kk];
                        }
                    }
                    data.push(lanes);
                }
            }
            panels.push(Panel {
                col,
                vectors,
                offset,
            });
            col += 8 * vectors;
        }
        let bias = bias
            .chunks(8)
            .map(|c| {
                let mut lanes = [0.0; 8];
                lanes[..c.len()].copy_from_slice(c);
                lanes
            })
            .collect();
        PackedWeights {
            k,
            n,
            panels,
            data,
            bias,
        }
    }

    /// Input channels.
    pub(crate) fn inputs(&self) -> usize {
        self.k
    }

    /// Output channels.
    pub(crate) fn outputs(&self) -> usize {
        self.n
    }
}

/// Where a kernel call writes: whole rows of the output, or (column split) one segment of
/// every row.
enum Out<'a> {
    /// Consecutive rows, `n` values each.
    Rows(&'a mut [f32]),
    /// One slice per row holding columns `first_col..` of that row.
    Segments {
        rows: Vec<&'a mut [f32]>,
        first_col: usize,
    },
}

impl Out<'_> {
    fn rows(&self, n: usize) -> usize {
        match self {
            Out::Rows(data) => data.len() / n,
            Out::Segments { rows, .. } => rows.len(),
        }
    }
}

/// The output rows of one tile, each from the panel's first column.
enum TileOut<'b, 'a> {
    Rows {
        data: &'b mut [f32],
        n: usize,
    },
    Segments {
        rows: &'b mut [&'a mut [f32]],
        first_col: usize,
    },
}

impl TileOut<'_, '_> {
    /// Row `i` of the tile from column `col` (global), `cols` values.
    #[inline(always)]
    fn row(&mut self, i: usize, col: usize, cols: usize) -> &mut [f32] {
        match self {
            TileOut::Rows { data, n } => &mut data[i * *n + col..][..cols],
            TileOut::Segments { rows, first_col } => &mut rows[i][col - *first_col..][..cols],
        }
    }
}

/// The product for a block of rows and a range of panels.
struct Product<'a> {
    /// Input rows `first_row..`, `k` values each (the whole input for a column split).
    input: &'a [f32],
    weights: &'a PackedWeights,
    panels: std::ops::Range<usize>,
    /// Residual rows matching `input`, `n` values each.
    residual: Option<&'a [f32]>,
    out: Out<'a>,
    activation: Activation,
}

impl Kernel for Product<'_> {
    type Output = ();

    #[inline(always)]
    fn run<L: Lanes>(self, l: L) {
        let Product {
            input,
            weights: w,
            panels,
            residual,
            mut out,
            activation,
        } = self;
        let (k, n) = (w.k, w.n);
        let rows = out.rows(n);
        let block = (ROW_BLOCK_FLOATS / k.max(1)).max(MR) / MR * MR;
        let mut r0 = 0;
        while r0 < rows {
            let r1 = (r0 + block).min(rows);
            for p in &w.panels[panels.clone()] {
                let panel = &w.data[p.offset..p.offset + k * p.vectors];
                let bias = &w.bias[p.col / 8..p.col / 8 + p.vectors];
                let cols = (n - p.col).min(8 * p.vectors);
                let mut r = r0;
                while r < r1 {
                    let mr = (r1 - r).min(MR);
                    let out = match &mut out {
                        Out::Rows(data) => TileOut::Rows {
                            data: &mut data[r * n..(r + mr) * n],
                            n,
                        },
                        Out::Segments { rows, first_col } => TileOut::Segments {
                            rows: &mut rows[r..r + mr],
                            first_col: *first_col,
                        },
                    };
                    let tile = Tile {
                        input: &input[r * k..(r + mr) * k],
                        k,
                        panel,
                        bias,
                        residual: residual.map(|res| &res[r * n..(r + mr) * n]),
                        out,
                        n,
                        col: p.col,
                        cols,
                        activation,
                    };
                    match (mr, p.vectors) {
                        (6, 2) => tile.run::<L, 6, 2>(l),
                        (5, 2) => tile.run::<L, 5, 2>(l),
                        (4, 2) => tile.run::<L, 4, 2>(l),
                        (3, 2) => tile.run::<L, 3, 2>(l),
                        (2, 2) => tile.run::<L, 2, 2>(l),
                        (1, 2) => tile.run::<L, 1, 2>(l),
                        (6, _) => tile.run::<L, 6, 1>(l),
                        (5, _) => tile.run::<L, 5, 1>(l),
                        (4, _) => tile.run::<L, 4, 1>(l),
                        (3, _) => tile.run::<L, 3, 1>(l),
                        (2, _) => tile.run::<L, 2, 1>(l),
                        _ => tile.run::<L, 1, 1>(l),
                    }
                    r += mr;
                }
            }
            r0 = r1;
        }
    }
}

/// Up to `MR` rows times one panel.
struct Tile<'b, 'a> {
    /// The tile's rows of the input, `k` values each.
    input: &'b [f32],
    k: usize,
    panel: &'b [[f32; 8]],
    bias: &'b [[f32; 8]],
    /// The tile's rows of the residual, `n` values each.
    residual: Option<&'b [f32]>,
    out: TileOut<'b, 'a>,
    n: usize,
    /// First column of the panel and how many of its columns exist.
    col: usize,
    cols: usize,
    activation: Activation,
}

impl Tile<'_, '_> {
    #[inline(always)]
    fn run<L: Lanes, const ROWS: usize, const NV: usize>(mut self, l: L) {
        let k = self.k;
        let (panel, _) = self.panel.as_chunks::<NV>();
        let panel = &panel[..k];
        let a: [&[f32]; ROWS] = std::array::from_fn(|i| &self.input[i * k..][..k]);
        let zero = l.splat(0.0);
        let mut acc = [[zero; NV]; ROWS];
        for (kk, b) in panel.iter().enumerate() {
            let b: [L::V; NV] = std::array::from_fn(|v| l.load(&b[v]));
            for (row, acc_row) in a.iter().zip(acc.iter_mut()) {
                let x = l.splat(row[kk]);
                for (acc_v, b_v) in acc_row.iter_mut().zip(b) {
                    *acc_v = l.mul_add(x, b_v, *acc_v);
                }
            }
        }
        let (lo, hi) = (zero, l.splat(6.0));
        for (i, acc_row) in acc.into_iter().enumerate() {
            let residual = self
                .residual
                .map(|r| &r[i * self.n + self.col..][..self.cols]);
            let out = self.out.row(i, self.col, self.cols);
            for (v, (value, bias)) in acc_row.into_iter().zip(self.bias).enumerate() {
                let lanes = 8 * v..(8 * v + 8).min(self.cols);
                let mut value = l.add(value, l.load(bias));
                if let Some(residual) = residual {
                    value = l.add(value, l.load_partial(&residual[lanes.clone()]));
                }
                if self.activation == Activation::Relu6 {
                    value = l.clamp(value, lo, hi);
                }
                l.store_partial(value, &mut out[lanes]);
            }
        }
    }
}

/// Rows at most this many are split over threads by columns (each thread reads a share of
/// the weights, which at these sizes cost more to stream than the rows); more rows are split
/// by rows.
const COLUMN_SPLIT_MAX_ROWS: usize = 256;

/// `out = act(input * weights + bias (+ residual))` for `out.len() / n` rows, split over
/// `threads` threads by rows, or for few rows by column panels.
pub(crate) fn pointwise(
    input: &[f32],
    weights: &PackedWeights,
    residual: Option<&[f32]>,
    out: &mut [f32],
    activation: Activation,
    threads: usize,
) {
    let (k, n) = (weights.k, weights.n);
    let rows = out.len() / n;
    debug_assert_eq!(input.len(), rows * k);
    debug_assert!(residual.is_none_or(|r| r.len() == out.len()));
    let panels = weights.panels.len();
    let threads = threads.max(1);
    if threads > 1 && rows <= COLUMN_SPLIT_MAX_ROWS && panels >= 2 * threads {
        // Each thread takes a run of panels, and of every output row the columns they cover.
        let per_thread = panels.div_ceil(threads);
        let ranges: Vec<std::ops::Range<usize>> = (0..threads)
            .map(|t| (t * per_thread).min(panels)..((t + 1) * per_thread).min(panels))
            .filter(|r| !r.is_empty())
            .collect();
        let mut segments: Vec<Vec<&mut [f32]>> =
            ranges.iter().map(|_| Vec::with_capacity(rows)).collect();
        for mut row in out.chunks_exact_mut(n) {
            for (range, seg) in ranges.iter().zip(segments.iter_mut()) {
                let last = weights.panels[range.end - 1];
                let width = (last.col + 8 * last.vectors).min(n) - weights.panels[range.start].col;
                let (mine, rest) = row.split_at_mut(width.min(row.len()));
                seg.push(mine);
                row = rest;
            }
        }
        ranges
            .into_iter()
            .zip(segments)
            .collect::<Vec<_>>()
            .into_par_iter()
            .for_each(|(range, rows)| {
                let first_col = weights.panels[range.start].col;
                dispatch(Product {
                    input,
                    weights,
                    panels: range,
                    residual,
                    out: Out::Segments { rows, first_col },
                    activation,
                });
            });
        return;
    }
    let per_thread = rows.div_ceil(threads);
    if threads <= 1 || per_thread >= rows {
        dispatch(Product {
            input,
            weights,
            panels: 0..panels,
            residual,
            out: Out::Rows(out),
            activation,
        });
        return;
    }
    out.par_chunks_mut(per_thread * n)
        .enumerate()
        .for_each(|(i, out)| {
            let r0 = i * per_thread;
            let r1 = r0 + out.len() / n;
            dispatch(Product {
                input: &input[r0 * k..r1 * k],
                weights,
                panels: 0..panels,
                residual: residual.map(|r| &r[r0 * n..r1 * n]),
                out: Out::Rows(out),
                activation,
            });
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn reference(
        input: &[f32],
        w: &[f32],
        bias: &[f32],
        residual: Option<&[f32]>,
        n: usize,
        k: usize,
        relu6: bool,
    ) -> Vec<f32> {
        let rows = input.len() / k;
        let mut out = vec![0.0; rows * n];
        for m in 0..rows {
            for c in 0..n {
                let mut s = f64::from(bias[c]);
                for kk in 0..k {
                    s += f64::from(input[m * k + kk]) * f64::from(w[c * k + kk]);
                }
                if let Some(r) = residual {
                    s += f64::from(r[m * n + c]);
                }
                if relu6 {
                    s = s.clamp(0.0, 6.0);
                }
                out[m * n + c] = s as f32;
            }
        }
        out
    }

    #[test]
    fn matches_a_plain_product_for_awkward_shapes_and_thread_counts() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for &(rows, k, n) in &[
            (1, 1, 1),
            (5, 3, 7),
            (13, 27, 32),
            (64, 40, 24),
            (37, 17, 41),
            (100, 96, 16),
            (64, 192, 1152),
            (49, 40, 1280),
            (7, 24, 40),
        ] {
            let input: Vec<f32> = (0..rows * k).map(|_| rng.random_range(-2.0..2.0)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let residual: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let packed = PackedWeights::new(&w, &bias, n, k);
            for threads in [1, 2, 3] {
                for (res, act) in [
                    (None, Activation::Relu6),
                    (Some(residual.as_slice()), Activation::Linear),
                ] {
                    let mut out = vec![f32::NAN; rows * n];
                    pointwise(&input, &packed, res, &mut out, act, threads);
                    let want = reference(&input, &w, &bias, res, n, k, act == Activation::Relu6);
                    for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "rows {rows} k {k} n {n} threads {threads}: [{i}] {a} != {b}"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod kernel_choice {
    use super::*;

    /// Our 1x1 kernel (bias and ReLU6 fused) against the `gemm` crate (the matrix product
    /// alone, then a pass for bias and ReLU6), one thread, on EfficientNet-Lite0's 1x1 layers
    /// at 256 px. `cargo test --release -p mlops-core --lib kernel_choice -- --ignored`; the
    /// table is written to `target/timing/kernel_choice.txt` (docs/benchmarks.md).
    #[test]
    #[ignore = "timing, not a check"]
    #[allow(unsafe_code)]
    fn pointwise_against_the_gemm_crate() {
        let shapes = [
            (16384, 16, 96),
            (4096, 24, 144),
            (4096, 144, 24),
            (1024, 40, 240),
            (1024, 240, 40),
            (256, 80, 480),
            (256, 480, 80),
            (256, 112, 672),
            (256, 672, 112),
            (64, 192, 1152),
            (64, 1152, 192),
            (64, 1152, 320),
            (64, 320, 1280),
        ];
        let (mut ours_total, mut gemm_total) = (0.0, 0.0);
        let mut report = String::new();
        for (m, k, n) in shapes {
            let input: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
            let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.001).collect();
            let packed = PackedWeights::new(&w, &bias, n, k);
            // gemm wants the right-hand side as k x n; ours packs it from n x k.
            let w_kn: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
            let mut ours = vec![0.0; m * n];
            let mut theirs = vec![0.0; m * n];
            let reps = (2e8 / (m * k * n) as f64).ceil() as usize;
            let time = |f: &mut dyn FnMut()| {
                f();
                let started = std::time::Instant::now();
                for _ in 0..reps {
                    f();
                }
                started.elapsed().as_secs_f64() / reps as f64
            };
            let t_ours =
                time(&mut || pointwise(&input, &packed, None, &mut ours, Activation::Relu6, 1));
            let t_gemm = time(&mut || {
                // SAFETY: all three matrices are dense row-major buffers of the sizes given.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        theirs.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        input.as_ptr(),
                        1,
                        k as isize,
                        w_kn.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for row in theirs.chunks_exact_mut(n) {
                    for (v, b) in row.iter_mut().zip(&bias) {
                        *v = (*v + b).clamp(0.0, 6.0);
                    }
                }
            });
            let diff = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-3, "{m}x{k}x{n}: results differ by {diff}");
            let gmacs = (m * k * n) as f64 / 1e9;
            report.push_str(&format!(
                "{m:>5} x {k:>4} x {n:>4}: ours {:>7.1} us ({:>3.0}% of peak), gemm crate {:>7.1} us ({:>3.0}%)\n",
                t_ours * 1e6,
                gmacs / t_ours / 58.0 * 100.0,
                t_gemm * 1e6,
                gmacs / t_gemm / 58.0 * 100.0
            ));
            ours_total += t_ours;
            gemm_total += t_gemm;
        }
        report.push_str(&format!(
            "all shapes: ours {:.2} ms, gemm crate {:.2} ms ({:.2}x)\n",
            ours_total * 1e3,
            gemm_total * 1e3,
            gemm_total / ours_total
        ));
        crate::infer::write_timing_report("kernel_choice", &report);
    }
}
