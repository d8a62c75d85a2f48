//! What a stream predicts with: the model it started with, swapped for the registry's
//! champion between batches when the champion moves.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Registry;
use crate::predict::Predictor;

/// Where and how often a stream looks for a new champion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChampionWatch {
    /// The registry whose champion is served.
    pub registry: Registry,
    /// Least time between two looks at the pointer (it is also looked at before the first
    /// batch).
    pub interval: Duration,
}

impl ChampionWatch {
    /// Watches `registry` every 2 seconds.
    pub fn new(registry: Registry) -> Self {
        ChampionWatch {
            registry,
            interval: Duration::from_secs(2),
        }
    }
}

/// The model a stream serves and its version; [`ServingModel::refresh`] swaps it for the
/// champion of a watched registry. A swap happens only between batches, so each batch (and
/// each prediction row) is made by exactly one model, whose version it records.
#[derive(Debug)]
pub struct ServingModel<'a> {
    initial: &'a Predictor,
    initial_version: String,
    swapped: Option<(Predictor, String)>,
    watch: Option<ChampionWatch>,
    last_look: Option<Instant>,
    refused: HashSet<String>,
    failed: HashSet<String>,
    swaps: u64,
}

impl<'a> ServingModel<'a> {
    /// Serves `predictor` (of `version`); with `watch`, the registry's champion once it is
    /// another model.
    pub fn new(predictor: &'a Predictor, version: &str, watch: Option<ChampionWatch>) -> Self {
        ServingModel {
            initial: predictor,
            initial_version: version.to_string(),
            swapped: None,
            watch,
            last_look: None,
            refused: HashSet::new(),
            failed: HashSet::new(),
            swaps: 0,
        }
    }

    /// The model serving now.
    pub fn predictor(&self) -> &Predictor {
        self.swapped.as_ref().map_or(self.initial, |(p, _)| p)
    }

    /// Its version.
    pub fn version(&self) -> &str {
        self.swapped
            .as_ref()
            .map_or(self.initial_version.as_str(), |(_, v)| v.as_str())
    }

    /// Swaps done so far.
    pub fn swaps(&self) -> u64 {
        self.swaps
    }

    /// Looks at the champion pointer when due and swaps to the champion when it is another
    /// model; returns whether it swapped. Never fails: an unreadable pointer or package is
    /// tried again at the next look (logged), a champion with other classes than the stream's
    /// is refused (logged once); meanwhile the current model goes on.
    pub fn refresh(&mut self) -> bool {
        let Some(watch) = &self.watch else {
            return false;
        };
        if self.last_look.is_some_and(|t| t.elapsed() < watch.interval) {
            return false;
        }
        self.last_look = Some(Instant::now());
        let champion = match watch.registry.champion() {
            Ok(Some(champion)) => champion,
            Ok(None) => return false,
            Err(e) => {
                log::warn!("champion pointer of {}: {e}", watch.registry.uri());
                return false;
            }
        };
        if champion.version == self.version() || self.refused.contains(&champion.version) {
            return false;
        }
        let uri = watch.registry.package_uri(&champion);
        let loaded = self.predictor().load_like(&uri);
        match loaded {
            Ok((predictor, _)) if predictor.classes() != self.initial.classes() => {
                log::error!(
                    "champion {} ({uri}) has classes {:?}, the stream serves {:?}; not swapped",
                    champion.version,
                    predictor.classes().names(),
                    self.initial.classes().names()
                );
                self.refused.insert(champion.version);
                false
            }
            Ok((predictor, metadata)) => {
                log::info!(
                    "swapped model {} for champion {} (generation {})",
                    self.version(),
                    metadata.version(),
                    champion.generation
                );
                self.swapped = Some((predictor, metadata.version().to_string()));
                self.swaps += 1;
                true
            }
            Err(e) => {
                // Perhaps passing (a store outage): tried again at the next look, logged once.
                if self.failed.insert(champion.version.clone()) {
                    log::error!(
                        "champion {} ({uri}) does not load: {e}; not swapped, tried again every {:?}",
                        champion.version,
                        watch.interval
                    );
                }
                false
            }
        }
    }
}
