//! Kafka publishing and consuming against a real Kafka-protocol broker (tansu) and PostgreSQL,
//! both started by `scripts/with-services.sh`. Each test has its own topic and database.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{demo_data, fresh_db};
use mlops_core::dataset::Manifest;
use mlops_core::db::{bulk_load, connect, create_table};
use mlops_core::kafka::{
    ConsumeConfig, PublishConfig, consume_topic, ensure_topic, message, publish_rows,
};
use rdkafka::ClientConfig;

fn brokers() -> String {
    common::kafka_brokers()
}

/// A database with `n` rows of the monday manifest in `cargo`.
fn loaded_db(name: &str, n: usize) -> String {
    let url = fresh_db(name);
    let m = Manifest::read(&demo_data().join("monday.jsonl")).unwrap();
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(
        &mut client,
        &Manifest::new(m.samples.iter().cycle().take(n).cloned().collect()),
    )
    .unwrap();
    url
}

fn publish(url: &str, topic: &str) -> u64 {
    let config = PublishConfig {
        source_url: Some(url.to_string()),
        brokers: brokers(),
        topic: topic.to_string(),
        exit_when_idle: true,
        batch_size: 300,
        ..PublishConfig::default()
    };
    publish_rows(&config, &mlops_core::Control::new())
        .unwrap()
        .rows
}

#[test]
fn published_rows_are_connect_json_keyed_by_id_and_not_repeated() {
    let url = loaded_db("kafka_publish", 200);
    let topic = "publish-test";
    ensure_topic(&brokers(), topic, 2).unwrap();
    ensure_topic(&brokers(), topic, 2).unwrap(); // exists: fine
    assert_eq!(publish(&url, topic), 200);
    // The position was saved: a second run publishes nothing.
    assert_eq!(publish(&url, topic), 0);

    let mut messages = Vec::new();
    common::read_topic(topic, |partition, payload, key| {
        messages.push((partition, payload.to_vec(), key.map(<[u8]>::to_vec)));
        messages.len() == 200
    });
    assert_eq!(messages.len(), 200);
    let mut ids: Vec<i32> = Vec::new();
    let mut partitions = std::collections::BTreeSet::new();
    for (partition, payload, key) in &messages {
        let json: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(json["schema"]["type"], "struct");
        let fields: Vec<&str> = json["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["id", "timestamp", "image_path", "target"]);
        let row = message::decode(payload).unwrap();
        assert_eq!(key.as_deref(), Some(row.id.to_string().as_bytes()));
        assert!(json["payload"]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        ids.push(row.id);
        partitions.insert(*partition);
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    assert_eq!(partitions.len(), 2, "keys spread over both partitions");
}

#[test]
fn two_consumers_split_the_partitions_and_write_each_row_once() {
    let _deadline = common::Deadline::new("the two-consumer test", Duration::from_secs(300));
    let url = loaded_db("kafka_consume", 2000);
    let topic = "consume-test";
    ensure_topic(&brokers(), topic, 2).unwrap();
    assert_eq!(publish(&url, topic), 2000);
    // Some messages that are not cargo rows: skipped and reported, not fatal.
    let producer: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    producer
        .send(rdkafka::producer::BaseRecord::<str, str>::to(topic).payload("not json"))
        .unwrap();
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();

    // With a reference sample of its own outputs on monday's images, so drift checks run.
    let monday = Manifest::read(&demo_data().join("monday.jsonl")).unwrap();
    let paths: Vec<_> = monday
        .samples
        .iter()
        .map(|s| demo_data().join("monday").join(&s.image_path))
        .collect();
    let predictor = common::small_cnn_predictor(5);
    let reference = common::reference_of(&predictor, &paths, None);
    let predictor = predictor.with_reference(Some(reference));
    let config = ConsumeConfig {
        brokers: brokers(),
        topic: topic.to_string(),
        group: "predict-test".into(),
        sink_url: Some(url.clone()),
        data_root: demo_data().join("monday"),
        batch_size: 32,
        session_timeout: Duration::from_secs(6),
        exit_after_idle: Some(Duration::from_secs(12)),
        ..ConsumeConfig::default()
    };
    let stop = mlops_core::Control::new();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| consume_topic(&config, &predictor, "v1", &stop).unwrap());
        let b = s.spawn(|| consume_topic(&config, &predictor, "v1", &stop).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!("consumer a: {a:?}\nconsumer b: {b:?}");
    assert!(
        a.messages > 0 && b.messages > 0,
        "both consumers got partitions"
    );
    assert_eq!(a.bad_messages + b.bad_messages, 1);
    assert_eq!(a.predicted + b.predicted, 2000);
    let mut client = connect(Some(&url)).unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM cargo_prediction",
            &[],
        )
        .unwrap();
    let got: (i64, i64, i32, i32) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(got, (2000, 2000, 1, 2000));
    // Each consumer checks its own rows' window; every check is one cargo_drift row.
    let checks: i64 = client
        .query_one(
            "SELECT count(*) FROM cargo_drift WHERE stream = 'kafka:consume-test:predict-test' AND method = 'cusum'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(a.drift_checks > 0 && b.drift_checks > 0, "{a:?} {b:?}");
    assert_eq!(checks as u64, a.drift_checks + b.drift_checks);

    // Replaying the topic from the start (a new group) writes nothing new.
    let replay = ConsumeConfig {
        group: "predict-replay".into(),
        exit_after_idle: Some(Duration::from_secs(8)),
        ..config.clone()
    };
    let r = consume_topic(&replay, &predictor, "v2", &stop).unwrap();
    assert_eq!(r.messages, 2001);
    assert_eq!(r.predicted, 0);
    let versions: i64 = client
        .query_one(
            "SELECT count(*) FROM cargo_prediction WHERE model_version = 'v2'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(versions, 0);
}

#[test]
fn a_consumer_swaps_to_the_new_champion_between_batches() {
    let _deadline = common::Deadline::new("the consumer swap test", Duration::from_secs(240));
    use mlops_core::adapt::{ChampionWatch, Registry};
    let url = loaded_db("kafka_swap", 1500);
    let topic = "swap-test";
    ensure_topic(&brokers(), topic, 1).unwrap();
    assert_eq!(publish(&url, topic), 1500);
    let registry = Registry::new("memory://kafka-swap/registry");
    let (a_uri, b_uri) = (registry.model_uri("a"), registry.model_uri("b"));
    common::small_cnn_package(1).save(&a_uri).unwrap();
    common::small_cnn_package(2).save(&b_uri).unwrap();
    let first = registry.init_champion(&a_uri).unwrap();
    let predictor =
        mlops_core::predict::Predictor::load(&a_uri, mlops_core::ComputeBackend::Flex).unwrap();
    let config = ConsumeConfig {
        brokers: brokers(),
        topic: topic.to_string(),
        group: "predict-swap".into(),
        sink_url: Some(url.clone()),
        data_root: demo_data().join("monday"),
        batch_size: 16,
        exit_after_idle: Some(Duration::from_secs(8)),
        drift: None,
        champion: Some(ChampionWatch {
            registry: registry.clone(),
            interval: Duration::from_millis(20),
            fall_back_to_own_model: false,
        }),
        ..ConsumeConfig::default()
    };
    // The champion moves once 200 rows are predicted, while the consumer runs.
    let moved = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (slot, mover, from) = (moved.clone(), registry.clone(), first.clone());
    let control = mlops_core::Control::new().with_progress(move |p: &mlops_core::Progress<'_>| {
        let mut moved = slot.lock().unwrap();
        if p.done >= 200 && moved.is_none() {
            let b = mover
                .replace_champion(Some(&from), &b_uri, "test")
                .unwrap()
                .unwrap();
            *moved = Some(b.version);
        }
    });
    let stats = consume_topic(&config, &predictor, &first.version, &control).unwrap();
    let b = moved.lock().unwrap().clone().expect("the champion moved");
    assert_eq!((stats.predicted, stats.swaps), (1500, 1));
    assert_eq!(stats.model_version, b);
    let rows: Vec<String> = connect(Some(&url))
        .unwrap()
        .query(
            "SELECT model_version FROM cargo_prediction ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows.len(), 1500, "one prediction per id");
    let first_b = rows.iter().position(|v| *v == b).unwrap();
    assert!(first_b >= 200, "swapped before the move: {first_b}");
    assert!(rows[..first_b].iter().all(|v| *v == first.version));
    assert!(
        rows[first_b..].iter().all(|v| *v == b),
        "one partition: after the swap, only B"
    );
}

#[test]
fn a_replayed_row_ends_with_one_outcome() {
    let _deadline = common::Deadline::new("the one-outcome replay test", Duration::from_secs(240));
    let url = fresh_db("kafka_outcome");
    let monday = demo_data().join("monday");
    let m = Manifest::read(&demo_data().join("monday.jsonl")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    let copy = |i: usize| {
        let from = monday.join(&m.samples[i].image_path);
        std::fs::write(root.join(format!("{i}.png")), std::fs::read(from).unwrap()).unwrap();
    };
    copy(0);
    copy(1);
    // Row 3's image (2.png) appears only after the first consumer saw it missing.
    let rows = Manifest::new(
        (0..3)
            .map(|i| mlops_core::dataset::Sample::new(format!("{i}.png"), 0))
            .collect(),
    );
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &rows).unwrap();
    let topic = "outcome-test";
    ensure_topic(&brokers(), topic, 1).unwrap();
    assert_eq!(publish(&url, topic), 3);
    let predictor = common::small_cnn_predictor(4);
    let consume = |group: &str| {
        let config = ConsumeConfig {
            brokers: brokers(),
            topic: topic.to_string(),
            group: group.into(),
            sink_url: Some(url.clone()),
            data_root: root.to_path_buf(),
            session_timeout: Duration::from_secs(6),
            exit_after_idle: Some(Duration::from_secs(6)),
            drift: None,
            ..ConsumeConfig::default()
        };
        consume_topic(&config, &predictor, group, &mlops_core::Control::new()).unwrap()
    };
    let outcomes = || -> (Vec<i32>, Vec<i32>) {
        let ids = |sql: &str| -> Vec<i32> {
            connect(Some(&url))
                .unwrap()
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        (
            ids("SELECT id FROM cargo_prediction ORDER BY id"),
            ids("SELECT id FROM cargo_prediction_error ORDER BY id"),
        )
    };
    let first = consume("outcome-1");
    assert_eq!((first.predicted, first.errors), (2, 1), "{first:?}");
    assert_eq!(outcomes(), (vec![1, 2], vec![3]));

    // The image arrives; a replay (a new group) predicts row 3, whose error goes.
    copy(2);
    let second = consume("outcome-2");
    assert_eq!((second.messages, second.predicted), (3, 1), "{second:?}");
    assert_eq!(outcomes(), (vec![1, 2, 3], vec![]));
    let version: String = client
        .query_one(
            "SELECT model_version FROM cargo_prediction WHERE id = 3",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, "outcome-2");

    // The image goes again; a replay's errors do not land on predicted ids.
    std::fs::remove_file(root.join("2.png")).unwrap();
    let third = consume("outcome-3");
    assert_eq!(
        (third.messages, third.predicted, third.errors),
        (3, 0, 0),
        "{third:?}"
    );
    assert_eq!(outcomes(), (vec![1, 2, 3], vec![]));
}
