//! Promotion: a challenger replaces the champion only when it is better on the held-out rows
//! of both the old and the new data, and no more than a margin worse on the old ones.

use serde::{Deserialize, Serialize};

use super::registry::now_seconds;
use super::{Lineage, Registry, Scores};
use crate::artifact::load_parts;
use crate::error::{Error, Result};

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
    fn validate(&self) -> Result<()> {
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
    /// Why (the policy's objection, a lost race, or the gain).
    pub reason: String,
    /// The pointer generation it got, when promoted.
    pub generation: Option<u64>,
    /// The parent's and the challenger's scores on the same held-out rows.
    pub parent_scores: Scores,
    /// The challenger's.
    pub scores: Scores,
    /// When, in seconds since the Unix epoch.
    pub decided_at: f64,
}

/// Judges the adapted package at `package_uri` (its metadata must carry a [`Lineage`]) and,
/// when the policy allows, makes it the champion of `registry`. The challenger must have been
/// adapted from the current champion: one adapted from an older champion (the pointer moved
/// meanwhile, e.g. another adapter won) is rejected, as is the loser of a simultaneous
/// promotion. Every decision is recorded in the registry; re-running a decided challenger
/// returns the recorded decision.
pub fn promote(
    registry: &Registry,
    package_uri: &str,
    policy: &PromotionPolicy,
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
    if let Some(current) = champion.as_ref().filter(|c| c.version == version) {
        // Promoted by a run that died before recording its decision.
        return Ok(decision_for(
            &version,
            package_uri,
            &lineage,
            true,
            "already the champion".into(),
            Some(current.generation),
        ));
    }
    let Some(champion) = champion else {
        return Err(Error::invalid(
            "registry",
            format!("{} has no champion to challenge", registry.uri()),
        ));
    };
    let decision = if champion.version != lineage.parent_version {
        decision_for(
            &version,
            package_uri,
            &lineage,
            false,
            format!(
                "adapted from {}, but the champion is now {} (generation {})",
                lineage.parent_version, champion.version, champion.generation
            ),
            None,
        )
    } else if let Some(objection) = policy.objection(&lineage.parent_scores, &lineage.scores) {
        decision_for(&version, package_uri, &lineage, false, objection, None)
    } else {
        let reason = format!(
            "better on old + new held-out rows: {:.1}% vs {:.1}% (old {:.1}% vs {:.1}%, new {:.1}% vs {:.1}%)",
            100.0 * lineage.scores.union,
            100.0 * lineage.parent_scores.union,
            100.0 * lineage.scores.old,
            100.0 * lineage.parent_scores.old,
            100.0 * lineage.scores.new,
            100.0 * lineage.parent_scores.new,
        );
        match registry.replace_champion(Some(&champion), package_uri, &reason)? {
            Ok(new) => decision_for(
                &version,
                package_uri,
                &lineage,
                true,
                reason,
                Some(new.generation),
            ),
            Err(winner) => decision_for(
                &version,
                package_uri,
                &lineage,
                false,
                format!(
                    "lost the race: {} became the champion first (generation {})",
                    winner.version, winner.generation
                ),
                None,
            ),
        }
    };
    registry.record_decision(&decision)?;
    Ok(decision)
}

fn decision_for(
    version: &str,
    package_uri: &str,
    lineage: &Lineage,
    promoted: bool,
    reason: String,
    generation: Option<u64>,
) -> Decision {
    Decision {
        challenger: version.to_string(),
        package: package_uri.to_string(),
        parent: lineage.parent_version.clone(),
        promoted,
        reason,
        generation,
        parent_scores: lineage.parent_scores,
        scores: lineage.scores,
        decided_at: now_seconds(),
    }
}
