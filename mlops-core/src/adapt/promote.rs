//! Promotion: a challenger replaces the champion only when it is better on the held-out rows
//! of both the old and the new data, and no more than a margin worse on the old ones.
//!
//! [`promote_rescored`] scores both models again on the held-out rows before judging, checking
//! that they are the rows the challenger's lineage names (by hash): what to use for a package
//! that came from elsewhere (a shared bucket), whose stored scores are only a claim.
//! [`promote`] judges on the scores in the lineage: for a challenger this process has just
//! made (the closed loop's adapter does that, and its attempts are recorded with the scores).

use serde::{Deserialize, Serialize};

use super::registry::now_seconds;
use super::{Champion, HeldOut, Lineage, Registry, Scores, scores, unique_paths};
use crate::artifact::{ModelPackage, load_parts};
use crate::backend::ComputeBackend;
use crate::control::Control;
use crate::dataset::Manifest;
use crate::error::{Error, Result};
use crate::infer::FeatureExtractor;
use crate::seed::sha256_hex;
use crate::train::features::Rows;
use crate::train::{ImageSet, extractor_set_features};

/// When a challenger may replace the champion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromotionPolicy {
    /// How much accuracy on the held-out old rows the challenger may lose (default 0.02).
    pub margin: f64,
    /// How much better on both held-out sets together it must be (default 0: strictly better).
    pub min_gain: f64,
}

impl Default for PromotionPolicy {
    fn default() -> Self {
        PromotionPolicy {
            margin: 0.02,
            min_gain: 0.0,
        }
    }
}

impl PromotionPolicy {
    /// Refuses a margin or a gain outside [0, 1].
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.margin) {
            return Err(Error::invalid(
                "margin",
                format!("must be in [0, 1], got {}", self.margin),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_gain) {
            return Err(Error::invalid(
                "min_gain",
                format!("must be in [0, 1], got {}", self.min_gain),
            ));
        }
        Ok(())
    }

    /// Why `challenger` may not replace `champion` (scored on the same rows), or `None`.
    pub fn objection(&self, champion: &Scores, challenger: &Scores) -> Option<String> {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        if challenger.union <= champion.union + self.min_gain {
            return Some(format!(
                "not better on old + new held-out rows: {} vs the champion's {}",
                pct(challenger.union),
                pct(champion.union)
            ));
        }
        if challenger.old < champion.old - self.margin {
            return Some(format!(
                "forgets the old data: {} on old held-out rows vs the champion's {} (margin {})",
                pct(challenger.old),
                pct(champion.old),
                pct(self.margin)
            ));
        }
        None
    }
}

/// What happened to a challenger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The challenger's version.
    pub challenger: String,
    /// Its package URI.
    pub package: String,
    /// The champion it was judged against.
    pub parent: String,
    /// Whether it became the champion.
    pub promoted: bool,
    /// Why (the policy's objection, a stale parent, a lost race, or the gain).
    pub reason: String,
    /// The pointer generation it got, when promoted.
    pub generation: Option<u64>,
    /// The parent's and the challenger's scores on the same held-out rows.
    pub parent_scores: Scores,
    /// The challenger's.
    pub scores: Scores,
    /// Whether the scores were computed again at promotion ([`promote_rescored`]) rather than
    /// read from the lineage.
    #[serde(default)]
    pub rescored: bool,
    /// When, in seconds since the Unix epoch.
    pub decided_at: f64,
}

/// Judges the adapted package at `package_uri` on the scores its [`Lineage`] carries and,
/// when the policy allows, makes it the champion of `registry`. The challenger must have been
/// adapted from the current champion: one adapted from another generation (the pointer moved
/// meanwhile, even back to the same model) is rejected, as is the loser of a simultaneous
/// promotion. Every decision is recorded in the registry; re-running a decided challenger
/// returns the recorded decision. The lineage's scores are trusted: use
/// [`promote_rescored`] for packages this process did not make.
pub fn promote(
    registry: &Registry,
    package_uri: &str,
    policy: &PromotionPolicy,
) -> Result<Decision> {
    judge(registry, package_uri, policy, None)
}

/// [`promote`], with both models scored again on `held_out` (the rows the challenger's
/// lineage names: their hashes must match) before judging; the policy sees the new scores, and
/// a lineage that claimed others cannot sneak a challenger in. The backbone runs on the fast
/// path; each model's package is loaded in full (checksums verified).
pub fn promote_rescored(
    registry: &Registry,
    package_uri: &str,
    policy: &PromotionPolicy,
    held_out: &HeldOut,
) -> Result<Decision> {
    judge(registry, package_uri, policy, Some(held_out))
}

fn judge(
    registry: &Registry,
    package_uri: &str,
    policy: &PromotionPolicy,
    held_out: Option<&HeldOut>,
) -> Result<Decision> {
    policy.validate()?;
    let (metadata, _) = load_parts(package_uri)?;
    let version = metadata.version().to_string();
    let lineage: Lineage = metadata.lineage.clone().ok_or_else(|| {
        Error::invalid(
            "package",
            format!("{package_uri} has no lineage (only adapted models can be promoted this way)"),
        )
    })?;
    if let Some(earlier) = registry.decision(&version)? {
        return Ok(earlier);
    }
    let champion = registry.champion()?;
    let verdict = |promoted, reason, generation| Decision {
        challenger: version.clone(),
        package: package_uri.to_string(),
        parent: lineage.parent_version.clone(),
        promoted,
        reason,
        generation,
        parent_scores: lineage.parent_scores,
        scores: lineage.scores,
        rescored: false,
        decided_at: now_seconds(),
    };
    let decision = match champion {
        None => {
            return Err(Error::invalid(
                "registry",
                format!("{} has no champion to challenge", registry.uri()),
            ));
        }
        // Promoted by a run that died before recording its decision.
        Some(current) if current.version == version => verdict(
            true,
            "already the champion".into(),
            Some(current.generation),
        ),
        Some(current) if !adapted_from(&lineage, &current) => verdict(
            false,
            format!(
                "adapted from {} (generation {}), but the champion is now {} (generation {})",
                lineage.parent_version,
                lineage
                    .parent_generation
                    .map_or_else(|| "unknown".to_string(), |g| g.to_string()),
                current.version,
                current.generation
            ),
            None,
        ),
        Some(current) => {
            let (parent_scores, scores) = match held_out {
                Some(rows) => rescore(registry, &current, package_uri, &lineage, rows)?,
                None => (lineage.parent_scores, lineage.scores),
            };
            let mut decision = match policy.objection(&parent_scores, &scores) {
                Some(objection) => verdict(false, objection, None),
                None => {
                    let reason = gain(&parent_scores, &scores);
                    match registry.replace_champion(Some(&current), package_uri, &reason)? {
                        Ok(new) => verdict(true, reason, Some(new.generation)),
                        Err(winner) => verdict(
                            false,
                            format!(
                                "lost the race: {} became the champion first (generation {})",
                                winner.version, winner.generation
                            ),
                            None,
                        ),
                    }
                }
            };
            decision.parent_scores = parent_scores;
            decision.scores = scores;
            decision.rescored = held_out.is_some();
            decision
        }
    };
    registry.record_decision(&decision)?;
    Ok(decision)
}

/// Whether `lineage`'s parent is `champion`: the same generation when the lineage knows it
/// (a model promoted again later is a new generation), otherwise the same version.
fn adapted_from(lineage: &Lineage, champion: &Champion) -> bool {
    lineage.parent_version == champion.version
        && lineage
            .parent_generation
            .is_none_or(|g| g == champion.generation)
}

fn gain(parent: &Scores, challenger: &Scores) -> String {
    format!(
        "better on old + new held-out rows: {:.1}% vs {:.1}% (old {:.1}% vs {:.1}%, new {:.1}% vs {:.1}%)",
        100.0 * challenger.union,
        100.0 * parent.union,
        100.0 * challenger.old,
        100.0 * parent.old,
        100.0 * challenger.new,
        100.0 * parent.new,
    )
}

/// The champion's and the challenger's scores on `rows`, once they are shown to be the rows
/// the lineage names.
fn rescore(
    registry: &Registry,
    champion: &Champion,
    package_uri: &str,
    lineage: &Lineage,
    rows: &HeldOut,
) -> Result<(Scores, Scores)> {
    let sha = |m: &Manifest| sha256_hex(unique_paths(m).to_jsonl().as_bytes());
    for (name, manifest, expected) in [
        ("old", &rows.old, &lineage.data_sha256.old_holdout),
        ("new", &rows.new, &lineage.data_sha256.new_holdout),
    ] {
        if &sha(manifest) != expected {
            return Err(Error::invalid(
                "held_out",
                format!(
                    "the held-out {name} rows given are not the ones {package_uri} was scored on (their hash differs from its lineage's)"
                ),
            ));
        }
    }
    let device = ComputeBackend::Flex.device();
    let challenger = ModelPackage::load(package_uri, &device)?;
    let parent = ModelPackage::load(&registry.package_uri(champion), &device)?;
    let classes = challenger.metadata.classes.len();
    let control = Control::new();
    let mut cached: Option<(String, [Rows; 3])> = None;
    let mut score = |package: &ModelPackage| -> Result<Scores> {
        let extractor = FeatureExtractor::new(&package.model.backbone, &device)?;
        if cached
            .as_ref()
            .is_none_or(|(id, _)| id != extractor.identity())
        {
            let features = |root: &std::path::Path, manifest: &Manifest| -> Result<Rows> {
                let (features, targets, _) = extractor_set_features(
                    &extractor,
                    &ImageSet { root, manifest },
                    &package.metadata.preprocess,
                    None,
                    &control,
                )?;
                Ok(Rows { features, targets })
            };
            let old = features(&rows.old_root, &unique_paths(&rows.old))?;
            let new = features(&rows.new_root, &unique_paths(&rows.new))?;
            let both = Rows::concat(&[&old, &new]);
            cached = Some((extractor.identity().to_string(), [old, new, both]));
        }
        let [old, new, both] = &cached
            .as_ref()
            .map(|(_, rows)| rows)
            .ok_or_else(|| Error::internal("rescore", "no features"))?;
        Ok(scores(&package.model.head, [old, new, both], classes, &device)?.0)
    };
    let parent_scores = score(&parent)?;
    let challenger_scores = score(&challenger)?;
    Ok((parent_scores, challenger_scores))
}
