//! Publishing new `cargo` rows to a topic, as the original's Kafka Connect JDBC source did, but
//! without skipping rows that commit out of id order (the same tail as the streaming
//! predictor, [`crate::db::tail`]). Each row is keyed by its id, so a row always goes to the
//! same partition. The position is saved in the source database after the broker has
//! acknowledged the batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postgres::Client;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use super::{DEFAULT_TOPIC, kafka_error, kafka_failure, message};
use crate::blocking::block_on;
use crate::control::{Control, Progress};
use crate::db::connection::{Backoff, StepError, classify, open_client, sleep_unless_cancelled};
use crate::db::tail::{
    Position, SourceRow, ensure_position_tables, load_position, poll_next, save_position,
};
use crate::error::{Error, Result};

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// Database holding `cargo` and the publisher's position.
    pub source_url: Option<String>,
    /// Kafka bootstrap servers (`host:port,...`).
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Rows per batch.
    pub batch_size: usize,
    /// Wait between polls that found nothing.
    pub poll_interval: Duration,
    /// How long a missing id is awaited (see [`crate::db::tail`]).
    pub gap_grace: Duration,
    /// Stop once caught up.
    pub exit_when_idle: bool,
    /// Longest wait between reconnection attempts to the database.
    pub max_backoff: Duration,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            source_url: None,
            brokers: "127.0.0.1:9092".into(),
            topic: DEFAULT_TOPIC.into(),
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            gap_grace: Duration::from_secs(600),
            exit_when_idle: false,
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Counters of a publish run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishStats {
    /// Rows published (acknowledged by the broker).
    pub rows: u64,
    /// Batches.
    pub batches: u64,
    /// Retries after a lost database connection or a batch the broker did not acknowledge.
    pub reconnects: u64,
    /// Seconds the run took.
    pub seconds: f64,
}

/// Counts failed deliveries.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Creates `topic` with `partitions` partitions (replication 1) unless it exists.
pub fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| kafka_error(&format!("connect to {brokers}"), e))?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = block_on(
        "ensure_topic",
        admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &options,
        ),
    )?
    .map_err(|e| kafka_error(&format!("create topic {topic}"), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(kafka_error(&format!("create topic {name}"), code)),
        }
    }
    Ok(())
}

/// Publishes rows of `cargo` after the saved position until `control` is cancelled (or, with
/// `exit_when_idle`, until caught up), reporting `publish` after every delivered batch. The
/// position is kept under the name `kafka:<topic>`. The first connection must succeed; a
/// database connection lost later, or a batch the broker did not acknowledge, is retried with
/// backoff (logged as a warning), and a batch whose position was not saved is published again
/// (the consumers' writes are idempotent).
pub fn publish_rows(config: &PublishConfig, control: &Control) -> Result<PublishStats> {
    if config.batch_size == 0 {
        return Err(Error::invalid("batch_size", "must be at least 1"));
    }
    let started = Instant::now();
    let stream = format!("kafka:{}", config.topic);
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .create_with_context(Deliveries::default())
        .map_err(|e| kafka_error(&format!("connect to {}", config.brokers), e))?;
    let mut session = Some(Session::open(config, &stream).map_err(StepError::into_error)?);
    let mut stats = PublishStats::default();
    let mut backoff = Backoff::new(config.max_backoff);
    while !control.is_cancelled() {
        let result = match session.as_mut() {
            Some(s) => step(s, &producer, config, &stream, &mut stats),
            None => Session::open(config, &stream).map(|s| {
                session = Some(s);
                Step::Worked
            }),
        };
        match result {
            Ok(Step::Idle { awaiting }) => {
                backoff.reset();
                if config.exit_when_idle && !awaiting {
                    break;
                }
                sleep_unless_cancelled(config.poll_interval, control);
            }
            Ok(Step::Worked) => {
                backoff.reset();
                control.report(Progress::items("publish", stats.rows, None).with_detail(&stats));
            }
            Err(StepError::Transient(error)) => {
                session = None;
                stats.reconnects += 1;
                backoff.wait(&format!("publisher {stream}"), &error, control);
            }
            Err(StepError::Fatal(e)) => return Err(e),
        }
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// The publisher's connection and the position read through it.
struct Session {
    client: Client,
    position: Position,
}

impl Session {
    fn open(config: &PublishConfig, stream: &str) -> std::result::Result<Self, StepError> {
        let mut client = open_client(config.source_url.as_deref())?;
        ensure_position_tables(&mut client)
            .map_err(|e| classify("create the position tables", e))?;
        let position =
            load_position(&mut client, stream).map_err(|e| classify("load the position", e))?;
        Ok(Session { client, position })
    }
}

/// What one step did.
enum Step {
    /// Nothing new; `awaiting` while missing ids are still awaited.
    Idle { awaiting: bool },
    /// A batch was delivered and its position saved (or a connection opened).
    Worked,
}

/// Polls once, delivers what it found, then saves the position.
fn step(
    session: &mut Session,
    producer: &BaseProducer<Deliveries>,
    config: &PublishConfig,
    stream: &str,
    stats: &mut PublishStats,
) -> std::result::Result<Step, StepError> {
    let polled = poll_next(
        &mut session.client,
        None,
        stream,
        &session.position,
        config.batch_size,
        config.gap_grace,
    )
    .map_err(|e| classify("read cargo", e))?;
    let Some((polled, next)) = polled else {
        return Ok(Step::Idle {
            awaiting: !session.position.gaps.is_empty(),
        });
    };
    deliver(producer, &config.topic, &polled.rows)?;
    let mut tx = session
        .client
        .transaction()
        .map_err(|e| classify("begin", e))?;
    if !save_position(&mut tx, stream, session.position.version, &next)
        .map_err(|e| classify("save the position", e))?
    {
        return Err(StepError::Fatal(Error::Conflict {
            what: format!("another publisher moved the position of {stream}"),
        }));
    }
    tx.commit().map_err(|e| classify("commit", e))?;
    session.position = next.position;
    stats.rows += polled.rows.len() as u64;
    stats.batches += 1;
    Ok(Step::Worked)
}

/// Sends `rows` keyed by id and waits until the broker acknowledged every one. A batch the
/// broker did not acknowledge (down, electing a leader) is [`StepError::Transient`]: the
/// position stays, and the batch is sent again after the backoff. A record the client refuses
/// outright (too large, unknown topic) is fatal.
fn deliver(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    rows: &[SourceRow],
) -> std::result::Result<(), StepError> {
    let failed_before = producer.context().failed.load(Ordering::Relaxed);
    for row in rows {
        let key = row.id.to_string();
        let payload = message::encode(row);
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => {
                    return Err(StepError::Fatal(kafka_error(
                        &format!("send to {topic}"),
                        e,
                    )));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| StepError::Transient(kafka_error(&format!("deliver to {topic}"), e)))?;
    let failed = producer.context().failed.load(Ordering::Relaxed) - failed_before;
    if failed > 0 {
        return Err(StepError::Transient(kafka_failure(
            &format!("deliver to {topic}"),
            format!("{failed} of {} messages were not acknowledged", rows.len()),
        )));
    }
    Ok(())
}
