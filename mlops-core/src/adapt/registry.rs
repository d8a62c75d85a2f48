//! The champion pointer: which package serves, kept in an object store (a folder, S3 or
//! memory) beside the packages.
//!
//! Every promotion writes a new object `champion/<generation>.json` (the generation as 20
//! digits) with a create-only put (a no-clobber link on a folder, `If-None-Match: *` on S3, a
//! locked map in memory): of two promoters that read the same generation, exactly one creates
//! the next, the other learns it lost. The champion is the highest generation; only objects
//! named exactly like a generation count (a stray `notes.json` is not a champion). A reader
//! never sees half a pointer, and a promoter killed at any point leaves either the old champion
//! or the new one. The history of champions stays readable; decisions about challengers
//! (promoted or rejected, with the reason) are kept under `decisions/`.
//!
//! A champion's package always lives inside the registry, at `models/<version>`: a package
//! promoted from elsewhere (a folder that may be retrained later, a shared bucket) is copied
//! there first, so the pointer names bytes that cannot change under it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Decision;
use crate::artifact::store::{get_object_async, list_names_async, put_new_async, put_object_async};
use crate::artifact::{PackageMetadata, copy_package_async, load_parts_async};
use crate::blocking::block_on;
use crate::error::{Error, Result};

const CHAMPION: &str = "champion";
const DECISIONS: &str = "decisions";
const MODELS: &str = "models";

/// One generation of the champion pointer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Champion {
    /// 1 for the first champion, one more at every promotion.
    pub generation: u64,
    /// The package: relative to the registry when it lies inside it (`models/<version>`),
    /// otherwise the URI it was promoted with (a local path made absolute).
    pub package: String,
    /// The package's version ([`PackageMetadata::version`]).
    pub version: String,
    /// The champion it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Why it was promoted.
    pub reason: String,
    /// When, in seconds since the Unix epoch.
    pub promoted_at: f64,
}

/// A registry of models at a URI (folder, `file://`, `s3://bucket/prefix`, `memory://name`):
/// packages under `models/`, the champion pointer under `champion/`, decisions under
/// `decisions/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    uri: String,
}

pub(crate) fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn generation_name(generation: u64) -> String {
    format!("{generation:020}.json")
}

/// The generation an object under `champion/` stands for, if its name is exactly one
/// ([`generation_name`]); anything else there is ignored.
fn generation_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&g| g > 0)
}

fn registry_error(uri: &str, reason: impl std::fmt::Display) -> Error {
    Error::Package {
        uri: uri.to_string(),
        reason: reason.to_string(),
        source: None,
    }
}

impl Registry {
    /// The registry at `uri` (nothing is read or created yet).
    pub fn new(uri: impl Into<String>) -> Self {
        let uri: String = uri.into();
        Registry {
            uri: uri.trim_end_matches('/').to_string(),
        }
    }

    /// Its URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Where a package of `version` goes inside the registry: `<uri>/models/<version>`.
    pub fn model_uri(&self, version: &str) -> String {
        format!("{}/{MODELS}/{version}", self.uri)
    }

    /// The URI of a champion's package.
    pub fn package_uri(&self, champion: &Champion) -> String {
        if champion.package.starts_with(&format!("{MODELS}/")) {
            format!("{}/{}", self.uri, champion.package)
        } else {
            champion.package.clone()
        }
    }

    /// The package at `package_uri` as the registry keeps it: its name relative to the
    /// registry (`models/<version>`, copied there when it lies elsewhere) and its metadata.
    async fn inside(&self, package_uri: &str) -> Result<(String, PackageMetadata)> {
        let package_uri = package_uri.trim_end_matches('/');
        let (metadata, _): (PackageMetadata, _) = load_parts_async(package_uri).await?;
        let name = format!("{MODELS}/{}", metadata.version());
        if package_uri != format!("{}/{name}", self.uri) {
            copy_package_async(package_uri, &self.model_uri(metadata.version())).await?;
        }
        Ok((name, metadata))
    }

    /// The current champion (`None` before the first). Reads only.
    pub fn champion(&self) -> Result<Option<Champion>> {
        block_on("champion", self.champion_async())?
    }

    /// [`Registry::champion`] for async code.
    pub async fn champion_async(&self) -> Result<Option<Champion>> {
        match self.generations().await?.last() {
            Some(&generation) => self.read_generation(generation).await.map(Some),
            None => Ok(None),
        }
    }

    /// The generations written so far, in order.
    async fn generations(&self) -> Result<Vec<u64>> {
        let mut generations: Vec<u64> = list_names_async(&self.uri, CHAMPION)
            .await?
            .iter()
            .filter_map(|name| generation_of(name))
            .collect();
        generations.sort_unstable();
        Ok(generations)
    }

    async fn read_generation(&self, generation: u64) -> Result<Champion> {
        let object = format!("{CHAMPION}/{}", generation_name(generation));
        let bytes = get_object_async(&self.uri, &object)
            .await?
            .ok_or_else(|| registry_error(&self.uri, format!("{object} vanished")))?;
        let champion: Champion = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            what: format!("registry {}: {object}", self.uri),
            source: e,
        })?;
        if champion.generation != generation {
            return Err(registry_error(
                &self.uri,
                format!(
                    "{object} says generation {}, its name {generation}",
                    champion.generation
                ),
            ));
        }
        Ok(champion)
    }

    /// Every champion so far, oldest first. Reads only.
    pub fn history(&self) -> Result<Vec<Champion>> {
        block_on("champion history", async {
            let mut champions = Vec::new();
            for generation in self.generations().await? {
                champions.push(self.read_generation(generation).await?);
            }
            Ok(champions)
        })?
    }

    /// Makes the package at `package_uri` the champion if the champion is still `expected`
    /// (`None`: there is none yet). Returns `Ok(Ok(new))`, or `Ok(Err(current))` when another
    /// promoter moved the pointer first (the pointer is not written). A package outside the
    /// registry is first copied to `models/<version>` (checked object by object), and the
    /// pointer names the copy.
    pub fn replace_champion(
        &self,
        expected: Option<&Champion>,
        package_uri: &str,
        reason: &str,
    ) -> Result<std::result::Result<Champion, Champion>> {
        block_on(
            "replace_champion",
            self.replace_champion_async(expected, package_uri, reason),
        )?
    }

    /// [`Registry::replace_champion`] for async code.
    pub async fn replace_champion_async(
        &self,
        expected: Option<&Champion>,
        package_uri: &str,
        reason: &str,
    ) -> Result<std::result::Result<Champion, Champion>> {
        let (package, metadata) = self.inside(package_uri).await?;
        let champion = Champion {
            generation: expected.map_or(1, |c| c.generation + 1),
            package,
            version: metadata.version().to_string(),
            previous: expected.map(|c| c.version.clone()),
            reason: reason.to_string(),
            promoted_at: now_seconds(),
        };
        let json = serde_json::to_vec_pretty(&champion).map_err(|e| Error::Json {
            what: format!("registry {}: the champion pointer", self.uri),
            source: e,
        })?;
        let object = format!("{CHAMPION}/{}", generation_name(champion.generation));
        if put_new_async(&self.uri, &object, json).await? {
            return Ok(Ok(champion));
        }
        match self.champion_async().await? {
            Some(current) => Ok(Err(current)),
            None => Err(registry_error(
                &self.uri,
                format!("{object} exists but no champion can be read"),
            )),
        }
    }

    /// Makes `package_uri` the first champion (copied to `models/<version>` when it lies
    /// outside the registry); an error if there is one already.
    pub fn init_champion(&self, package_uri: &str) -> Result<Champion> {
        match self.replace_champion(None, package_uri, "first champion")? {
            Ok(champion) => Ok(champion),
            Err(current) => Err(Error::invalid(
                "registry",
                format!(
                    "{} already has a champion ({}, generation {})",
                    self.uri, current.version, current.generation
                ),
            )),
        }
    }

    /// Stores a decision about a challenger (`decisions/<challenger>.json`, replacing an
    /// earlier decision about the same challenger).
    pub fn record_decision(&self, decision: &Decision) -> Result<()> {
        let json = serde_json::to_vec_pretty(decision).map_err(|e| Error::Json {
            what: format!("registry {}: decision {}", self.uri, decision.challenger),
            source: e,
        })?;
        let object = format!("{DECISIONS}/{}.json", decision.challenger);
        block_on(
            "record_decision",
            put_object_async(&self.uri, &object, json),
        )?
    }

    /// The decision about `challenger` (a version), if one was made.
    pub fn decision(&self, challenger: &str) -> Result<Option<Decision>> {
        let object = format!("{DECISIONS}/{challenger}.json");
        let uri = self.uri.clone();
        let Some(bytes) = block_on("decision", async move {
            match get_object_async(&uri, &object).await {
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(None)
                }
                other => other,
            }
        })??
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Json {
                what: format!("registry {}: decision {challenger}", self.uri),
                source: e,
            })
    }

    /// Every decision, ordered by time.
    pub fn decisions(&self) -> Result<Vec<Decision>> {
        let names = block_on("decisions", list_names_async(&self.uri, DECISIONS))??;
        let mut decisions = Vec::new();
        for name in names {
            if let Some(version) = name.strip_suffix(".json")
                && let Some(decision) = self.decision(version)?
            {
                decisions.push(decision);
            }
        }
        decisions.sort_by(|a, b| a.decided_at.total_cmp(&b.decided_at));
        Ok(decisions)
    }
}
