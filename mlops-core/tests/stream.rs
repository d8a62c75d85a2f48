//! The streaming predictor against a real PostgreSQL (started by `scripts/with-services.sh`):
//! exactly once under SIGKILL, rows committed out of id order, expired gaps, bad rows.
//! Each test works in its own database. The model is a small CNN on 32-pixel inputs (the
//! stream's guarantees do not depend on the model; its speed keeps 10 000 rows quick).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{demo_data, fresh_db, pg_server_url};
use mlops_core::ComputeBackend;
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::db::ensure_prediction_tables;
use mlops_core::db::{
    StreamConfig, StreamStats, bulk_load, connect, create_table, stream_predictions,
};
use mlops_core::predict::Predictor;
use rand::{Rng, SeedableRng};

/// Saves the small-CNN test package under `dir` and returns its path.
fn small_package(dir: &Path) -> String {
    let uri = dir.join("model").display().to_string();
    common::small_cnn_package(7).save(&uri).unwrap();
    uri
}

fn monday() -> (PathBuf, Manifest) {
    let data = demo_data();
    (
        data.join("monday"),
        Manifest::read(&data.join("monday.jsonl")).unwrap(),
    )
}

fn config(url: &str, root: &Path, batch_size: usize) -> StreamConfig {
    StreamConfig {
        source_url: Some(url.to_string()),
        data_root: root.to_path_buf(),
        batch_size,
        poll_interval: Duration::from_millis(50),
        exit_when_idle: true,
        ..StreamConfig::default()
    }
}

fn run(config: &StreamConfig, predictor: &Predictor) -> StreamStats {
    stream_predictions(config, predictor, "test", &mlops_core::Control::new()).unwrap()
}

/// `(id, target, probability)` of every prediction, in id order.
fn predictions(url: &str) -> Vec<(i32, i32, f32)> {
    connect(Some(url))
        .unwrap()
        .query(
            "SELECT id, target, probability FROM cargo_prediction ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn count(url: &str, table: &str) -> i64 {
    connect(Some(url))
        .unwrap()
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

/// Sets the flag when dropped, so a failing assertion does not leave a streamer running.
struct StopOnDrop<'a>(&'a mlops_core::Control);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Not a test: the streamer process that `streamer_survives_sigkill` starts and kills.
#[test]
#[ignore = "run by streamer_survives_sigkill as a child process"]
fn stream_child() {
    let spec = std::env::var("MLOPS_STREAM_CHILD").expect("run by streamer_survives_sigkill");
    let [url, root, package]: [&str; 3] = spec.split('\n').collect::<Vec<_>>().try_into().unwrap();
    let predictor = Predictor::load(package, ComputeBackend::Flex).unwrap();
    run(&config(url, Path::new(root), 16), &predictor);
}

#[test]
fn streamer_survives_sigkill_with_every_row_once() {
    let _deadline = common::Deadline::new(
        "streamer_survives_sigkill_with_every_row_once",
        Duration::from_secs(300),
    );
    let url = fresh_db("stream_kill");
    let (root, m) = monday();
    let rows = Manifest::new(m.samples.iter().cycle().take(10_000).cloned().collect());
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &rows).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let package = small_package(dir.path());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2022);
    let mut interrupted = 0;
    for round in 0..6 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "stream_child", "--test-threads=1"])
            .env(
                "MLOPS_STREAM_CHILD",
                format!("{url}\n{}\n{package}", root.display()),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let done = count(&url, "cargo_prediction");
        eprintln!("round {round}: killed ({status}) with {done} rows predicted");
        if !status.success() && done < 10_000 {
            interrupted += 1;
        }
    }
    let before_last = count(&url, "cargo_prediction");
    assert!(
        interrupted >= 3,
        "only {interrupted} kills landed mid-stream"
    );
    assert!(before_last > 0, "the killed streamers committed nothing");

    let predictor = Predictor::load(&package, ComputeBackend::Flex).unwrap();
    let stats = run(&config(&url, &root, 64), &predictor);
    assert_eq!(stats.rows as i64, 10_000 - before_last);
    assert_eq!(stats.errors, 0);

    let streamed = predictions(&url);
    assert_eq!(streamed.len(), 10_000, "one prediction per source row");
    assert_eq!(count(&url, "cargo_prediction_error"), 0);
    // The same as predicting the manifest directly, in one batch run.
    let direct = predictor.predict_manifest(&root, &m).unwrap();
    for (i, (id, target, probability)) in streamed.iter().enumerate() {
        assert_eq!(*id, i as i32 + 1);
        let expected = direct[i % m.len()].as_ref().unwrap();
        assert_eq!(*target, expected.class_id as i32, "row {id}");
        assert!(
            (probability - expected.confidence()).abs() < 1e-4,
            "row {id}"
        );
    }
}

#[test]
fn a_row_committed_after_a_higher_id_is_still_predicted() {
    let _deadline = common::Deadline::new(
        "a_row_committed_after_a_higher_id_is_still_predicted",
        Duration::from_secs(120),
    );
    let url = fresh_db("stream_order");
    let (root, m) = monday();
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &Manifest::new(m.samples[..10].to_vec())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let predictor = Predictor::load(&small_package(dir.path()), ComputeBackend::Flex).unwrap();

    // A slow writer takes id 11 and keeps its transaction open.
    let mut slow = connect(Some(&url)).unwrap();
    let mut slow_tx = slow.transaction().unwrap();
    let held: i32 = slow_tx
        .query_one(
            "INSERT INTO cargo (timestamp, image_path, target) VALUES (localtimestamp, $1, 0) RETURNING id",
            &[&m.samples[10].image_path],
        )
        .unwrap()
        .get(0);
    // A fast writer commits id 12.
    let fast: i32 = client
        .query_one(
            "INSERT INTO cargo (timestamp, image_path, target) VALUES (localtimestamp, $1, 1) RETURNING id",
            &[&m.samples[11].image_path],
        )
        .unwrap()
        .get(0);
    assert!(held < fast);

    let stop = mlops_core::Control::new();
    let config = StreamConfig {
        exit_when_idle: false,
        ..config(&url, &root, 4)
    };
    let predicted = |id: i32| {
        connect(Some(&url))
            .unwrap()
            .query_opt("SELECT 1 FROM cargo_prediction WHERE id = $1", &[&id])
            .unwrap()
            .is_some()
    };
    let wait_for = |id: i32| {
        let until = Instant::now() + Duration::from_secs(60);
        while !predicted(id) {
            assert!(Instant::now() < until, "id {id} was never predicted");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    ensure_prediction_tables(&mut client).unwrap();
    std::thread::scope(|s| {
        let streamer = s.spawn(|| stream_predictions(&config, &predictor, "test", &stop).unwrap());
        let _stop_on_panic = StopOnDrop(&stop);
        wait_for(fast);
        assert!(!predicted(held), "id {held} is not committed yet");
        slow_tx.commit().unwrap();
        wait_for(held);
        stop.cancel();
        let stats = streamer.join().unwrap();
        assert_eq!(stats.rows, 12);
        assert_eq!(stats.awaited_ids, 0);
    });
    assert_eq!(count(&url, "cargo_prediction"), 12);
}

#[test]
fn a_rolled_back_id_stops_being_awaited_after_the_grace_period() {
    let _deadline = common::Deadline::new(
        "a_rolled_back_id_stops_being_awaited_after_the_grace_period",
        Duration::from_secs(120),
    );
    let url = fresh_db("stream_rollback");
    let (root, m) = monday();
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    let mut tx = client.transaction().unwrap();
    tx.execute(
        "INSERT INTO cargo (timestamp, image_path, target) VALUES (localtimestamp, $1, 0)",
        &[&m.samples[0].image_path],
    )
    .unwrap();
    tx.rollback().unwrap();
    bulk_load(&mut client, &Manifest::new(m.samples[1..4].to_vec())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let predictor = Predictor::load(&small_package(dir.path()), ComputeBackend::Flex).unwrap();

    // With a long grace period the stream keeps waiting for id 1 (so it does not go idle).
    let stop = mlops_core::Control::new();
    let waiting = StreamConfig {
        gap_grace: Duration::from_secs(3600),
        ..config(&url, &root, 8)
    };
    std::thread::scope(|s| {
        let streamer = s.spawn(|| stream_predictions(&waiting, &predictor, "test", &stop).unwrap());
        let _stop_on_panic = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(1500));
        stop.cancel();
        let stats = streamer.join().unwrap();
        assert_eq!(stats.rows, 3);
        assert_eq!(stats.awaited_ids, 1);
    });
    // With no grace period the rolled-back id is given up and the stream goes idle.
    let stats = run(
        &StreamConfig {
            gap_grace: Duration::ZERO,
            ..config(&url, &root, 8)
        },
        &predictor,
    );
    assert_eq!((stats.rows, stats.awaited_ids), (0, 0));
    let gaps: i64 = client
        .query_one("SELECT count(*) FROM cargo_stream_gap", &[])
        .unwrap()
        .get(0);
    assert_eq!(gaps, 0);
    assert_eq!(count(&url, "cargo_prediction"), 3);
}

#[test]
fn bad_rows_go_to_the_error_table_and_odd_rows_are_predicted() {
    let _deadline = common::Deadline::new(
        "bad_rows_go_to_the_error_table_and_odd_rows_are_predicted",
        Duration::from_secs(120),
    );
    let url = fresh_db("stream_bad");
    let (root, m) = monday();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("brick")).unwrap();
    std::fs::copy(
        root.join(&m.samples[0].image_path),
        data.join("brick/it's \"odd\".png"),
    )
    .unwrap();
    std::fs::copy(
        root.join(&m.samples[1].image_path),
        data.join("brick/ok.png"),
    )
    .unwrap();
    std::fs::write(data.join("brick/not-an-image.png"), b"plain text").unwrap();
    // A link to a folder inside the root is followed; one to a readable image outside is not.
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(data.join("brick/ok.png"), outside.join("secret.png")).unwrap();
    std::os::unix::fs::symlink(data.join("brick"), data.join("linked")).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("escape")).unwrap();
    let rows = Manifest::new(vec![
        Sample::new("brick/it's \"odd\".png", 1),
        Sample::new("brick/missing.png", 1),
        Sample::new("brick/not-an-image.png", 1),
        Sample::new("../data/brick/ok.png", 1),
        Sample::new("brick/ok.png", 99),
        Sample::new("linked/ok.png", 1),
        Sample::new("escape/secret.png", 1),
    ]);
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &rows).unwrap();
    client
        .execute(
            "INSERT INTO cargo (timestamp, image_path, target) VALUES (NULL, NULL, NULL)",
            &[],
        )
        .unwrap();
    let predictor = Predictor::load(&small_package(work.path()), ComputeBackend::Flex).unwrap();
    let stats = run(&config(&url, &data, 64), &predictor);
    assert_eq!((stats.rows, stats.predicted, stats.errors), (8, 3, 5));
    assert_eq!(stats.unknown_targets, 1);
    let predicted: Vec<i32> = predictions(&url).iter().map(|p| p.0).collect();
    assert_eq!(predicted, vec![1, 5, 6]);
    let errors: HashMap<i32, String> = client
        .query("SELECT id, reason FROM cargo_prediction_error", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(errors[&2].contains("missing.png"), "{}", errors[&2]);
    assert!(errors[&3].contains("not-an-image.png"), "{}", errors[&3]);
    assert!(
        errors[&4].contains("leaves the data root"),
        "{}",
        errors[&4]
    );
    assert!(errors[&7].contains("through the link"), "{}", errors[&7]);
    assert!(errors[&8].contains("NULL"), "{}", errors[&8]);
    // Running again finds nothing new.
    assert_eq!(run(&config(&url, &data, 64), &predictor).rows, 0);
}

#[test]
fn empty_and_missing_tables_and_a_wrong_password_are_clear() {
    let url = fresh_db("stream_empty");
    let dir = tempfile::tempdir().unwrap();
    let predictor = Predictor::load(&small_package(dir.path()), ComputeBackend::Flex).unwrap();
    let root = dir.path().to_path_buf();

    let err = stream_predictions(
        &config(&url, &root, 8),
        &predictor,
        "t",
        &mlops_core::Control::new(),
    )
    .unwrap_err()
    .report();
    assert!(
        err.contains("cargo") && err.contains("does not exist"),
        "{err}"
    );

    create_table(&mut connect(Some(&url)).unwrap(), false).unwrap();
    let stats = run(&config(&url, &root, 8), &predictor);
    assert_eq!(
        stats,
        StreamStats {
            seconds: stats.seconds,
            model_version: "test".into(),
            ..StreamStats::default()
        }
    );
    assert_eq!(count(&url, "cargo_prediction"), 0);

    let wrong = pg_server_url().replace("mlops-test-password", "wrong-secret");
    let err = stream_predictions(
        &config(&wrong, &root, 8),
        &predictor,
        "t",
        &mlops_core::Control::new(),
    )
    .unwrap_err()
    .report();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
}

#[test]
fn predictions_can_go_to_another_database_and_two_streamers_share_a_stream() {
    let _deadline = common::Deadline::new(
        "predictions_can_go_to_another_database_and_two_streamers_share_a_stream",
        Duration::from_secs(180),
    );
    let source = fresh_db("stream_src");
    let sink = fresh_db("stream_sink");
    let (root, m) = monday();
    let mut client = connect(Some(&source)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(
        &mut client,
        &Manifest::new(m.samples.iter().cycle().take(1500).cloned().collect()),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let predictor = Predictor::load(&small_package(dir.path()), ComputeBackend::Flex).unwrap();
    let config = StreamConfig {
        sink_url: Some(sink.clone()),
        ..config(&source, &root, 16)
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&config, &predictor));
        let b = s.spawn(|| run(&config, &predictor));
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!("two streamers: {a:?} {b:?}");
    assert_eq!(
        a.rows + b.rows,
        1500,
        "each row consumed by exactly one of them"
    );
    assert_eq!(count(&sink, "cargo_prediction"), 1500);
    let in_source: bool = client
        .query_one("SELECT to_regclass('cargo_prediction') IS NULL", &[])
        .unwrap()
        .get(0);
    assert!(in_source, "nothing written to the source database");
}
