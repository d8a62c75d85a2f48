//! Noise: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle.
//!
//! The reference adds continuous noise to `x / 255` and truncates `clip(., 0, 1) * 255` back to
//! 8 bits. For Gaussian and shot noise the 8-bit result has a discrete law we can tabulate:
//! `floor(v + 255 * sigma * z)` is `v` plus an offset whose law does not depend on `v`, and a
//! Poisson draw has a law per 8-bit level. Those are drawn from alias tables, one 64-bit
//! random number per value. The per-value generator is Xoshiro256++, seeded from the caller's.

use image::RgbImage;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `uint8(clip(v, 0, 1) * 255)` in double precision, as the reference computes it.
fn to_byte(v: f64) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0) as u8
}

/// A fast generator for per-value draws, seeded from `rng`.
fn fast<R: Rng + ?Sized>(rng: &mut R) -> Xoshiro256PlusPlus {
    let mut seed = [0u8; 32];
    rng.fill(&mut seed[..]);
    Xoshiro256PlusPlus::from_seed(seed)
}

/// Walker's alias table over `offset..offset + n`: one 64-bit draw per sample.
struct Alias {
    threshold: Vec<u32>,
    alias: Vec<u32>,
    offset: i64,
}

impl Alias {
    /// A table for the probabilities `weights` (need not sum to 1) of `offset + i`.
    fn new(weights: &[f64], offset: i64) -> Self {
        let n = weights.len().max(1);
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w / total * n as f64).collect();
        scaled.resize(n, 0.0);
        let mut threshold = vec![u32::MAX; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            threshold[s] = (scaled[s] * 4_294_967_296.0).min(4_294_967_295.0) as u32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Alias {
            threshold,
            alias,
            offset,
        }
    }

    #[inline(always)]
    fn sample(&self, bits: u64) -> i64 {
        let column = (((bits >> 32) * self.threshold.len() as u64) >> 32) as usize;
        // Branch-free: the comparison is unpredictable.
        let keep = i64::from((bits as u32) < self.threshold[column]);
        let other = i64::from(self.alias[column]);
        self.offset + keep * column as i64 + (1 - keep) * other
    }
}

/// The standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2)
}

/// `x + N(0, scale)`: the 8-bit result is `v + floor(255 * scale * z)`, clipped.
pub(super) fn gaussian<R: Rng + ?Sized>(image: &RgbImage, scale: f64, rng: &mut R) -> RgbImage {
    let s = 255.0 * scale;
    let reach = (9.0 * s).ceil() as i64 + 1;
    let weights: Vec<f64> = (-reach..reach)
        .map(|d| phi((d + 1) as f64 / s) - phi(d as f64 / s))
        .collect();
    let table = Alias::new(&weights, -reach);
    let mut fast = fast(rng);
    let mut bytes = image.as_raw().clone();
    let mut bits = [0u64; 1024];
    for chunk in bytes.chunks_mut(bits.len()) {
        let bits = &mut bits[..chunk.len()];
        bits.iter_mut().for_each(|b| *b = fast.next_u64());
        for (v, &b) in chunk.iter_mut().zip(bits.iter()) {
            *v = (i64::from(*v) + table.sample(b)).clamp(0, 255) as u8;
        }
    }
    RgbImage::from_raw(image.width(), image.height(), bytes).unwrap_or_else(|| image.clone())
}

/// `x + x * N(0, scale)`.
pub(super) fn speckle<R: Rng + ?Sized>(image: &RgbImage, scale: f64, rng: &mut R) -> RgbImage {
    let mut fast = fast(rng);
    let bytes = image
        .as_raw()
        .iter()
        .map(|&v| {
            let x = f64::from(v) / 255.0;
            let z: f64 = StandardNormal.sample(&mut fast);
            to_byte(x + x * scale * z)
        })
        .collect();
    RgbImage::from_raw(image.width(), image.height(), bytes).unwrap_or_else(|| image.clone())
}

/// Each value replaced, with probability `amount`, by 0 or 1 (even odds).
pub(super) fn impulse<R: Rng + ?Sized>(image: &RgbImage, amount: f64, rng: &mut R) -> RgbImage {
    let kept: Vec<u8> = (0..=255u8).map(|v| to_byte(f64::from(v) / 255.0)).collect();
    // The low 53 bits decide the flip, the top bit salt or pepper.
    let cut = (amount.clamp(0.0, 1.0) * (1u64 << 53) as f64) as u64;
    let mut fast = fast(rng);
    let bytes = image
        .as_raw()
        .iter()
        .map(|&v| {
            let bits: u64 = fast.random();
            if bits & ((1 << 53) - 1) < cut {
                if bits >> 63 == 1 { 255 } else { 0 }
            } else {
                kept[usize::from(v)]
            }
        })
        .collect();
    RgbImage::from_raw(image.width(), image.height(), bytes).unwrap_or_else(|| image.clone())
}

/// `Poisson(x * rate) / rate`: each 8-bit level's count drawn from its own alias table.
pub(super) fn shot<R: Rng + ?Sized>(image: &RgbImage, rate: f64, rng: &mut R) -> RgbImage {
    let mut tables: Vec<Option<Alias>> = (0..256).map(|_| None).collect();
    let mut fast = fast(rng);
    let mut byte_of: Vec<u8> = Vec::new();
    let bytes = image
        .as_raw()
        .iter()
        .map(|&v| {
            let table = tables[usize::from(v)]
                .get_or_insert_with(|| Alias::new(&poisson_pmf(f64::from(v) / 255.0 * rate), 0));
            let k = table.sample(fast.random()) as usize;
            if k >= byte_of.len() {
                byte_of.extend((byte_of.len()..=k).map(|k| to_byte(k as f64 / rate)));
            }
            byte_of[k]
        })
        .collect();
    RgbImage::from_raw(image.width(), image.height(), bytes).unwrap_or_else(|| image.clone())
}

/// The probabilities of Poisson(`lambda`) from 0 until the tail is below 1e-16.
fn poisson_pmf(lambda: f64) -> Vec<f64> {
    if lambda <= 0.0 {
        return vec![1.0];
    }
    // Start from the mode in log space, so large rates do not underflow.
    let mode = lambda.floor();
    let log_p_mode = mode * lambda.ln() - lambda - ln_factorial(mode);
    let top = (lambda + 12.0 * lambda.sqrt() + 20.0).ceil() as usize;
    let mut pmf = vec![0.0f64; top + 1];
    let m = mode as usize;
    pmf[m] = log_p_mode.exp();
    for k in (0..m).rev() {
        pmf[k] = pmf[k + 1] * (k + 1) as f64 / lambda;
    }
    for k in m + 1..=top {
        pmf[k] = pmf[k - 1] * lambda / k as f64;
    }
    pmf
}

/// ln(n!) by Stirling's series (exact to double precision for n >= 10, a product below).
fn ln_factorial(n: f64) -> f64 {
    if n < 10.0 {
        return (1..=n as u64).map(|k| (k as f64).ln()).sum();
    }
    let x = n + 1.0;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x.powi(3))
        + 1.0 / (1260.0 * x.powi(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(pmf: &[f64], offset: i64) -> (f64, f64) {
        let total: f64 = pmf.iter().sum();
        let mean: f64 = pmf
            .iter()
            .enumerate()
            .map(|(k, p)| (k as i64 + offset) as f64 * p)
            .sum::<f64>()
            / total;
        let second: f64 = pmf
            .iter()
            .enumerate()
            .map(|(k, p)| ((k as i64 + offset) as f64).powi(2) * p)
            .sum::<f64>()
            / total;
        (mean, second - mean * mean)
    }

    #[test]
    fn poisson_tables_have_the_right_mean_and_variance() {
        for lambda in [0.3, 3.0, 25.0, 60.0, 500.0] {
            let (mean, var) = moments(&poisson_pmf(lambda), 0);
            assert!(
                (mean - lambda).abs() < 1e-6 * lambda.max(1.0),
                "{lambda}: mean {mean}"
            );
            assert!(
                (var - lambda).abs() < 1e-4 * lambda.max(1.0),
                "{lambda}: variance {var}"
            );
        }
    }

    #[test]
    fn alias_tables_draw_their_law() {
        let weights = [0.1, 0.0, 0.5, 0.15, 0.25];
        let table = Alias::new(&weights, -2);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut counts = [0usize; 5];
        let n = 200_000;
        for _ in 0..n {
            counts[(table.sample(rng.random()) + 2) as usize] += 1;
        }
        for (c, w) in counts.iter().zip(weights) {
            let p = *c as f64 / n as f64;
            assert!((p - w).abs() < 0.005, "{counts:?}");
        }
    }

    #[test]
    fn gaussian_offsets_have_the_normal_spread() {
        let s: f64 = 255.0 * 0.18;
        let reach = (9.0 * s).ceil() as i64 + 1;
        let weights: Vec<f64> = (-reach..reach)
            .map(|d| phi((d + 1) as f64 / s) - phi(d as f64 / s))
            .collect();
        let (mean, var) = moments(&weights, -reach);
        // floor(s z) has mean -1/2 and variance s^2 + 1/12.
        assert!((mean + 0.5).abs() < 1e-6, "{mean}");
        assert!((var - (s * s + 1.0 / 12.0)).abs() < 1e-3 * s * s, "{var}");
    }
}
