//! The streaming predictor: tails `cargo`, predicts in batches and writes `cargo_prediction`,
//! exactly once.
//!
//! Each batch's predictions, errors, drift checks and the consumer's position (see
//! [`super::tail`]) commit in one transaction of the output database, so a crash at any point either keeps the whole
//! batch or none of it; a restart reloads the position and carries on. Lost connections (a
//! database restart) are retried with exponential backoff; a wrong password, a missing table
//! or a model failure stops the stream with an error.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};

use super::batch::predict_rows;
use super::connection::{Backoff, StepError, classify, open_client, sleep_unless_cancelled};
use super::schema::with_schema_lock;
use super::sink::{
    HEALTH_TABLE_SQL, PREDICTION_TABLES_SQL, write_classes, write_drift, write_health,
    write_outcomes,
};
use super::tail::{POSITION_TABLES_SQL, Position, load_position, poll_next, save_position};
use crate::adapt::{ChampionHealth, ChampionWatch, ServingModel};
use crate::control::{Control, Progress};
use crate::drift::{DriftCheck, DriftMonitor, MonitorConfig};
use crate::error::{Error, Result};
use crate::predict::Predictor;

/// How to stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Database holding `cargo` (`None`: the `PG*` environment variables).
    pub source_url: Option<String>,
    /// Database for `cargo_prediction` and the position (`None`: the source database).
    pub sink_url: Option<String>,
    /// Folder the rows' `image_path`s are relative to.
    pub data_root: PathBuf,
    /// Name of this consumer's position; streams with different names are independent.
    pub stream: String,
    /// Rows per batch (one model call and one commit).
    pub batch_size: usize,
    /// Wait between polls that found nothing.
    pub poll_interval: Duration,
    /// Longest wait between reconnection attempts (the backoff doubles from 100 ms up to this).
    pub max_backoff: Duration,
    /// How long a missing id is waited for after every transaction that could hold it has
    /// ended (see [`super::tail`]).
    pub gap_grace: Duration,
    /// Stop when a poll finds no rows and no id is awaited (for batch runs and tests).
    pub exit_when_idle: bool,
    /// Shift monitoring: a sliding window of predicted rows checked against the model's
    /// reference sample, each check a `cargo_drift` row committed with its batch. `None`, or a
    /// model package without a reference sample, turns it off.
    pub drift: Option<MonitorConfig>,
    /// Hot swap: the registry whose champion the stream serves. Its pointer is looked at
    /// between batches (at most every `interval`, and before the first batch); when it names
    /// another model, that model predicts from the next batch on, every row recording the
    /// version that made it, and the drift monitor restarts on the new model's reference.
    pub champion: Option<ChampionWatch>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            source_url: None,
            sink_url: None,
            data_root: PathBuf::from("."),
            stream: "cargo_prediction".into(),
            batch_size: 64,
            poll_interval: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            gap_grace: Duration::from_secs(600),
            exit_when_idle: false,
            drift: Some(MonitorConfig::default()),
            champion: None,
        }
    }
}

/// Counters of a stream run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Rows consumed (predicted + errors).
    pub rows: u64,
    /// Rows predicted.
    pub predicted: u64,
    /// Rows sent to the error table.
    pub errors: u64,
    /// Predicted rows whose true target is not one of the model's classes.
    pub unknown_targets: u64,
    /// Batches committed.
    pub batches: u64,
    /// Reconnections after lost connections.
    pub reconnects: u64,
    /// Batches dropped because another consumer of the same stream moved the position.
    pub conflicts: u64,
    /// Drift checks written to `cargo_drift`.
    pub drift_checks: u64,
    /// Of which alarms.
    pub drift_alarms: u64,
    /// The latest check's estimated accuracy of the latest rows (`None` before the first
    /// check, or when the model's reference has no true classes).
    #[serde(default)]
    pub drift_estimated_accuracy: Option<f64>,
    /// Models swapped in (see [`StreamConfig::champion`]).
    pub swaps: u64,
    /// Whether the stream serves the champion it follows (also in `cargo_health`).
    #[serde(default)]
    pub champion: ChampionHealth,
    /// The version of the model serving at the end.
    pub model_version: String,
    /// Ids still awaited (gaps) at the end.
    pub awaited_ids: usize,
    /// Seconds the run took.
    pub seconds: f64,
}

/// Open connections and the position read through them.
struct Session {
    source: Client,
    sink: Option<Client>,
    position: Option<Position>,
}

impl Session {
    fn open(config: &StreamConfig, classes: &[String]) -> std::result::Result<Self, StepError> {
        let source = open_client(config.source_url.as_deref())?;
        let sink = match &config.sink_url {
            Some(url) => Some(open_client(Some(url))?),
            None => None,
        };
        let mut session = Session {
            source,
            sink,
            position: None,
        };
        ensure_stream_tables(session.sink(), classes)
            .map_err(|e| classify("create the output tables", e))?;
        Ok(session)
    }

    fn sink(&mut self) -> &mut Client {
        self.sink.as_mut().unwrap_or(&mut self.source)
    }
}

/// What a stream or a Kafka consumer creates when it starts: the output and position tables,
/// under the schema lock ([`super::schema`]), and the model's class names in `cargo_class`.
pub fn ensure_stream_tables(
    client: &mut impl GenericClient,
    classes: &[String],
) -> std::result::Result<(), postgres::Error> {
    with_schema_lock(client, |tx| {
        for sql in [PREDICTION_TABLES_SQL, HEALTH_TABLE_SQL, POSITION_TABLES_SQL] {
            tx.batch_execute(sql)?;
        }
        write_classes(tx, classes)
    })
}

/// What one step did.
enum Step {
    /// Nothing new.
    Idle,
    /// A batch was committed or dropped.
    Worked,
}

/// Runs the stream until `control` is cancelled (or, with `exit_when_idle`, until it has caught
/// up), reporting `stream` with the totals after every committed batch. The first connection
/// must succeed; later lost connections are retried (logged as warnings).
pub fn stream_predictions(
    config: &StreamConfig,
    predictor: &Predictor,
    model_version: &str,
    control: &Control,
) -> Result<StreamStats> {
    if config.batch_size == 0 {
        return Err(Error::invalid("batch_size", "must be at least 1"));
    }
    let started = Instant::now();
    let mut stats = StreamStats::default();
    let mut session =
        Some(Session::open(config, predictor.classes().names()).map_err(StepError::into_error)?);
    let name = format!("stream {}", config.stream);
    let mut serving = ServingModel::new(predictor, model_version, config.champion.clone());
    serving.start()?;
    let mut monitor = drift_monitor(config.drift.as_ref(), &name, serving.predictor())?;
    let mut backoff = Backoff::new(config.max_backoff);
    let mut awaited = 0;
    let mut health_written = None;
    while !control.is_cancelled() {
        if serving.refresh() {
            monitor = drift_monitor(config.drift.as_ref(), &name, serving.predictor())?;
            stats.swaps = serving.swaps();
        }
        stats.champion = serving.health().clone();
        if let Some(s) = session.as_mut() {
            record_health(
                s.sink(),
                "stream",
                &config.stream,
                &serving,
                &mut health_written,
            );
        }
        let result = match session.as_mut() {
            Some(s) => step(s, config, &serving, &mut monitor, &mut stats),
            None => Session::open(config, predictor.classes().names()).map(|s| {
                session = Some(s);
                Step::Worked
            }),
        };
        match result {
            Ok(step) => {
                backoff.reset();
                if let Some(p) = session.as_ref().and_then(|s| s.position.as_ref()) {
                    awaited = p.gaps.len();
                }
                if matches!(step, Step::Idle) {
                    if config.exit_when_idle && awaited == 0 {
                        break;
                    }
                    sleep_unless_cancelled(config.poll_interval, control);
                } else {
                    control.report(Progress::items("stream", stats.rows, None).with_detail(&stats));
                }
            }
            Err(StepError::Transient(error)) => {
                session = None;
                stats.reconnects += 1;
                backoff.wait(&format!("stream {}", config.stream), &error, control);
            }
            Err(StepError::Fatal(e)) => return Err(e),
        }
    }
    stats.awaited_ids = awaited;
    stats.swaps = serving.swaps();
    stats.champion = serving.health().clone();
    stats.model_version = serving.version().to_string();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Writes the job's row of `cargo_health` when its state or model changed since the last
/// write (`written`); a failed write is tried again next time (logged at debug level).
pub(crate) fn record_health(
    client: &mut impl GenericClient,
    job: &str,
    name: &str,
    serving: &ServingModel<'_>,
    written: &mut Option<(ChampionHealth, String)>,
) {
    let now = (serving.health().clone(), serving.version().to_string());
    if written.as_ref() == Some(&now) {
        return;
    }
    let detail = match &now.0 {
        ChampionHealth::Unavailable { version, reason } => {
            Some(format!("champion {version}: {reason}"))
        }
        _ => None,
    };
    match write_health(
        client,
        job,
        name,
        now.0.name(),
        Some(&now.1),
        detail.as_deref(),
    ) {
        Ok(()) => *written = Some(now),
        Err(e) => log::debug!("{job} {name}: cargo_health not written: {e}"),
    }
}

/// The stream's drift monitor: `None` when monitoring is off or the model has no reference
/// sample (logged).
pub(crate) fn drift_monitor(
    config: Option<&MonitorConfig>,
    name: &str,
    predictor: &Predictor,
) -> Result<Option<DriftMonitor>> {
    let Some(monitor) = config else {
        return Ok(None);
    };
    match predictor.reference() {
        Some(reference) => DriftMonitor::new(reference, monitor.clone()).map(Some),
        None => {
            log::warn!("{name}: the model package has no drift reference sample; no drift checks");
            Ok(None)
        }
    }
}

/// Feeds a batch's predicted rows to a copy of `monitor` (the copy replaces it only when the
/// batch commits, so a retried batch is not counted twice); returns the copy and its checks.
pub(crate) fn monitor_batch(
    monitor: &Option<DriftMonitor>,
    rows: &[(i32, Vec<f32>, Vec<f32>)],
) -> Result<(Option<DriftMonitor>, Vec<DriftCheck>)> {
    let Some(monitor) = monitor else {
        return Ok((None, Vec::new()));
    };
    let mut next = monitor.clone();
    let mut checks = Vec::new();
    for (id, features, probabilities) in rows {
        if let Some(check) = next.push(i64::from(*id), features, probabilities)? {
            checks.push(check);
        }
    }
    Ok((Some(next), checks))
}

/// Polls once and commits what it found.
fn step(
    session: &mut Session,
    config: &StreamConfig,
    serving: &ServingModel<'_>,
    monitor: &mut Option<DriftMonitor>,
    stats: &mut StreamStats,
) -> std::result::Result<Step, StepError> {
    let stream = config.stream.as_str();
    if session.position.is_none() {
        let p =
            load_position(session.sink(), stream).map_err(|e| classify("load the position", e))?;
        session.position = Some(p);
    }
    let position = session.position.clone().unwrap_or_default();
    let Some((polled, next)) = poll_next(
        &mut session.source,
        session.sink.as_mut(),
        stream,
        &position,
        config.batch_size,
        config.gap_grace,
    )
    .map_err(|e| classify("read cargo", e))?
    else {
        return Ok(Step::Idle);
    };
    let model_version = serving.version();
    let outcome = predict_rows(serving.predictor(), &config.data_root, &polled.rows)
        .map_err(StepError::Fatal)?;
    let (next_monitor, checks) =
        monitor_batch(monitor, &outcome.monitored).map_err(StepError::Fatal)?;
    let sink = session.sink();
    let mut tx = sink.transaction().map_err(|e| classify("begin", e))?;
    write_outcomes(
        &mut tx,
        &outcome.predictions,
        &outcome.errors,
        model_version,
    )
    .map_err(|e| classify("write cargo_prediction", e))?;
    write_drift(&mut tx, stream, &checks, model_version)
        .map_err(|e| classify("write cargo_drift", e))?;
    // A unique violation means another consumer saved this stream's first position first.
    let saved = match save_position(&mut tx, stream, position.version, &next) {
        Ok(saved) => saved,
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => false,
        Err(e) => return Err(classify("save the position", e)),
    };
    if !saved {
        drop(tx);
        stats.conflicts += 1;
        session.position = None;
        return Ok(Step::Worked);
    }
    tx.commit().map_err(|e| classify("commit", e))?;
    session.position = Some(next.position);
    *monitor = next_monitor;
    stats.drift_checks += checks.len() as u64;
    stats.drift_alarms += checks.iter().filter(|c| c.alarm).count() as u64;
    if let Some(estimate) = checks.last().and_then(|c| c.estimated_accuracy) {
        stats.drift_estimated_accuracy = Some(estimate);
    }
    stats.rows += polled.rows.len() as u64;
    stats.predicted += outcome.predictions.len() as u64;
    stats.errors += outcome.errors.len() as u64;
    stats.unknown_targets += outcome.unknown_targets;
    stats.batches += 1;
    Ok(Step::Worked)
}
