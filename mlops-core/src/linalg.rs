//! The small dense linear algebra of the drift detectors and the training kernels: matrix
//! products (gemm), row-parallel or with gemm's own threads,
//! Gram-Schmidt orthonormalisation, a symmetric eigen-solver for small matrices, a Cholesky
//! solve, and the normal tail probability.

use rayon::prelude::*;

/// A read-only matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        View {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Whether every index the view can address lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// Rows of the output each parallel task computes.
const ROW_BLOCK: usize = 32;

/// `a * b` as a row-major `a.rows x b.cols` matrix. Row blocks run in parallel; each block is
/// one gemm call, so the result does not depend on the number of threads.
///
/// One of the two `unsafe` blocks of the crate outside tests (the other is [`gemm_into`]):
/// gemm takes raw pointers and strides.
#[allow(unsafe_code)]
pub(crate) fn matmul(a: View<'_>, b: View<'_>) -> Vec<f32> {
    assert!(a.cols == b.rows && a.in_bounds() && b.in_bounds());
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    out.par_chunks_mut(ROW_BLOCK * n)
        .enumerate()
        .for_each(|(block, dst)| {
            let first = block * ROW_BLOCK;
            let rows = dst.len() / n;
            let lhs = &a.data[first * a.row_stride..];
            // SAFETY: `dst` holds `rows x n` values at row stride `n`; `lhs` starts at row
            // `first` of `a` and the asserted bounds cover rows `first..first + rows`; `b` is
            // in bounds as asserted above. gemm reads and writes only inside these extents.
            unsafe {
                gemm::gemm(
                    rows,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    lhs.as_ptr(),
                    a.col_stride as isize,
                    a.row_stride as isize,
                    b.data.as_ptr(),
                    b.col_stride as isize,
                    b.row_stride as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
    out
}

/// `dst = a * b`, or `dst += a * b` with `accumulate`, for a row-major `a.rows x b.cols`
/// `dst`, computed by gemm on rayon's threads (`parallel`) or on the calling one. The result
/// does not depend on timing: gemm splits the output between threads, never the inner
/// dimension.
#[cfg(feature = "train")]
#[allow(unsafe_code)]
pub(crate) fn gemm_into(
    dst: &mut [f32],
    a: View<'_>,
    b: View<'_>,
    accumulate: bool,
    parallel: bool,
) {
    assert!(a.cols == b.rows && a.in_bounds() && b.in_bounds());
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(dst.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `dst` holds `m x n` values at row stride `n` (asserted); `a` and `b` are in
    // bounds as asserted above. gemm reads and writes only inside these extents.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Orthonormalises the columns of the row-major `rows x cols` matrix `q` in place (modified
/// Gram-Schmidt, applied twice for accuracy). Returns how many columns were not (numerically)
/// dependent on earlier ones; dependent columns are set to zero.
pub(crate) fn orthonormalise_columns(q: &mut [f32], rows: usize, cols: usize) -> usize {
    let mut independent = 0;
    let mut column = vec![0f64; rows];
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(cols);
    for j in 0..cols {
        for (i, c) in column.iter_mut().enumerate() {
            *c = f64::from(q[i * cols + j]);
        }
        let original = norm(&column);
        for _ in 0..2 {
            for b in &basis {
                let projection: f64 = b.iter().zip(&column).map(|(x, y)| x * y).sum();
                column
                    .iter_mut()
                    .zip(b)
                    .for_each(|(c, x)| *c -= projection * x);
            }
        }
        let length = norm(&column);
        if original > 0.0 && length > 1e-7 * original {
            column.iter_mut().for_each(|c| *c /= length);
            independent += 1;
        } else {
            column.iter_mut().for_each(|c| *c = 0.0);
        }
        for (i, c) in column.iter().enumerate() {
            q[i * cols + j] = *c as f32;
        }
        basis.push(column.clone());
    }
    independent
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Eigen-decomposition of the symmetric row-major `n x n` matrix `a` (cyclic Jacobi).
/// Returns eigenvalues in descending order and the matching eigenvectors as rows.
pub(crate) fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-14 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let vectors = order
        .iter()
        .map(|&j| (0..n).map(|k| v[k * n + j]).collect())
        .collect();
    (values, vectors)
}

/// Solves `a x = b` for the symmetric positive-definite row-major `n x n` matrix `a`
/// (Cholesky). Returns `None` when `a` is not positive definite.
pub(crate) fn cholesky_solve(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - sum;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - sum) / l[j * n + j];
            }
        }
    }
    let mut y = vec![0f64; n];
    for i in 0..n {
        let sum: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (b[i] - sum) / l[i * n + i];
    }
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let sum: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (y[i] - sum) / l[i * n + i];
    }
    Some(x)
}

/// `P(Z > z)` for a standard normal `Z` (complementary error function, relative error below
/// 1.2e-7: Numerical Recipes' Chebyshev fit).
pub(crate) fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_a_naive_product_also_transposed() {
        let a: Vec<f32> = (0..70 * 3).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..3 * 5).map(|i| (i % 4) as f32 * 0.5).collect();
        let c = matmul(View::rows(&a, 70, 3), View::rows(&b, 3, 5));
        for i in 0..70 {
            for j in 0..5 {
                let want: f32 = (0..3).map(|k| a[i * 3 + k] * b[k * 5 + j]).sum();
                assert!((c[i * 5 + j] - want).abs() < 1e-5);
            }
        }
        // a^T a through a transposed view.
        let g = matmul(View::rows(&a, 70, 3).t(), View::rows(&a, 70, 3));
        for p in 0..3 {
            for q in 0..3 {
                let want: f32 = (0..70).map(|i| a[i * 3 + p] * a[i * 3 + q]).sum();
                assert!((g[p * 3 + q] - want).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn jacobi_finds_the_eigenpairs_of_a_known_matrix() {
        // Eigenvalues of [[2,1],[1,2]] are 3 and 1.
        let (values, vectors) = symmetric_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        assert!((values[0] - 3.0).abs() < 1e-12 && (values[1] - 1.0).abs() < 1e-12);
        assert!((vectors[0][0].abs() - vectors[0][1].abs()).abs() < 1e-12);
    }

    #[test]
    fn cholesky_solves_and_rejects_indefinite_matrices() {
        let x = cholesky_solve(&[4.0, 2.0, 2.0, 3.0], &[2.0, 1.0], 2).unwrap();
        assert!((4.0 * x[0] + 2.0 * x[1] - 2.0).abs() < 1e-12);
        assert!((2.0 * x[0] + 3.0 * x[1] - 1.0).abs() < 1e-12);
        assert!(cholesky_solve(&[1.0, 2.0, 2.0, 1.0], &[1.0, 1.0], 2).is_none());
    }

    #[test]
    fn normal_tail_matches_known_quantiles() {
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_upper_tail(-1.644_854) - 0.95).abs() < 1e-6);
    }

    #[test]
    fn orthonormalised_columns_are_orthonormal_and_dependent_ones_zero() {
        // Third column = first + second.
        let mut q = vec![1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 0.0, 1.0, 1.0, 2.0, 0.0, 2.0];
        assert_eq!(orthonormalise_columns(&mut q, 4, 3), 2);
        let col = |j: usize| (0..4).map(|i| q[i * 3 + j]).collect::<Vec<_>>();
        let d = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        assert!((d(&col(0), &col(0)) - 1.0).abs() < 1e-6);
        assert!(d(&col(0), &col(1)).abs() < 1e-6);
        assert!(col(2).iter().all(|v| *v == 0.0));
    }
}
