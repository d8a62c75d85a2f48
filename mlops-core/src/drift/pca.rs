//! Principal components of the reference sample (randomised subspace iteration), used to
//! project embeddings before the KS and classifier tests.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::linalg::{View, matmul, orthonormalise_columns, symmetric_eigen};

/// Extra columns of the random subspace beyond the components kept.
const OVERSAMPLING: usize = 10;
/// Rounds of subspace (power) iteration.
const POWER_ROUNDS: usize = 4;

/// The reference mean and its leading principal directions.
#[derive(Debug, Clone)]
pub(crate) struct Pca {
    mean: Vec<f32>,
    /// `components x dim`, row-major, orthonormal rows.
    directions: Vec<f32>,
    components: usize,
    dim: usize,
}

impl Pca {
    /// Fits up to `wanted` components on the row-major `rows x dim` matrix `data`; fewer when
    /// the data spans fewer directions (at least one: a constant reference gives a zero one).
    pub fn fit(data: &[f32], rows: usize, dim: usize, wanted: usize, seed: u64) -> Pca {
        let mean: Vec<f32> = (0..dim)
            .map(|j| (0..rows).map(|i| f64::from(data[i * dim + j])).sum::<f64>() / rows as f64)
            .map(|v| v as f32)
            .collect();
        let centred: Vec<f32> = data
            .chunks(dim)
            .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| v - m))
            .collect();
        let width = (wanted + OVERSAMPLING).min(dim).min(rows).max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let omega: Vec<f32> = (0..dim * width)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let x = View::rows(&centred, rows, dim);
        let mut q = matmul(x, View::rows(&omega, dim, width));
        orthonormalise_columns(&mut q, rows, width);
        for _ in 0..POWER_ROUNDS {
            let mut z = matmul(x.t(), View::rows(&q, rows, width));
            orthonormalise_columns(&mut z, dim, width);
            q = matmul(x, View::rows(&z, dim, width));
            orthonormalise_columns(&mut q, rows, width);
        }
        // B = Q^T X (width x dim); B B^T = U S^2 U^T; directions = S^-1 U^T B.
        let b = matmul(View::rows(&q, rows, width).t(), x);
        let gram = matmul(View::rows(&b, width, dim), View::rows(&b, width, dim).t());
        let (values, vectors) =
            symmetric_eigen(gram.iter().map(|&v| f64::from(v)).collect(), width);
        let top = values.first().copied().unwrap_or(0.0).max(0.0);
        let mut directions = Vec::with_capacity(wanted * dim);
        for (value, u) in values.iter().zip(&vectors).take(wanted) {
            if *value <= 1e-10 * top || *value <= 0.0 {
                break;
            }
            let s = value.sqrt();
            directions.extend((0..dim).map(|j| {
                let sum: f64 = (0..width).map(|r| u[r] * f64::from(b[r * dim + j])).sum();
                (sum / s) as f32
            }));
        }
        if directions.is_empty() {
            // A constant reference: keep one direction so projections stay defined.
            directions.extend((0..dim).map(|j| if j == 0 { 1.0 } else { 0.0 }));
        }
        let components = directions.len() / dim;
        Pca {
            mean,
            directions,
            components,
            dim,
        }
    }

    /// Number of components kept.
    pub fn components(&self) -> usize {
        self.components
    }

    /// Projects the row-major `rows x dim` matrix onto the components: `rows x components`.
    pub fn project(&self, data: &[f32], rows: usize) -> Vec<f32> {
        let centred: Vec<f32> = data
            .chunks(self.dim)
            .flat_map(|row| row.iter().zip(&self.mean).map(|(v, m)| v - m))
            .collect();
        matmul(
            View::rows(&centred, rows, self.dim),
            View::rows(&self.directions, self.components, self.dim).t(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_direction_of_largest_variance() {
        // Points spread along (1, 1, 0) with small noise across.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let data: Vec<f32> = (0..200)
            .flat_map(|_| {
                let t: f32 = rng.random_range(-5.0..5.0);
                let e: f32 = rng.random_range(-0.1..0.1);
                [t + e, t - e, 0.5 * e]
            })
            .collect();
        let pca = Pca::fit(&data, 200, 3, 2, 7);
        assert_eq!(pca.components(), 2);
        let first = &pca.directions[..3];
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((first[0].abs() - h).abs() < 0.01 && (first[1].abs() - h).abs() < 0.01);
        let projected = pca.project(&data, 200);
        let var = |c: usize| projected.chunks(2).map(|r| r[c] * r[c]).sum::<f32>() / 200.0;
        assert!(var(0) > 100.0 * var(1));
    }

    #[test]
    fn rank_deficient_data_keeps_only_real_components() {
        let data: Vec<f32> = (0..50)
            .flat_map(|i| [i as f32, 2.0 * i as f32, 0.0])
            .collect();
        assert_eq!(Pca::fit(&data, 50, 3, 3, 1).components(), 1);
        assert_eq!(Pca::fit(&[1.0; 12], 4, 3, 3, 1).components(), 1);
    }
}
