//! Seeded train/test splits.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::Manifest;
use crate::error::{Error, Result};

/// How to split a manifest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    /// Fraction of samples in the test part, in `(0, 1)` (default 0.2, the original's).
    pub test_fraction: f64,
    /// Seed of the shuffle (default 2022, the original's).
    pub seed: u64,
    /// Split each class separately so both parts keep the class proportions (default off, as
    /// the original).
    pub stratified: bool,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            test_fraction: 0.2,
            seed: 2022,
            stratified: false,
        }
    }
}

/// The two parts of a split; each keeps the manifest's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training samples.
    pub train: Manifest,
    /// Test samples.
    pub test: Manifest,
}

/// Number of test samples for `n` samples: `ceil(n * fraction)`, as scikit-learn counts, but
/// leaving at least one training sample when `n >= 2`.
fn test_count(n: usize, fraction: f64) -> usize {
    let k = (n as f64 * fraction).ceil() as usize;
    if n >= 2 { k.min(n - 1) } else { k.min(n) }
}

/// Splits `manifest` into train and test parts with a seeded shuffle. The same seed and
/// manifest always give the same parts.
pub fn split(manifest: &Manifest, options: &SplitOptions) -> Result<Split> {
    let f = options.test_fraction;
    if !(f > 0.0 && f < 1.0) {
        return Err(Error::invalid(
            "test_fraction",
            format!("must be between 0 and 1 (exclusive), got {f}"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut is_test = vec![false; manifest.len()];
    let groups: Vec<Vec<usize>> = if options.stratified {
        let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, s) in manifest.samples.iter().enumerate() {
            by_class.entry(s.target).or_default().push(i);
        }
        by_class.into_values().collect()
    } else {
        vec![(0..manifest.len()).collect()]
    };
    for mut group in groups {
        group.shuffle(&mut rng);
        for &i in &group[..test_count(group.len(), f)] {
            is_test[i] = true;
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (sample, test_flag) in manifest.samples.iter().zip(is_test) {
        if test_flag {
            test.push(sample.clone());
        } else {
            train.push(sample.clone());
        }
    }
    Ok(Split {
        train: Manifest::new(train),
        test: Manifest::new(test),
    })
}
