//! Where an adapted model came from: its parent, how its replay rows were chosen, the data it
//! saw (hashes) and both models' scores on the same held-out rows. Stored in the package
//! metadata; written by the closed loop's adaptation and read by promotion.

use serde::{Deserialize, Serialize};

use crate::select::{Budget, Strategy};

/// Accuracies of one model on the held-out rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// On the held-out old rows.
    #[serde(with = "crate::json_float")]
    pub old: f64,
    /// On the held-out new rows.
    #[serde(with = "crate::json_float")]
    pub new: f64,
    /// On both together.
    #[serde(with = "crate::json_float")]
    pub union: f64,
}

/// SHA-256 of the JSON-lines text of each set an adaptation used (after de-duplication).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHashes {
    /// The new rows learnt from.
    pub new_train: String,
    /// The new rows held out.
    pub new_holdout: String,
    /// The old rows replay was chosen from.
    pub old_pool: String,
    /// The old rows held out.
    pub old_holdout: String,
}

/// Where a model came from: stored in its package ([`super::PackageMetadata`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// Version of the model it was adapted from.
    pub parent_version: String,
    /// The champion generation that model held when the adaptation started, when it came
    /// from a registry (promotion compares generations, not versions: a model promoted again
    /// later is another generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_generation: Option<u64>,
    /// The replay strategy.
    pub strategy: Strategy,
    /// The replay budget.
    pub budget: Budget,
    /// Seed of the splits, the selection and the training.
    pub seed: u64,
    /// Rows of each set: new train, new holdout, old pool, old holdout, replay chosen.
    pub rows: LineageRows,
    /// The data's hashes.
    pub data_sha256: DataHashes,
    /// The parent on the held-out rows.
    pub parent_scores: Scores,
    /// This model on the held-out rows.
    pub scores: Scores,
    /// Where the new rows came from (e.g. `stream cargo_prediction, cargo ids 1201..=1500`),
    /// when the caller says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Row counts of an adaptation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageRows {
    /// New rows trained on.
    pub new_train: usize,
    /// New rows held out.
    pub new_holdout: usize,
    /// Old rows replay was chosen from.
    pub old_pool: usize,
    /// Old rows held out.
    pub old_holdout: usize,
    /// Replay rows chosen.
    pub replay: usize,
}
