//! Predicting a batch of source rows: each row becomes a prediction or an error with a reason.

use std::path::{Path, PathBuf};

use super::sink::{ErrorRow, PredictionRow};
use super::tail::SourceRow;
use crate::error::Result;
use crate::paths::resolve_under;
use crate::predict::Predictor;

/// What a batch of rows became.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchOutcome {
    /// Rows predicted.
    pub predictions: Vec<PredictionRow>,
    /// Rows that could not be predicted.
    pub errors: Vec<ErrorRow>,
    /// Predicted rows whose true `target` is not a class of the model (they are predicted all
    /// the same; live accuracy counts them as wrong).
    pub unknown_targets: u64,
    /// Each predicted row's id, backbone features and softmax outputs, in id order (what the
    /// drift monitor watches).
    pub monitored: Vec<(i32, Vec<f32>, Vec<f32>)>,
}

/// `image_path` under `root`, or why it is refused: a NULL or empty path, or one that leaves
/// the root (see [`crate::paths::resolve_under`], the rule every entry point shares).
pub fn resolve_image_path(
    root: &Path,
    image_path: Option<&str>,
) -> std::result::Result<PathBuf, String> {
    let Some(relative) = image_path else {
        return Err("image_path is NULL".into());
    };
    resolve_under(root, relative).map_err(|e| e.to_string())
}

/// Predicts `rows` (images under `root`) with `predictor`. A row whose image is refused by
/// the path rule, missing or undecodable becomes an error; only a model failure is an `Err`.
/// Images are opened by [`Predictor::predict_under`], which reads only what the rule checked.
pub fn predict_rows(
    predictor: &Predictor,
    root: &Path,
    rows: &[SourceRow],
) -> Result<BatchOutcome> {
    let mut outcome = BatchOutcome::default();
    let mut relatives = Vec::with_capacity(rows.len());
    let mut readable = Vec::with_capacity(rows.len());
    for row in rows {
        match row.image_path.as_deref() {
            Some(relative) => {
                relatives.push(relative);
                readable.push(row);
            }
            None => outcome
                .errors
                .push(error_row(row, "image_path is NULL".into())),
        }
    }
    let classes = predictor.classes().len();
    for (row, result) in readable
        .into_iter()
        .zip(predictor.predict_under(root, &relatives)?)
    {
        match result {
            Ok((p, features)) => {
                if row.target.is_none_or(|t| t < 0 || t as usize >= classes) {
                    outcome.unknown_targets += 1;
                }
                outcome.predictions.push(PredictionRow {
                    id: row.id,
                    timestamp: row.timestamp.clone(),
                    target: p.class_id as i32,
                    probability: p.confidence(),
                });
                outcome.monitored.push((row.id, features, p.probabilities));
            }
            Err(e) => outcome.errors.push(error_row(row, e.to_string())),
        }
    }
    outcome.errors.sort_by_key(|e| e.id);
    outcome.monitored.sort_by_key(|m| m.0);
    Ok(outcome)
}

fn error_row(row: &SourceRow, reason: String) -> ErrorRow {
    ErrorRow {
        id: row.id,
        timestamp: row.timestamp.clone(),
        image_path: row.image_path.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_escaping_paths_are_refused() {
        let root = std::env::temp_dir();
        assert_eq!(
            resolve_image_path(&root, None).unwrap_err(),
            "image_path is NULL"
        );
        for bad in ["../etc/passwd", "/etc/passwd", "brick/../../x.jpg", ""] {
            let e = resolve_image_path(&root, Some(bad)).unwrap_err();
            assert!(e.contains("image_path"), "{bad}: {e}");
        }
        let fine = resolve_image_path(&root, Some("./brick/a b'c.jpg")).unwrap();
        assert!(fine.ends_with("brick/a b'c.jpg"), "{fine:?}");
    }
}
