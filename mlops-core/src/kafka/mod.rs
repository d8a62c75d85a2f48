//! Kafka (feature `kafka`): scale-out past one machine. [`publish`] puts new `cargo` rows on a
//! topic in the original's Kafka Connect JSON format (Kafka Connect itself is not needed);
//! [`consume`] predicts from such a topic in a consumer group, several consumers splitting
//! its partitions, and writes `cargo_prediction` idempotently (keyed by the source id).
//!
//! Delivery is at least once on both hops (the publisher saves its position after the broker
//! acknowledged a batch; a consumer commits its offsets after the database committed), and
//! the write is idempotent, so every row ends up predicted exactly once.

pub(crate) mod consume;
pub mod message;
pub(crate) mod publish;

pub use consume::{ConsumeConfig, ConsumeStats, consume_topic};
pub use publish::{PublishConfig, PublishStats, ensure_topic, publish_rows};

use crate::error::Error;

/// A Kafka error for `what` with a message and no client error behind it.
pub(crate) fn kafka_failure(what: &str, reason: impl Into<String>) -> Error {
    Error::Kafka {
        what: format!("{what}: {}", reason.into()),
        source: None,
    }
}

/// The topic the original's Kafka Connect source wrote to.
pub const DEFAULT_TOPIC: &str = "postgres-source-cargo";

/// A Kafka error for `what`.
pub(crate) fn kafka_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Kafka {
        what: what.to_string(),
        source: Some(Box::new(e)),
    }
}
