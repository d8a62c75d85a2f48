//! The streaming predictor and the Kafka publisher while PostgreSQL restarts. A test binary of
//! its own: the restart drops every connection to the shared test server, so nothing else may
//! run meanwhile (test binaries run one after another).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Deadline, demo_data, fresh_db, wait_until};
use mlops_core::Control;
use mlops_core::dataset::Manifest;
use mlops_core::db::{StreamConfig, bulk_load, connect, create_table, stream_predictions};
use mlops_core::kafka::{PublishConfig, ensure_topic, message, publish_rows};

const ROWS: usize = 3000;

/// A control whose progress callback stores the latest count in `done`, then waits `pace`
/// (so that a fast job is still under way when the server restarts).
fn counting(done: &Arc<AtomicU64>, pace: Duration) -> Control {
    let done = Arc::clone(done);
    Control::new().with_progress(move |p: &mlops_core::Progress<'_>| {
        done.store(p.done, Ordering::Relaxed);
        std::thread::sleep(pace);
    })
}

/// How often each id appears in `topic` (reads until `n` distinct ids arrived, up to 60 s).
fn topic_ids(topic: &str, n: usize) -> BTreeMap<i32, usize> {
    let mut seen = BTreeMap::new();
    common::read_topic(topic, |_, payload, _| {
        *seen
            .entry(message::decode(payload).unwrap().id)
            .or_insert(0) += 1;
        seen.len() == n
    });
    seen
}

#[test]
fn the_stream_and_the_publisher_resume_after_a_database_restart() {
    let _deadline = Deadline::new("the restart test", Duration::from_secs(300));
    let restart = std::env::var("MLOPS_TEST_PG_RESTART").unwrap_or_else(|_| {
        panic!("MLOPS_TEST_PG_RESTART is not set: run the tests through `make test` (scripts/with-services.sh)")
    });
    let brokers = common::kafka_brokers();
    let url = fresh_db("stream_restart");
    let data = demo_data();
    let m = Manifest::read(&data.join("monday.jsonl")).unwrap();
    let rows = Manifest::new(m.samples.iter().cycle().take(ROWS).cloned().collect());
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &rows).unwrap();
    drop(client);

    let predictor = common::small_cnn_predictor(3);
    let stream_config = StreamConfig {
        source_url: Some(url.clone()),
        data_root: data.join("monday"),
        batch_size: 16,
        poll_interval: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        exit_when_idle: true,
        ..StreamConfig::default()
    };
    let topic = "restart-test";
    ensure_topic(&brokers, topic, 2).unwrap();
    let publish_config = PublishConfig {
        source_url: Some(url.clone()),
        brokers: brokers.clone(),
        topic: topic.into(),
        batch_size: 8,
        poll_interval: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        exit_when_idle: true,
        ..PublishConfig::default()
    };
    let (streamed, published) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Both are paced (the streamer to 800 rows/s, 20 ms per batch of 16; the publisher likewise,
    // 10 ms per batch of 8) so that neither can finish the 3000 rows before the restart that
    // follows their first batches.
    let stream_control = counting(&streamed, Duration::from_millis(20));
    let publish_control = counting(&published, Duration::from_millis(10));
    let (stream_stats, publish_stats) = std::thread::scope(|s| {
        let streamer =
            s.spawn(|| stream_predictions(&stream_config, &predictor, "v", &stream_control));
        let publisher = s.spawn(|| publish_rows(&publish_config, &publish_control));
        wait_until(
            "both jobs to be under way",
            Duration::from_secs(120),
            || {
                streamer.is_finished()
                    || publisher.is_finished()
                    || (streamed.load(Ordering::Relaxed) >= 100
                        && published.load(Ordering::Relaxed) >= 48)
            },
        );
        if streamer.is_finished() || publisher.is_finished() {
            let (s, p) = (
                streamed.load(Ordering::Relaxed),
                published.load(Ordering::Relaxed),
            );
            stream_control.cancel();
            publish_control.cancel();
            panic!(
                "a job ended before the restart ({s} rows streamed, {p} published): {:?} / {:?}",
                streamer.join().unwrap(),
                publisher.join().unwrap()
            );
        }
        let status = Command::new("sh").args(["-c", &restart]).status().unwrap();
        assert!(status.success(), "restart failed: {restart}");
        eprintln!(
            "restarted at {} rows streamed, {} published",
            streamed.load(Ordering::Relaxed),
            published.load(Ordering::Relaxed)
        );
        (
            streamer.join().unwrap().unwrap(),
            publisher.join().unwrap().unwrap(),
        )
    });
    eprintln!("{stream_stats:?}\n{publish_stats:?}");
    assert!(stream_stats.reconnects >= 1, "{stream_stats:?}");
    let client = &mut connect(Some(&url)).unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM cargo_prediction",
            &[],
        )
        .unwrap();
    let (n, distinct, lo, hi): (i64, i64, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        (n, distinct, lo, hi),
        (ROWS as i64, ROWS as i64, 1, ROWS as i32)
    );

    // The publisher reconnected and every id reached the topic (a batch whose position was not
    // saved before the restart may be sent twice: the consumers' writes are idempotent).
    assert!(
        publish_stats.reconnects >= 1,
        "the restart missed the publisher: {publish_stats:?}"
    );
    let ids = topic_ids(topic, ROWS);
    assert_eq!(ids.len(), ROWS, "ids missing from the topic");
    assert_eq!(ids.keys().next(), Some(&1));
    assert_eq!(ids.keys().last(), Some(&(ROWS as i32)));
    let repeated = ids.values().filter(|&&c| c > 1).count();
    assert!(
        repeated <= publish_config.batch_size,
        "{repeated} ids published twice: more than one unsaved batch"
    );
}
