//! The trigger of the closed loop: when a stream's drift monitor has raised an alarm for the
//! champion and enough labelled rows have arrived since, adapt the champion to them
//! ([`crate::adapt::adapt`]), save the challenger in the registry and [`promote`] it.
//!
//! - **New rows**: `cargo` rows with a `target`, from the first row of the champion's first
//!   alarmed window (`cargo_drift`) to the newest row when the attempt starts.
//! - **One at a time**: an attempt holds a PostgreSQL advisory lock named after the stream;
//!   other adapters of the same stream wait.
//! - **Usable rows**: the start condition counts what the attempt will use: labelled rows of
//!   the champion's classes whose image exists under the data root, each image once.
//! - **Restart-safe**: every attempt is a `cargo_adaptation` row, written before the work and
//!   finished after it. An adapter killed midway leaves the pointer as it was (it moves last,
//!   in one create-only put) and an unfinished row; the next adapter re-runs that attempt on
//!   the same row range, which gives the same package, and finishes it.
//! - **Never stuck**: an attempt that fails for a reason rerunning cannot change (too few
//!   usable images, a strategy the data cannot serve) is finished as failed, with the reason,
//!   and the loop goes on; a look that fails for a reason that may pass (the database or the
//!   store down, the champion's package missing) is retried, but only `max_failed_looks` times
//!   in a row: then the loop stops with the error. Each look's outcome is the adapter's row in
//!   `cargo_health` (`ok`, `waiting`, `failing`), for dashboards.
//! - **After a rejection or a failure** the same champion is tried again only once `min_rows`
//!   more usable rows have arrived.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};

use super::connection::{connect, db_error, sleep_unless_cancelled};
use super::sink::write_health;
use crate::adapt::{
    AdaptConfig, AdaptData, Champion, Decision, PromotionPolicy, Registry, adapt, promote,
};
use crate::artifact::{ModelPackage, load_parts};
use crate::control::Control;
use crate::dataset::{Manifest, Sample};
use crate::error::{Error, Result};
use crate::paths::resolve_under;
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

/// Creates `cargo_adaptation` and `cargo_health` if absent (under the schema lock, see
/// [`super::schema`]).
pub fn ensure_adaptation_table(client: &mut impl GenericClient) -> Result<(), postgres::Error> {
    super::schema::create_tables(
        client,
        &[ADAPTATION_TABLE_SQL, super::sink::HEALTH_TABLE_SQL],
    )
}

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
    /// Usable labelled new rows needed to start (default 200).
    pub min_rows: usize,
    /// How to adapt.
    pub adapt: AdaptConfig,
    /// When to promote.
    pub policy: PromotionPolicy,
    /// Wait between looks when there is nothing to do (default 2 s).
    pub poll_interval: Duration,
    /// Stop after this many finished attempts, decided or failed (`None`: run until
    /// cancelled).
    pub max_attempts: Option<u64>,
    /// Looks in a row that may fail (a database or store outage, the champion's package
    /// unreadable) before the loop gives up with the last error (default 30: a minute at the
    /// default interval).
    pub max_failed_looks: u32,
    /// Also start an attempt when a check's estimated accuracy
    /// ([`crate::drift::DriftCheck::estimated_accuracy`]) is below this, not only on a drift
    /// alarm (`None`, the default: alarms only).
    pub min_estimated_accuracy: Option<f64>,
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
            max_failed_looks: 30,
            min_estimated_accuracy: None,
        }
    }
}

/// What one look found or did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Look {
    /// No alarm for the champion yet.
    NoAlarm,
    /// An alarm, but fewer usable labelled rows than needed.
    Waiting {
        /// Usable labelled rows since the alarm's window began.
        rows: u64,
        /// Rows needed.
        needed: u64,
    },
    /// Another adapter of the stream holds the lock.
    Busy,
    /// An attempt ran to its decision.
    Decided(Box<Attempt>),
    /// An attempt failed for a reason rerunning it cannot change; it is finished as failed.
    Failed(Box<FailedAttempt>),
}

/// A finished attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its `cargo_adaptation.attempt`.
    pub attempt: i32,
    /// First and last `cargo` id of the new rows.
    pub ids: (i64, i64),
    /// Usable labelled rows in that range.
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

/// An attempt finished as failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedAttempt {
    /// Its `cargo_adaptation.attempt`.
    pub attempt: i32,
    /// The champion it tried to adapt.
    pub parent: String,
    /// First and last `cargo` id of the new rows.
    pub ids: (i64, i64),
    /// Usable labelled rows in that range.
    pub rows: u64,
    /// Why it failed (also in `cargo_adaptation.reason`).
    pub reason: String,
}

/// Counters of a loop run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptLoopStats {
    /// Looks at the alarms.
    pub looks: u64,
    /// Attempts decided.
    pub attempts: Vec<Attempt>,
    /// Attempts finished as failed.
    #[serde(default)]
    pub failed: Vec<FailedAttempt>,
    /// Looks that failed (and were retried).
    #[serde(default)]
    pub failed_looks: u64,
    /// The last look's error, while looks fail (`None` once one succeeds).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Seconds the run took.
    pub seconds: f64,
}

/// Runs the loop until `control` is cancelled or `max_attempts` attempts are finished. A
/// look that fails for a reason that may pass (a database or store outage, an unreadable
/// package) is logged and repeated after `poll_interval`, at most `max_failed_looks` times in
/// a row; then the loop returns that error. Bad settings fail at once.
pub fn run_adaptation_loop(config: &AdaptLoopConfig, control: &Control) -> Result<AdaptLoopStats> {
    if config.min_rows < 2 {
        return Err(Error::invalid("min_rows", "must be at least 2"));
    }
    if config.max_failed_looks == 0 {
        return Err(Error::invalid("max_failed_looks", "must be at least 1"));
    }
    config.adapt.validate()?;
    config.policy.validate()?;
    let started = Instant::now();
    let mut stats = AdaptLoopStats::default();
    let mut failing = 0u32;
    let mut health = None;
    while !control.is_cancelled() {
        let finished = (stats.attempts.len() + stats.failed.len()) as u64;
        if config.max_attempts.is_some_and(|n| finished >= n) {
            break;
        }
        stats.looks += 1;
        let look = look_once(config, control);
        record_look(config, &look, &mut health);
        match look {
            Ok(look) => {
                failing = 0;
                stats.last_error = None;
                match look {
                    Look::Decided(attempt) => {
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
                    Look::Failed(failed) => {
                        log::warn!(
                            "adaptation {} of {} failed: {}",
                            failed.attempt,
                            failed.parent,
                            failed.reason
                        );
                        stats.failed.push(*failed);
                        continue;
                    }
                    _ => {}
                }
            }
            Err(e @ (Error::InvalidParameter { .. } | Error::Cancelled { .. })) => return Err(e),
            Err(e) => {
                failing += 1;
                stats.failed_looks += 1;
                let message = e.report();
                log::warn!(
                    "adaptation loop of stream {} ({failing} of {} failed looks in a row): {message}",
                    config.stream,
                    config.max_failed_looks
                );
                stats.last_error = Some(message);
                if failing >= config.max_failed_looks {
                    return Err(e);
                }
            }
        }
        sleep_unless_cancelled(config.poll_interval, control);
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// The adapter's row of `cargo_health` after a look, when it changed since the last one
/// written (`written`; best effort: a database that cannot be reached cannot hold it either).
fn record_look(
    config: &AdaptLoopConfig,
    look: &Result<Look>,
    written: &mut Option<(&'static str, String)>,
) {
    let (state, detail) = match look {
        Ok(Look::Waiting { rows, needed }) => (
            "waiting",
            format!("{rows} of {needed} usable labelled rows"),
        ),
        Ok(Look::Failed(failed)) => (
            "ok",
            format!("attempt {} failed: {}", failed.attempt, failed.reason),
        ),
        Ok(Look::Decided(attempt)) => (
            "ok",
            format!("attempt {}: {}", attempt.attempt, attempt.decision.reason),
        ),
        Ok(Look::NoAlarm | Look::Busy) => ("ok", String::new()),
        Err(e) => ("failing", e.report()),
    };
    if written.as_ref() == Some(&(state, detail.clone())) {
        return;
    }
    let url = config.sink_url.as_deref().or(config.source_url.as_deref());
    let result = connect(url).and_then(|mut client| {
        ensure_adaptation_table(&mut client).map_err(|e| db_error("create cargo_health", e))?;
        write_health(
            &mut client,
            "adapter",
            &config.stream,
            state,
            None,
            (!detail.is_empty()).then_some(detail.as_str()),
        )
        .map_err(|e| db_error("write cargo_health", e))
    });
    match result {
        Ok(()) => *written = Some((state, detail)),
        Err(e) => log::debug!("adapter {}: cargo_health not written: {e}", config.stream),
    }
}

/// One look: starts (or resumes) an attempt when the champion's alarm and enough usable
/// labelled rows are there, and runs it to its decision (or to a failure it records).
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
        ensure_adaptation_table(sink).map_err(|e| db_error("create cargo_adaptation", e))?;
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

/// Whether an attempt's error will come back if the attempt is run again on the same rows:
/// then the attempt is finished as failed. Outages (database, store, file system) may pass,
/// and a cancelled attempt is resumed by the next adapter.
fn is_permanent(e: &Error) -> bool {
    !matches!(
        e,
        Error::Database { .. }
            | Error::Package { .. }
            | Error::Io { .. }
            | Error::Kafka { .. }
            | Error::Cancelled { .. }
            | Error::BlockingInAsync { .. }
    )
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
    let parent_uri = config.registry.package_uri(champion);
    let (metadata, _) = load_parts(&parent_uri)?;
    let classes = metadata.classes.len();
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
    let (attempt_id, first, last, new) = match unfinished {
        Some(row) => {
            let (first, last): (i64, i64) = (row.get(1), row.get(2));
            let new = usable_rows(source, first, Some(last), classes, &config.data_root)?;
            (Some(row.get::<_, i32>(0)), first, last, new)
        }
        None => {
            let sink = sink.as_deref_mut().unwrap_or(source);
            let alarm: Option<i64> = sink
                .query_one(
                    "SELECT min(first_id) FROM cargo_drift
                     WHERE stream = $1 AND model_version = $2
                       AND (drift OR estimated_accuracy < $3)",
                    &[&stream, &parent, &config.min_estimated_accuracy],
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
            let new = usable_rows(source, first, None, classes, &config.data_root)?;
            if (new.manifest.len() as u64) < needed {
                return Ok(Look::Waiting {
                    rows: new.manifest.len() as u64,
                    needed,
                });
            }
            (None, first, new.last_id.unwrap_or(first), new)
        }
    };
    let resumed = attempt_id.is_some();
    let attempt_id = match attempt_id {
        Some(id) => id,
        None => {
            let sink = sink.as_deref_mut().unwrap_or(source);
            sink.query_one(
                "INSERT INTO cargo_adaptation (stream, parent_version, first_id, last_id, new_rows)
                 VALUES ($1, $2, $3, $4, $5) RETURNING attempt",
                &[
                    &stream,
                    &parent,
                    &first,
                    &last,
                    &(new.manifest.len() as i32),
                ],
            )
            .map_err(db("start an attempt in cargo_adaptation"))?
            .get(0)
        }
    };
    let rows = new.manifest.len() as u64;
    let outcome = adapt_and_promote(
        config,
        champion,
        &parent_uri,
        &new.manifest,
        (first, last),
        control,
    );
    let sink = sink.unwrap_or(source);
    match outcome {
        Ok((uri, decision)) => {
            sink.execute(
                "UPDATE cargo_adaptation SET finished_at = now(), challenger_version = $2,
                     promoted = $3, reason = $4, parent_accuracy = $5, challenger_accuracy = $6
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
                ids: (first, last),
                rows,
                resumed,
                package: uri,
                decision,
                seconds: started.elapsed().as_secs_f64(),
            })))
        }
        Err(e) if is_permanent(&e) => {
            let reason = format!("failed: {}", e.report());
            sink.execute(
                "UPDATE cargo_adaptation SET finished_at = now(), promoted = false, reason = $2
                 WHERE attempt = $1",
                &[&attempt_id, &reason],
            )
            .map_err(db("finish the failed attempt in cargo_adaptation"))?;
            Ok(Look::Failed(Box::new(FailedAttempt {
                attempt: attempt_id,
                parent: parent.to_string(),
                ids: (first, last),
                rows,
                reason,
            })))
        }
        Err(e) => Err(e),
    }
}

/// Adapts the champion to `new`, saves the challenger in the registry and promotes it.
fn adapt_and_promote(
    config: &AdaptLoopConfig,
    champion: &Champion,
    parent_uri: &str,
    new: &Manifest,
    (first, last): (i64, i64),
    control: &Control,
) -> Result<(String, Decision)> {
    let device = config.adapt.train.backend.device();
    let package = ModelPackage::load(parent_uri, &device)?;
    let data = AdaptData {
        new: ImageSet {
            root: &config.data_root,
            manifest: new,
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
    let adaptation = adapt(&package, &data, &config.adapt, control)?
        .with_source(format!(
            "stream {}: cargo ids {first}..={last}",
            config.stream
        ))
        .with_parent_generation(champion.generation);
    let uri = config
        .registry
        .model_uri(adaptation.package.metadata.version());
    adaptation.package.save(&uri)?;
    // The challenger was made here, from these rows, a moment ago: its lineage's scores are
    // this process's own (see `promote` and `promote_rescored`).
    let decision = promote(&config.registry, &uri, &config.policy)?;
    Ok((uri, decision))
}

/// The usable new rows of an attempt and the last id among them.
struct NewRows {
    manifest: Manifest,
    last_id: Option<i64>,
}

/// The rows an attempt learns from: labelled `cargo` rows with ids from `first` (to `last`)
/// whose target is one of the model's `classes` and whose image exists under `data_root`
/// (by the stream's path rule), each image path once (its first row), in id order. The start
/// condition counts exactly these.
fn usable_rows(
    source: &mut Client,
    first: i64,
    last: Option<i64>,
    classes: usize,
    data_root: &std::path::Path,
) -> Result<NewRows> {
    let classes = i32::try_from(classes).unwrap_or(i32::MAX);
    let rows = source
        .query(
            "SELECT id::bigint, image_path, target FROM cargo
             WHERE id >= $1::bigint AND ($2::bigint IS NULL OR id <= $2::bigint)
               AND image_path IS NOT NULL AND target >= 0 AND target < $3
             ORDER BY id",
            &[&first, &last, &classes],
        )
        .map_err(|e| db_error("read the new rows from cargo", e))?;
    let mut seen = std::collections::HashSet::new();
    let mut samples = Vec::with_capacity(rows.len());
    let mut last_id = None;
    for row in rows {
        let image_path: String = row.get(1);
        if seen.contains(&image_path) {
            continue;
        }
        let usable = resolve_under(data_root, &image_path).is_ok_and(|path| path.is_file());
        seen.insert(image_path.clone());
        if usable {
            let target: i32 = row.get(2);
            last_id = Some(row.get::<_, i64>(0));
            samples.push(Sample::new(image_path, target.unsigned_abs()));
        }
    }
    Ok(NewRows {
        manifest: Manifest::new(samples),
        last_id,
    })
}
