//! What a stream predicts with: the model it started with, swapped for the registry's
//! champion between batches when the champion moves.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Champion, Registry};
use crate::error::{Error, Result};
use crate::predict::Predictor;

/// Where and how often a stream looks for a new champion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChampionWatch {
    /// The registry whose champion is served.
    pub registry: Registry,
    /// Least time between two looks at the pointer (it is also looked at before the first
    /// batch).
    pub interval: Duration,
    /// When the champion cannot be served at start (its package deleted or of another
    /// version than the pointer says, the store down), serve the stream's own model instead
    /// of refusing to start (default `false`: a stream asked to follow a champion serves the
    /// champion or nothing).
    pub fall_back_to_own_model: bool,
}

impl ChampionWatch {
    /// Watches `registry` every 2 seconds; refuses to start without its champion.
    pub fn new(registry: Registry) -> Self {
        ChampionWatch {
            registry,
            interval: Duration::from_secs(2),
            fall_back_to_own_model: false,
        }
    }
}

/// Whether a stream serves the champion it follows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ChampionHealth {
    /// The stream follows no registry.
    #[default]
    NotWatched,
    /// The registry has no champion yet: the stream serves its own model.
    NoChampion,
    /// The stream serves the champion.
    Serving,
    /// The champion cannot be served (its package is missing, unreadable, of another version
    /// than the pointer names or of other classes, or the pointer cannot be read): the stream
    /// goes on with the model it has and looks again at every interval.
    Unavailable {
        /// The champion's version (empty when the pointer itself could not be read).
        version: String,
        /// Why.
        reason: String,
    },
}

impl ChampionHealth {
    /// The state's name (`not_watched`, `no_champion`, `serving`, `unavailable`).
    pub fn name(&self) -> &'static str {
        match self {
            ChampionHealth::NotWatched => "not_watched",
            ChampionHealth::NoChampion => "no_champion",
            ChampionHealth::Serving => "serving",
            ChampionHealth::Unavailable { .. } => "unavailable",
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
    reported: HashSet<String>,
    health: ChampionHealth,
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
            health: if watch.is_some() {
                ChampionHealth::NoChampion
            } else {
                ChampionHealth::NotWatched
            },
            watch,
            last_look: None,
            refused: HashSet::new(),
            reported: HashSet::new(),
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

    /// Whether the stream serves the champion it follows (as of the last look).
    pub fn health(&self) -> &ChampionHealth {
        &self.health
    }

    /// The first look, before the first batch: like [`ServingModel::refresh`], but a champion
    /// that cannot be served is an error (naming why) unless the watch allows falling back to
    /// the stream's own model. Without a watch, or before the registry's first champion, the
    /// stream's own model serves.
    pub fn start(&mut self) -> Result<()> {
        self.refresh();
        match (&self.health, &self.watch) {
            (ChampionHealth::Unavailable { version, reason }, Some(watch))
                if !watch.fall_back_to_own_model =>
            {
                Err(Error::invalid(
                    "champion",
                    format!(
                        "the champion {version} of {} cannot be served ({reason}); not serving \
                         another model in its place (allow it with the fall-back setting)",
                        watch.registry.uri()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Looks at the champion pointer when due and swaps to the champion when it is another
    /// model; returns whether it swapped. Never fails: an unreadable pointer or package, a
    /// package of another version than the pointer names or with other classes than the
    /// stream's, leaves the current model serving, [`ServingModel::health`] saying why (logged
    /// once per champion); it is tried again at the next look.
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
            Ok(None) => {
                self.health = ChampionHealth::NoChampion;
                return false;
            }
            Err(e) => {
                self.unavailable("", format!("the pointer cannot be read: {}", e.report()));
                return false;
            }
        };
        if champion.version == self.version() {
            self.health = ChampionHealth::Serving;
            return false;
        }
        if self.refused.contains(&champion.version) {
            return false;
        }
        match self.load(&champion) {
            Ok(predictor) => {
                log::info!(
                    "swapped model {} for champion {} (generation {})",
                    self.version(),
                    champion.version,
                    champion.generation
                );
                self.swapped = Some((predictor, champion.version));
                self.health = ChampionHealth::Serving;
                self.swaps += 1;
                true
            }
            Err((permanent, reason)) => {
                if permanent {
                    self.refused.insert(champion.version.clone());
                }
                self.unavailable(&champion.version, reason);
                false
            }
        }
    }

    /// The champion's predictor, or why it cannot serve (`true`: it never will, e.g. other
    /// classes; `false`: perhaps later, e.g. a store outage or a package put back).
    fn load(&self, champion: &Champion) -> std::result::Result<Predictor, (bool, String)> {
        let Some(watch) = &self.watch else {
            return Err((true, "no registry".into()));
        };
        let uri = watch.registry.package_uri(champion);
        let (predictor, metadata) = self
            .predictor()
            .load_like(&uri)
            .map_err(|e| (false, format!("{uri} does not load: {}", e.report())))?;
        if metadata.version() != champion.version {
            return Err((
                false,
                format!(
                    "{uri} holds version {}, the pointer names {} (generation {})",
                    metadata.version(),
                    champion.version,
                    champion.generation
                ),
            ));
        }
        if predictor.classes() != self.initial.classes() {
            return Err((
                true,
                format!(
                    "{uri} has classes {:?}, the stream serves {:?}",
                    predictor.classes().names(),
                    self.initial.classes().names()
                ),
            ));
        }
        Ok(predictor)
    }

    fn unavailable(&mut self, version: &str, reason: String) {
        if self.reported.insert(format!("{version}\n{reason}")) {
            log::error!(
                "champion {version} not served ({reason}); serving {} meanwhile",
                self.version()
            );
        }
        self.health = ChampionHealth::Unavailable {
            version: version.to_string(),
            reason,
        };
    }
}
