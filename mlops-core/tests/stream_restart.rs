//! The streaming predictor while PostgreSQL restarts. A test binary of its own: the restart
//! drops every connection to the shared test server, so nothing else may run meanwhile (test
//! binaries run one after another).

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{demo_data, fresh_db};
use mlops_core::dataset::Manifest;
use mlops_core::db::{StreamConfig, bulk_load, connect, create_table, stream_predictions};

#[test]
fn the_stream_resumes_after_a_database_restart() {
    let restart = std::env::var("MLOPS_TEST_PG_RESTART").unwrap_or_else(|_| {
        panic!("MLOPS_TEST_PG_RESTART is not set: run the tests through `make test` (scripts/with-services.sh)")
    });
    let url = fresh_db("stream_restart");
    let data = demo_data();
    let m = Manifest::read(&data.join("monday.jsonl")).unwrap();
    let rows = Manifest::new(m.samples.iter().cycle().take(3000).cloned().collect());
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &rows).unwrap();
    drop(client);

    let predictor = common::small_cnn_predictor(3);

    let config = StreamConfig {
        source_url: Some(url.clone()),
        data_root: data.join("monday"),
        batch_size: 16,
        poll_interval: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        exit_when_idle: true,
        ..StreamConfig::default()
    };
    let committed = Arc::new(AtomicU64::new(0));
    let reported = Arc::clone(&committed);
    let stats = std::thread::scope(|s| {
        let streamer = s.spawn(|| {
            stream_predictions(
                &config,
                &predictor,
                "v",
                &mlops_core::Control::new().with_progress(move |p: &mlops_core::Progress<'_>| {
                    reported.store(p.done, Ordering::Relaxed);
                }),
            )
        });
        while committed.load(Ordering::Relaxed) < 200 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = Command::new("sh").args(["-c", &restart]).status().unwrap();
        assert!(status.success(), "restart failed: {restart}");
        eprintln!("restarted at {} rows", committed.load(Ordering::Relaxed));
        streamer.join().unwrap().unwrap()
    });
    eprintln!("{stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
    let client = &mut connect(Some(&url)).unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM cargo_prediction",
            &[],
        )
        .unwrap();
    let (n, distinct, lo, hi): (i64, i64, i32, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((n, distinct, lo, hi), (3000, 3000, 1, 3000));
}
