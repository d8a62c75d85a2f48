//! The closed loop against a real PostgreSQL: a champion swapped into a running stream whose
//! streamers are SIGKILLed around the swap (every id predicted once, by the model that was
//! champion when its batch ran), and the drift-triggered adaptation killed midway (the pointer
//! does not move; a rerun resumes the same attempt and finishes it). The models are small CNNs
//! on 32-pixel inputs: the loop's guarantees do not depend on accuracy.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{demo_data, fresh_db};
use mlops_core::adapt::{ChampionWatch, Registry};
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::db::adapt::{AdaptLoopConfig, Look, look_once};
use mlops_core::db::{
    StreamConfig, StreamStats, bulk_load, connect, create_table, ensure_prediction_tables,
    stream_predictions,
};
use mlops_core::predict::Predictor;
use mlops_core::{ComputeBackend, Control};
use rand::{Rng, SeedableRng};

fn value(url: &str, sql: &str) -> i64 {
    connect(Some(url))
        .unwrap()
        .query_one(sql, &[])
        .unwrap()
        .get(0)
}

/// A child test process, SIGKILLed when dropped (a failing parent leaves none behind).
struct Killed(Child);

impl Killed {
    fn kill(&mut self) -> std::process::ExitStatus {
        let _ = self.0.kill(); // SIGKILL
        self.0.wait().unwrap()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

fn child(test: &str, spec: String) -> Killed {
    Killed(
        Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", test, "--test-threads=1"])
            .env("MLOPS_ADAPT_CHILD", spec)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn spec() -> Vec<String> {
    std::env::var("MLOPS_ADAPT_CHILD")
        .expect("run by its parent test")
        .split('\n')
        .map(str::to_string)
        .collect()
}

fn wait_for(what: &str, done: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(60), done);
}

fn stream_config(url: &str, root: &Path, registry: &str) -> StreamConfig {
    StreamConfig {
        source_url: Some(url.to_string()),
        data_root: root.to_path_buf(),
        batch_size: 16,
        poll_interval: Duration::from_millis(50),
        exit_when_idle: true,
        drift: None,
        champion: Some(ChampionWatch {
            registry: Registry::new(registry),
            interval: Duration::from_millis(50),
        }),
        ..StreamConfig::default()
    }
}

/// Streams with the registry's first model until killed; starts from `package` (the model the
/// process was configured with) and swaps to the champion.
fn stream_from(url: &str, root: &Path, registry: &str, package: &str) -> StreamStats {
    let predictor = Predictor::load(package, ComputeBackend::Flex).unwrap();
    let version = mlops_core::artifact::load_parts(package)
        .unwrap()
        .0
        .version()
        .to_string();
    stream_predictions(
        &stream_config(url, root, registry),
        &predictor,
        &version,
        &Control::new(),
    )
    .unwrap()
}

/// Not a test: the streamer that `a_swap_survives_sigkill` starts and kills.
#[test]
#[ignore = "run by a_swap_mid_stream_survives_sigkill_with_every_id_once as a child process"]
fn swap_stream_child() {
    let s = spec();
    stream_from(&s[0], Path::new(&s[1]), &s[2], &s[3]);
}

#[test]
fn a_swap_mid_stream_survives_sigkill_with_every_id_once() {
    let _deadline = common::Deadline::new(
        "a_swap_mid_stream_survives_sigkill_with_every_id_once",
        Duration::from_secs(300),
    );
    let url = fresh_db("adapt_swap");
    let root = demo_data().join("monday");
    let m = Manifest::read(&demo_data().join("monday.jsonl")).unwrap();
    const ROWS: i64 = 6000;
    let rows = Manifest::new(
        m.samples
            .iter()
            .cycle()
            .take(ROWS as usize)
            .cloned()
            .collect(),
    );
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &rows).unwrap();
    ensure_prediction_tables(&mut client).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path().join("registry").display().to_string());
    let (a_uri, b_uri) = (registry.model_uri("a"), registry.model_uri("b"));
    common::small_cnn_package(1).save(&a_uri).unwrap();
    common::small_cnn_package(2).save(&b_uri).unwrap();
    let first = registry.init_champion(&a_uri).unwrap();
    let spec = format!("{url}\n{}\n{}\n{a_uri}", root.display(), registry.uri());
    let count = |version: Option<&str>| match version {
        Some(v) => value(
            &url,
            &format!("SELECT count(*) FROM cargo_prediction WHERE model_version = '{v}'"),
        ),
        None => value(&url, "SELECT count(*) FROM cargo_prediction"),
    };

    // The swap lands while a streamer runs; it is killed right after its first batch by B.
    let mut streamer = child("swap_stream_child", spec.clone());
    wait_for("200 predictions", || count(None) >= 200);
    let b = registry
        .replace_champion(Some(&first), &b_uri, "test swap")
        .unwrap()
        .unwrap();
    wait_for("a prediction by the new champion", || {
        count(Some(&b.version)) > 0
    });
    streamer.kill();
    let after_swap = count(None);
    assert!(after_swap < ROWS, "the streamer finished before the kill");
    // More kills at random moments, restarting from the configured (old) package each time.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2022);
    for _ in 0..3 {
        let mut streamer = child("swap_stream_child", spec.clone());
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1200)));
        streamer.kill();
    }
    let before_last = count(None);
    let stats = stream_from(&url, &root, registry.uri(), &a_uri);
    assert_eq!(
        stats.swaps, 1,
        "a restarted streamer swaps before its first batch"
    );
    assert_eq!(stats.model_version, b.version);
    assert_eq!(stats.rows as i64, ROWS - before_last);

    let predicted: Vec<(i32, i32, String)> = client
        .query(
            "SELECT id, target, model_version FROM cargo_prediction ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(predicted.len() as i64, ROWS, "one prediction per id");
    let last_a = predicted
        .iter()
        .rposition(|p| p.2 == first.version)
        .unwrap();
    let first_b = predicted.iter().position(|p| p.2 == b.version).unwrap();
    assert_eq!(
        last_a + 1,
        first_b,
        "ids before the swap by A, after it by B"
    );
    assert!(
        predicted
            .iter()
            .all(|p| p.2 == first.version || p.2 == b.version)
    );
    assert!(first_b as i64 >= 200 && (first_b as i64) < after_swap);
    // Each row's class is the one its model gives.
    let (pa, pb) = (
        Predictor::load(&a_uri, ComputeBackend::Flex).unwrap(),
        Predictor::load(&b_uri, ComputeBackend::Flex).unwrap(),
    );
    let (da, db) = (
        pa.predict_manifest(&root, &m).unwrap(),
        pb.predict_manifest(&root, &m).unwrap(),
    );
    let mut differ = 0;
    for (i, (_, target, version)) in predicted.iter().enumerate() {
        let direct = if *version == b.version { &db } else { &da };
        let expected = direct[i % m.len()].as_ref().unwrap().class_id as i32;
        assert_eq!(*target, expected, "row {} by {version}", i + 1);
        differ += usize::from(
            da[i % m.len()].as_ref().unwrap().class_id
                != db[i % m.len()].as_ref().unwrap().class_id,
        );
    }
    assert!(
        differ > 0,
        "the two models must disagree somewhere for this test to mean anything"
    );
}

/// `day/<path>` rows of a day's manifest (the data root is `data/`).
fn rooted(day: &str, manifest: &str) -> Vec<Sample> {
    Manifest::read(&demo_data().join(manifest))
        .unwrap()
        .samples
        .into_iter()
        .map(|s| Sample::new(format!("{day}/{}", s.image_path), s.target))
        .collect()
}

fn loop_config(url: &str, registry: &str, min_rows: usize) -> AdaptLoopConfig {
    let old = Manifest::new(
        rooted("monday", "monday_train.jsonl")
            .into_iter()
            .step_by(4)
            .collect(),
    );
    let mut config =
        AdaptLoopConfig::new("s", Registry::new(registry), demo_data(), demo_data(), old);
    config.source_url = Some(url.to_string());
    config.min_rows = min_rows;
    config
}

/// Not a test: the adapter that `an_adaptation_killed_midway...` starts and kills; it waits a
/// little at every progress report so the kill lands midway.
#[test]
#[ignore = "run by an_adaptation_killed_midway_leaves_the_pointer_and_a_rerun_finishes"]
fn adapter_child() {
    let s = spec();
    let slow = Control::new().with_progress(|_: &mlops_core::Progress<'_>| {
        std::thread::sleep(Duration::from_millis(100));
    });
    look_once(&loop_config(&s[0], &s[1], 100), &slow).unwrap();
}

#[test]
fn an_adaptation_killed_midway_leaves_the_pointer_and_a_rerun_finishes() {
    let _deadline = common::Deadline::new(
        "an_adaptation_killed_midway_leaves_the_pointer_and_a_rerun_finishes",
        Duration::from_secs(600),
    );
    let url = fresh_db("adapt_kill");
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    let monday: Vec<Sample> = rooted("monday", "monday_test.jsonl");
    let tuesday: Vec<Sample> = rooted("tuesday", "tuesday_train.jsonl")
        .into_iter()
        .step_by(2)
        .collect();
    bulk_load(&mut client, &Manifest::new(monday.clone())).unwrap();
    bulk_load(&mut client, &Manifest::new(tuesday.clone())).unwrap();
    ensure_prediction_tables(&mut client).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path().join("registry").display().to_string());
    let parent_uri = registry.model_uri("parent");
    common::small_cnn_package(3).save(&parent_uri).unwrap();
    let parent = registry.init_champion(&parent_uri).unwrap();
    let first_tuesday = monday.len() as i64 + 1;
    let alarm = |stream: &str, first: i64, version: &str| {
        connect(Some(&url)).unwrap().execute(
            "INSERT INTO cargo_drift (stream, first_id, last_id, method, statistic, p_value, drift,
                 window_rows, model_version) VALUES ($1, $2, $3, 'mmd', 1, 0.0001, true, 50, $4)",
            &[&stream, &first, &(first + 49), &version],
        ).unwrap();
    };
    let control = Control::new();
    // No alarm for this stream's champion yet: nothing to do.
    alarm("another-stream", first_tuesday, &parent.version);
    alarm("s", 1, "an-older-model");
    assert_eq!(
        look_once(&loop_config(&url, registry.uri(), 100), &control).unwrap(),
        Look::NoAlarm
    );
    alarm("s", first_tuesday, &parent.version);
    let labelled = tuesday.len() as u64;
    assert_eq!(
        look_once(&loop_config(&url, registry.uri(), 1000), &control).unwrap(),
        Look::Waiting {
            rows: labelled,
            needed: 1000
        }
    );
    // One adapter at a time: while another holds the stream's lock, a look does nothing.
    let mut holder = connect(Some(&url)).unwrap();
    holder
        .execute("SELECT pg_advisory_lock(hashtext('mlops.adapt:s'))", &[])
        .unwrap();
    assert_eq!(
        look_once(&loop_config(&url, registry.uri(), 100), &control).unwrap(),
        Look::Busy
    );
    drop(holder);

    // Killed midway: the attempt is on record, unfinished; the pointer has not moved.
    let mut adapter = child("adapter_child", format!("{url}\n{}", registry.uri()));
    wait_for("the attempt to start", || {
        value(&url, "SELECT count(*) FROM cargo_adaptation") > 0
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = adapter.kill();
    assert!(!status.success(), "the adapter finished before the kill");
    assert_eq!(
        value(
            &url,
            "SELECT count(*) FROM cargo_adaptation WHERE finished_at IS NULL"
        ),
        1
    );
    assert_eq!(registry.champion().unwrap(), Some(parent.clone()));
    assert!(registry.decisions().unwrap().is_empty());

    // The rerun resumes that attempt on the same rows and finishes it.
    let Look::Decided(attempt) =
        look_once(&loop_config(&url, registry.uri(), 100), &control).unwrap()
    else {
        panic!("the rerun did not decide")
    };
    assert!(attempt.resumed);
    assert_eq!(
        attempt.ids,
        (first_tuesday, first_tuesday + labelled as i64 - 1)
    );
    assert_eq!(attempt.rows, labelled);
    assert!(attempt.decision.promoted, "{:?}", attempt.decision);
    let champion = registry.champion().unwrap().unwrap();
    assert_eq!(
        (champion.generation, &champion.version),
        (2, &attempt.decision.challenger)
    );
    assert_eq!(
        value(
            &url,
            "SELECT count(*) FROM cargo_adaptation WHERE finished_at IS NULL"
        ),
        0
    );
    let loaded = mlops_core::artifact::load_parts(&attempt.package)
        .unwrap()
        .0;
    let lineage = loaded.lineage.unwrap();
    assert_eq!(lineage.parent_version, parent.version);
    assert!(
        lineage
            .source
            .unwrap()
            .contains(&format!("cargo ids {first_tuesday}..="))
    );
    // The new champion has no alarm: the next look waits for one.
    assert_eq!(
        look_once(&loop_config(&url, registry.uri(), 100), &control).unwrap(),
        Look::NoAlarm
    );
}
