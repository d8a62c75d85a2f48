//! Predicting from a topic of `cargo` rows in a consumer group. Each batch is predicted,
//! written to `cargo_prediction` in one transaction (`ON CONFLICT DO NOTHING` on the source
//! id), and only then are the offsets committed; a batch replayed after a crash or a
//! rebalance is written again as a no-op. Drift checks of the consumer's window (see
//! [`crate::drift::DriftMonitor`]) go to `cargo_drift` in the same transaction, under the
//! stream name `kafka:<topic>:<group>`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::Client;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};

use super::{DEFAULT_TOPIC, kafka_error, message};
use crate::adapt::{ChampionHealth, ChampionWatch, ServingModel};
use crate::control::{Control, Progress};
use crate::db::batch::predict_rows;
use crate::db::connection::{Backoff, StepError, classify, open_client};
use crate::db::sink::{write_drift, write_outcomes};
use crate::db::stream::{drift_monitor, ensure_stream_tables, monitor_batch, record_health};
use crate::db::tail::SourceRow;
use crate::drift::{DriftCheck, MonitorConfig};
use crate::error::{Error, Result};
use crate::predict::Predictor;

/// How to consume.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    /// Kafka bootstrap servers (`host:port,...`).
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Consumer group; consumers of one group split the partitions.
    pub group: String,
    /// Database for `cargo_prediction`.
    pub sink_url: Option<String>,
    /// Folder the rows' `image_path`s are relative to.
    pub data_root: PathBuf,
    /// Messages per batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub batch_wait: Duration,
    /// Kafka `session.timeout.ms`: how soon a dead consumer's partitions move to the others.
    pub session_timeout: Duration,
    /// Longest wait between reconnection attempts to the database.
    pub max_backoff: Duration,
    /// Stop after no message arrived for this long (`None`: run until stopped).
    pub exit_after_idle: Option<Duration>,
    /// Shift monitoring of the consumed rows (see [`crate::db::StreamConfig::drift`]).
    pub drift: Option<MonitorConfig>,
    /// Hot swap: the registry whose champion the consumer serves (see
    /// [`crate::db::StreamConfig::champion`]); a swap happens between batches.
    pub champion: Option<ChampionWatch>,
}

impl Default for ConsumeConfig {
    fn default() -> Self {
        ConsumeConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: DEFAULT_TOPIC.into(),
            group: "mlops-predict".into(),
            sink_url: None,
            data_root: PathBuf::from("."),
            batch_size: 64,
            batch_wait: Duration::from_millis(200),
            session_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
            exit_after_idle: None,
            drift: Some(MonitorConfig::default()),
            champion: None,
        }
    }
}

/// Counters of a consumer run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumeStats {
    /// Messages consumed.
    pub messages: u64,
    /// Predictions written (a replayed row is not written twice, nor counted).
    pub predicted: u64,
    /// Error rows written.
    pub errors: u64,
    /// Messages that were not `cargo` rows (skipped, reported on stderr).
    pub bad_messages: u64,
    /// Drift checks written to `cargo_drift`.
    pub drift_checks: u64,
    /// Of which alarms.
    pub drift_alarms: u64,
    /// The latest check's estimated accuracy of the latest rows (`None` before the first
    /// check, or when the model's reference has no true classes).
    #[serde(default)]
    pub drift_estimated_accuracy: Option<f64>,
    /// Models swapped in (see [`ConsumeConfig::champion`]).
    pub swaps: u64,
    /// Whether the consumer serves the champion it follows (also in `cargo_health`).
    #[serde(default)]
    pub champion: ChampionHealth,
    /// The version of the model serving at the end.
    pub model_version: String,
    /// Batches committed.
    pub batches: u64,
    /// Offset commits refused (e.g. during a rebalance; those messages are replayed).
    pub failed_commits: u64,
    /// Reconnections to the database.
    pub reconnects: u64,
    /// Seconds the run took.
    pub seconds: f64,
}

/// Consumes `config.topic` until `control` is cancelled or the topic stays idle for
/// `exit_after_idle`, reporting `consume` with the totals after every committed batch.
/// Skipped messages and refused offset commits are logged as warnings.
pub fn consume_topic(
    config: &ConsumeConfig,
    predictor: &Predictor,
    model_version: &str,
    control: &Control,
) -> Result<ConsumeStats> {
    if config.batch_size == 0 {
        return Err(Error::invalid("batch_size", "must be at least 1"));
    }
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            config.session_timeout.as_millis().to_string(),
        )
        .create()
        .map_err(|e| kafka_error(&format!("connect to {}", config.brokers), e))?;
    consumer
        .subscribe(&[&config.topic])
        .map_err(|e| kafka_error(&format!("subscribe to {}", config.topic), e))?;
    let mut sink =
        Some(open_sink(config, predictor.classes().names()).map_err(StepError::into_error)?);
    let mut stats = ConsumeStats::default();
    let stream = format!("kafka:{}:{}", config.topic, config.group);
    let mut serving = ServingModel::new(predictor, model_version, config.champion.clone());
    serving.start()?;
    let mut monitor = drift_monitor(config.drift.as_ref(), &stream, serving.predictor())?;
    let mut last_message = Instant::now();
    let mut health_written = None;
    while !control.is_cancelled() {
        if serving.refresh() {
            monitor = drift_monitor(config.drift.as_ref(), &stream, serving.predictor())?;
            stats.swaps = serving.swaps();
        }
        stats.champion = serving.health().clone();
        if let Some(client) = sink.as_mut() {
            record_health(
                client,
                "kafka_consumer",
                &stream,
                &serving,
                &mut health_written,
            );
        }
        let consumed_before = stats.messages;
        let rows = next_batch(&consumer, config, &mut stats);
        if stats.messages == consumed_before {
            if config
                .exit_after_idle
                .is_some_and(|idle| last_message.elapsed() >= idle)
            {
                break;
            }
            continue;
        }
        last_message = Instant::now();
        let model_version = serving.version();
        let outcome = predict_rows(serving.predictor(), &config.data_root, &rows)?;
        let (next_monitor, checks) = monitor_batch(&monitor, &outcome.monitored)?;
        let batch = Batch {
            outcome: &outcome,
            checks: &checks,
            stream: &stream,
            model_version,
        };
        // Write, reconnecting as long as it takes; the offsets wait for the write.
        let mut backoff = Backoff::new(config.max_backoff);
        let written = loop {
            let result = match sink.as_mut() {
                Some(client) => write(client, &batch),
                None => open_sink(config, predictor.classes().names()).and_then(|mut client| {
                    let written = write(&mut client, &batch);
                    sink = Some(client);
                    written
                }),
            };
            match result {
                Ok(written) => break Some(written),
                Err(StepError::Transient(error)) => {
                    sink = None;
                    stats.reconnects += 1;
                    backoff.wait(&format!("consumer {}", config.group), &error, control);
                    if control.is_cancelled() {
                        break None;
                    }
                }
                Err(StepError::Fatal(e)) => return Err(e),
            }
        };
        // Stopped before the write landed: leave the offsets, the batch will be replayed.
        let Some(written) = written else { break };
        stats.predicted += written.0;
        stats.errors += written.1;
        stats.batches += 1;
        monitor = next_monitor;
        stats.drift_checks += checks.len() as u64;
        stats.drift_alarms += checks.iter().filter(|c| c.alarm).count() as u64;
        if let Some(estimate) = checks.last().and_then(|c| c.estimated_accuracy) {
            stats.drift_estimated_accuracy = Some(estimate);
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            stats.failed_commits += 1;
            log::warn!(
                "consumer {}: offset commit refused ({e}); the batch will be replayed",
                config.group
            );
        }
        control.report(
            Progress::items("consume", stats.predicted + stats.errors, None).with_detail(&stats),
        );
    }
    stats.swaps = serving.swaps();
    stats.champion = serving.health().clone();
    stats.model_version = serving.version().to_string();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

fn open_sink(config: &ConsumeConfig, classes: &[String]) -> std::result::Result<Client, StepError> {
    let mut client = open_client(config.sink_url.as_deref())?;
    ensure_stream_tables(&mut client, classes)
        .map_err(|e| classify("create the output tables", e))?;
    Ok(client)
}

/// What one batch writes.
struct Batch<'a> {
    outcome: &'a crate::db::BatchOutcome,
    checks: &'a [DriftCheck],
    stream: &'a str,
    model_version: &'a str,
}

fn write(client: &mut Client, batch: &Batch<'_>) -> std::result::Result<(u64, u64), StepError> {
    let mut tx = client.transaction().map_err(|e| classify("begin", e))?;
    let written = write_outcomes(
        &mut tx,
        &batch.outcome.predictions,
        &batch.outcome.errors,
        batch.model_version,
    )
    .map_err(|e| classify("write cargo_prediction", e))?;
    write_drift(&mut tx, batch.stream, batch.checks, batch.model_version)
        .map_err(|e| classify("write cargo_drift", e))?;
    tx.commit().map_err(|e| classify("commit", e))?;
    Ok(written)
}

/// Up to `batch_size` messages' rows (counted in `stats`): waits up to `batch_wait` for the first message, then takes what
/// is already there.
fn next_batch(
    consumer: &BaseConsumer,
    config: &ConsumeConfig,
    stats: &mut ConsumeStats,
) -> Vec<SourceRow> {
    let mut rows = Vec::new();
    let deadline = Instant::now() + config.batch_wait;
    while rows.len() < config.batch_size {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Some(result) = consumer.poll(wait) else {
            break;
        };
        let msg = match result {
            Ok(msg) => msg,
            Err(e) => {
                log::warn!("consumer {}: {e}", config.group);
                continue;
            }
        };
        stats.messages += 1;
        match message::decode(msg.payload().unwrap_or_default()) {
            Ok(row) => rows.push(row),
            Err(reason) => {
                stats.bad_messages += 1;
                log::warn!(
                    "consumer {}: skipped {}[{}]@{}: {reason}",
                    config.group,
                    msg.topic(),
                    msg.partition(),
                    msg.offset()
                );
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    rows
}
