//! The trigger of the closed loop: when a stream's drift monitor has raised an alarm for the
//! champion and enough labelled rows have arrived since, adapt the champion to them
//! ([`crate::adapt::adapt`]), save the challenger in the registry and [`promote`] it.
//!
//! - **New rows**: `cargo` rows with a `target`, from the first row of the champion's first
//!   alarmed window (`cargo_drift`) to the newest row when the attempt starts.
//! - **One at a time**: an attempt holds a PostgreSQL advisory lock named after the stream;
//!   other adapters of the same stream wait.
//! - **Restart-safe**: every attempt is a `cargo_adaptation` row, written before the work and
//!   finished after it. An adapter killed midway leaves the pointer as it was (it moves last,
//!   in one create-only put) and an unfinished row; the next adapter re-runs that attempt on
//!   the same row range, which gives the same package, and finishes it.
//! - **After a rejection** the same champion is tried again only once `min_rows` more labelled
//!   rows have arrived.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::Client;
use serde::{Deserialize, Serialize};

use super::connection::{connect, db_error, sleep_unless_cancelled};
use crate::adapt::{
    AdaptConfig, AdaptData, Champion, Decision, PromotionPolicy, Registry, adapt, promote,
};
use crate::artifact::ModelPackage;
use crate::control::Control;
use crate::dataset::{Manifest, Sample};
use crate::error::{Error, Result};
use crate::train::ImageSet;

/// The attempts table.
pub const ADAPTATION_TABLE_SQL: &str = "
CREATE TABLE IF NOT EXISTS cargo_adaptation (
    attempt serial PRIMARY KEY,
    stream text NOT NULL,
    parent_version text NOT NULL,
    first_id bigint NOT NULL,
    last_id bigint NOT NULL,
    new_rows int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    challenger_version text,
    promoted boolean,
    reason text,
    parent_accuracy double precision,
    challenger_accuracy double precision
);
CREATE INDEX IF NOT EXISTS cargo_adaptation_stream ON cargo_adaptation (stream, parent_version);
";

/// How the closed loop runs.
#[derive(Debug, Clone)]
pub struct AdaptLoopConfig {
    /// Database holding `cargo` (`None`: the `PG*` environment variables).
    pub source_url: Option<String>,
    /// Database holding the stream's `cargo_drift` and `cargo_adaptation` (`None`: the source).
    pub sink_url: Option<String>,
    /// The stream whose drift alarms trigger adaptation.
    pub stream: String,
    /// The registry: its champion is adapted, challengers are saved and promoted there.
    pub registry: Registry,
    /// Folder the `cargo` rows' image paths are relative to.
    pub data_root: PathBuf,
    /// Folder of the old training rows.
    pub old_root: PathBuf,
    /// The old training rows (the replay pool).
    pub old_train: Manifest,
    /// Held-out old rows (`None`: a part of `old_train` is held out).
    pub old_holdout: Option<Manifest>,
    /// Labelled new rows needed to start (default 200).
    pub min_rows: usize,
    /// How to adapt.
    pub adapt: AdaptConfig,
    /// When to promote.
    pub policy: PromotionPolicy,
    /// Wait between looks when there is nothing to do (default 2 s).
    pub poll_interval: Duration,
    /// Stop after this many finished attempts (`None`: run until cancelled).
    pub max_attempts: Option<u64>,
}

impl AdaptLoopConfig {
    /// A loop for `stream` and `registry` with the old data, other settings default.
    pub fn new(
        stream: impl Into<String>,
        registry: Registry,
        data_root: impl Into<PathBuf>,
        old_root: impl Into<PathBuf>,
        old_train: Manifest,
    ) -> Self {
        AdaptLoopConfig {
            source_url: None,
            sink_url: None,
            stream: stream.into(),
            registry,
            data_root: data_root.into(),
            old_root: old_root.into(),
            old_train,
            old_holdout: None,
            min_rows: 200,
            adapt: AdaptConfig::default(),
            policy: PromotionPolicy::default(),
            poll_interval: Duration::from_secs(2),
            max_attempts: None,
        }
    }
}

/// What one look found or did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Look {
    /// No alarm for the champion yet.
    NoAlarm,
    /// An alarm, but fewer labelled rows than needed.
    Waiting {
        /// Labelled rows since the alarm's window began.
        rows: u64,
        /// Rows needed.
        needed: u64,
    },
    /// Another adapter of the stream holds the lock.
    Busy,
    /// An attempt ran to its decision.
    Decided(Box<Attempt>),
}

/// A finished attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its `cargo_adaptation.attempt`.
    pub attempt: i32,
    /// First and last `cargo` id of the new rows.
    pub ids: (i64, i64),
    /// Labelled rows in that range.
    pub rows: u64,
    /// Whether it resumed an attempt a killed adapter left unfinished.
    pub resumed: bool,
    /// The challenger's package URI.
    pub package: String,
    /// The decision.
    pub decision: Decision,
    /// Seconds from the start of the attempt to the decision.
    pub seconds: f64,
}

/// Counters of a loop run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptLoopStats {
    /// Looks at the alarms.
    pub looks: u64,
    /// Attempts decided.
    pub attempts: Vec<Attempt>,
    /// Seconds the run took.
    pub seconds: f64,
}

/// Runs the loop until `control` is cancelled or `max_attempts` attempts are decided. Errors
/// of a look (a database or store outage, an unreadable package) are logged and the look is
/// repeated after `poll_interval`; bad settings fail at once.
pub fn run_adaptation_loop(config: &AdaptLoopConfig, control: &Control) -> Result<AdaptLoopStats> {
    if config.min_rows < 2 {
        return Err(Error::invalid("min_rows", "must be at least 2"));
    }
    let started = Instant::now();
    let mut stats = AdaptLoopStats::default();
    while !control.is_cancelled() {
        if config
            .max_attempts
            .is_some_and(|n| stats.attempts.len() as u64 >= n)
        {
            break;
        }
        stats.looks += 1;
        match look_once(config, control) {
            Ok(Look::Decided(attempt)) => {
                log::info!(
                    "adaptation {} of {}: {} ({})",
                    attempt.attempt,
                    attempt.decision.parent,
                    if attempt.decision.promoted {
                        "promoted"
                    } else {
                        "rejected"
                    },
                    attempt.decision.reason
                );
                stats.attempts.push(*attempt);
                continue;
            }
            Ok(_) => {}
            Err(e @ (Error::InvalidParameter { .. } | Error::Cancelled { .. })) => return Err(e),
            Err(e) => log::warn!("adaptation loop of stream {}: {e}", config.stream),
        }
        sleep_unless_cancelled(config.poll_interval, control);
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// One look: starts (or resumes) an attempt when the champion's alarm and enough labelled
/// rows are there, and runs it to its decision.
pub fn look_once(config: &AdaptLoopConfig, control: &Control) -> Result<Look> {
    let champion = config.registry.champion()?.ok_or_else(|| {
        Error::invalid(
            "registry",
            format!(
                "{} has no champion; make the serving model the first one",
                config.registry.uri()
            ),
        )
    })?;
    let mut source = connect(config.source_url.as_deref())?;
    let mut sink = match &config.sink_url {
        Some(url) => Some(connect(Some(url))?),
        None => None,
    };
    let lock = format!("mlops.adapt:{}", config.stream);
    {
        let sink = sink.as_mut().unwrap_or(&mut source);
        sink.batch_execute(ADAPTATION_TABLE_SQL)
            .map_err(|e| db_error("create cargo_adaptation", e))?;
        let locked: bool = sink
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&lock])
            .map_err(|e| db_error("lock the adaptation", e))?
            .get(0);
        if !locked {
            return Ok(Look::Busy);
        }
    }
    // The lock is the session's: it goes with the connection, also when this process dies.
    let result = attempt(config, &champion, &mut source, sink.as_mut(), control);
    let sink = sink.as_mut().unwrap_or(&mut source);
    let _ = sink.execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock]);
    result
}

/// The new rows of an attempt.
struct Range {
    attempt: Option<i32>,
    first: i64,
    last: i64,
}

fn attempt(
    config: &AdaptLoopConfig,
    champion: &Champion,
    source: &mut Client,
    mut sink: Option<&mut Client>,
    control: &Control,
) -> Result<Look> {
    let stream = config.stream.as_str();
    let parent = champion.version.as_str();
    let started = Instant::now();
    let db = |what: &str| {
        let what = what.to_string();
        move |e: postgres::Error| db_error(&what, e)
    };
    let unfinished = {
        let sink = sink.as_deref_mut().unwrap_or(source);
        sink.query_opt(
            "SELECT attempt, first_id, last_id FROM cargo_adaptation
             WHERE stream = $1 AND parent_version = $2 AND finished_at IS NULL
             ORDER BY attempt DESC LIMIT 1",
            &[&stream, &parent],
        )
        .map_err(db("read cargo_adaptation"))?
    };
    let range = match unfinished {
        Some(row) => Range {
            attempt: Some(row.get(0)),
            first: row.get(1),
            last: row.get(2),
        },
        None => {
            let sink = sink.as_deref_mut().unwrap_or(source);
            let alarm: Option<i64> = sink
                .query_one(
                    "SELECT min(first_id) FROM cargo_drift
                     WHERE stream = $1 AND drift AND model_version = $2",
                    &[&stream, &parent],
                )
                .map_err(db("read cargo_drift"))?
                .get(0);
            let Some(first) = alarm else {
                return Ok(Look::NoAlarm);
            };
            let tried: Option<i32> = sink
                .query_one(
                    "SELECT max(new_rows) FROM cargo_adaptation
                     WHERE stream = $1 AND parent_version = $2",
                    &[&stream, &parent],
                )
                .map_err(db("read cargo_adaptation"))?
                .get(0);
            let needed = config.min_rows as u64 + tried.map_or(0, |n| n.max(0) as u64);
            let row = source
                .query_one(
                    "SELECT count(*), max(id)::bigint FROM cargo
                     WHERE id >= $1::bigint AND target IS NOT NULL",
                    &[&first],
                )
                .map_err(db("count cargo"))?;
            let rows = row.get::<_, i64>(0).max(0) as u64;
            if rows < needed {
                return Ok(Look::Waiting { rows, needed });
            }
            Range {
                attempt: None,
                first,
                last: row.get::<_, Option<i64>>(1).unwrap_or(first),
            }
        }
    };
    let registry = &config.registry;
    let parent_uri = registry.package_uri(champion);
    let device = config.adapt.train.backend.device();
    let package = ModelPackage::load(&parent_uri, &device)?;
    let new = new_rows(
        source,
        range.first,
        range.last,
        package.metadata.classes.len(),
    )?;
    let resumed = range.attempt.is_some();
    let attempt_id = match range.attempt {
        Some(id) => id,
        None => {
            let sink = sink.as_deref_mut().unwrap_or(source);
            sink.query_one(
                "INSERT INTO cargo_adaptation (stream, parent_version, first_id, last_id, new_rows)
                 VALUES ($1, $2, $3, $4, $5) RETURNING attempt",
                &[
                    &stream,
                    &parent,
                    &range.first,
                    &range.last,
                    &(new.len() as i32),
                ],
            )
            .map_err(db("start an attempt in cargo_adaptation"))?
            .get(0)
        }
    };

    let data = AdaptData {
        new: ImageSet {
            root: &config.data_root,
            manifest: &new,
        },
        old: ImageSet {
            root: &config.old_root,
            manifest: &config.old_train,
        },
        old_holdout: config.old_holdout.as_ref().map(|manifest| ImageSet {
            root: &config.old_root,
            manifest,
        }),
    };
    let adaptation = adapt(&package, &data, &config.adapt, control)?.with_source(format!(
        "stream {stream}: cargo ids {}..={}",
        range.first, range.last
    ));
    let uri = registry.model_uri(adaptation.package.metadata.version());
    adaptation.package.save(&uri)?;
    let decision = promote(registry, &uri, &config.policy)?;
    let sink = sink.unwrap_or(source);
    sink.execute(
        "UPDATE cargo_adaptation SET finished_at = now(), challenger_version = $2, promoted = $3,
             reason = $4, parent_accuracy = $5, challenger_accuracy = $6
         WHERE attempt = $1",
        &[
            &attempt_id,
            &decision.challenger,
            &decision.promoted,
            &decision.reason,
            &decision.parent_scores.union,
            &decision.scores.union,
        ],
    )
    .map_err(db("finish the attempt in cargo_adaptation"))?;
    Ok(Look::Decided(Box::new(Attempt {
        attempt: attempt_id,
        ids: (range.first, range.last),
        rows: new.len() as u64,
        resumed,
        package: uri,
        decision,
        seconds: started.elapsed().as_secs_f64(),
    })))
}

/// The labelled `cargo` rows with ids in `first..=last`, in id order.
/// Rows whose target is not one of the model's `classes` are left out.
fn new_rows(source: &mut Client, first: i64, last: i64, classes: usize) -> Result<Manifest> {
    let classes = i32::try_from(classes).unwrap_or(i32::MAX);
    let rows = source
        .query(
            "SELECT image_path, target FROM cargo
             WHERE id >= $1::bigint AND id <= $2::bigint AND image_path IS NOT NULL
               AND target >= 0 AND target < $3
             ORDER BY id",
            &[&first, &last, &classes],
        )
        .map_err(|e| db_error("read the new rows from cargo", e))?;
    let mut samples = Vec::with_capacity(rows.len());
    for row in rows {
        let target: i32 = row.get(1);
        let image_path: String = row.get(0);
        samples.push(Sample::new(image_path, target.unsigned_abs()));
    }
    Ok(Manifest::new(samples))
}
