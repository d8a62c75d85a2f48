//! The live part: loading `cargo`, streaming predictions, Kafka.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::prelude::*;

use crate::convert::{from_json, manifest, to_json};
use crate::errors::BindingResult;
use crate::model::Model;
use crate::runtime::{detail_control, interruptible};

/// Creates `cargo` and bulk-loads manifests (JSON lines); returns rows loaded.
#[pyfunction]
#[pyo3(signature = (url, manifests, drop=false))]
pub(crate) fn generate(
    py: Python<'_>,
    url: Option<String>,
    manifests: Vec<String>,
    drop: bool,
) -> BindingResult<u64> {
    let manifests = manifests
        .iter()
        .map(|m| manifest(m))
        .collect::<BindingResult<Vec<_>>>()?;
    Ok(py.detach(|| -> mlops_core::Result<u64> {
        let mut client = mlops_core::db::connect(url.as_deref())?;
        mlops_core::db::create_table(&mut client, drop)?;
        let mut rows = 0;
        for m in &manifests {
            rows += mlops_core::db::bulk_load(&mut client, m)?;
        }
        Ok(rows)
    })?)
}

/// Streams `cargo` into `cargo_prediction` (until caught up with `until_idle`, else until
/// Ctrl-C); `progress(stats_json)` is called after each batch. Returns the stats as JSON.
#[pyfunction]
#[pyo3(signature = (model, url, data_root, sink_url=None, batch_size=64, stream="cargo_prediction", until_idle=true, progress=None, drift_json=Some("{}".to_string()), champion=None, champion_seconds=1.0, champion_fallback=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream_predictions(
    py: Python<'_>,
    model: &Model,
    url: Option<String>,
    data_root: PathBuf,
    sink_url: Option<String>,
    batch_size: usize,
    stream: &str,
    until_idle: bool,
    progress: Option<Py<PyAny>>,
    drift_json: Option<String>,
    champion: Option<String>,
    champion_seconds: f64,
    champion_fallback: bool,
) -> BindingResult<String> {
    let drift = monitor(drift_json)?;
    let champion = watch(champion, champion_seconds, champion_fallback);
    let config = mlops_core::db::StreamConfig {
        source_url: url,
        sink_url,
        data_root,
        stream: stream.to_string(),
        batch_size,
        exit_when_idle: until_idle,
        drift,
        champion,
        ..Default::default()
    };
    let stats = interruptible(py, detail_control(progress, "stream"), |control| {
        mlops_core::db::stream_predictions(
            &config,
            &model.predictor,
            model.metadata.version(),
            control,
        )
    })??;
    to_json(&stats)
}

/// Publishes new `cargo` rows to a Kafka topic (creating it with `partitions`); returns the
/// stats as JSON.
#[pyfunction]
#[pyo3(signature = (url, brokers, topic="postgres-source-cargo", partitions=2, until_idle=true))]
pub(crate) fn kafka_publish(
    py: Python<'_>,
    url: Option<String>,
    brokers: String,
    topic: &str,
    partitions: i32,
    until_idle: bool,
) -> BindingResult<String> {
    let config = mlops_core::kafka::PublishConfig {
        source_url: url,
        brokers,
        topic: topic.to_string(),
        exit_when_idle: until_idle,
        ..Default::default()
    };
    let stats = interruptible(py, mlops_core::Control::new(), |control| {
        mlops_core::kafka::ensure_topic(&config.brokers, &config.topic, partitions)?;
        mlops_core::kafka::publish_rows(&config, control)
    })??;
    to_json(&stats)
}

/// Consumes a Kafka topic in a consumer group into `cargo_prediction`; returns the stats as
/// JSON. Stops after `idle_seconds` without messages (or on Ctrl-C).
#[pyfunction]
#[pyo3(signature = (model, url, brokers, data_root, topic="postgres-source-cargo", group="mlops-predict", batch_size=64, idle_seconds=Some(10.0), session_timeout_seconds=10.0, drift_json=Some("{}".to_string()), champion=None, champion_seconds=1.0, champion_fallback=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn kafka_consume(
    py: Python<'_>,
    model: &Model,
    url: Option<String>,
    brokers: String,
    data_root: PathBuf,
    topic: &str,
    group: &str,
    batch_size: usize,
    idle_seconds: Option<f64>,
    session_timeout_seconds: f64,
    drift_json: Option<String>,
    champion: Option<String>,
    champion_seconds: f64,
    champion_fallback: bool,
) -> BindingResult<String> {
    let drift = monitor(drift_json)?;
    let champion = watch(champion, champion_seconds, champion_fallback);
    let seconds = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let config = mlops_core::kafka::ConsumeConfig {
        brokers,
        topic: topic.to_string(),
        group: group.to_string(),
        sink_url: url,
        data_root,
        batch_size,
        session_timeout: seconds(session_timeout_seconds),
        exit_after_idle: idle_seconds.map(seconds),
        drift,
        champion,
        ..Default::default()
    };
    let stats = interruptible(py, mlops_core::Control::new(), |control| {
        mlops_core::kafka::consume_topic(
            &config,
            &model.predictor,
            model.metadata.version(),
            control,
        )
    })??;
    to_json(&stats)
}

/// Hot swap to the champion of the registry at `uri`, looked at every `seconds`; `fallback`:
/// serve the given model when the champion cannot be loaded at start.
fn watch(
    uri: Option<String>,
    seconds: f64,
    fallback: bool,
) -> Option<mlops_core::adapt::ChampionWatch> {
    uri.map(|uri| mlops_core::adapt::ChampionWatch {
        registry: mlops_core::adapt::Registry::new(uri),
        interval: Duration::from_secs_f64(seconds.max(0.0)),
        fall_back_to_own_model: fallback,
    })
}

/// The drift monitor from JSON (`MonitorConfig` fields; missing ones take the defaults), or
/// `None` (monitoring off).
fn monitor(json: Option<String>) -> BindingResult<Option<mlops_core::drift::MonitorConfig>> {
    json.map(|text| from_json("drift", &text)).transpose()
}
