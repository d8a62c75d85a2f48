//! Drift checks in the streaming predictor, against a real PostgreSQL: monday rows the
//! reference never saw stay quiet, tuesday's corrupted rows raise an alarm within a few
//! windows, and each check is one `cargo_drift` row committed with its batch, also across a
//! restart. Monday's rows are split in two at random (seeded): the package's reference sample
//! is made from one half, the stream gets the other. The model is the small random-weight CNN,
//! whose predicted classes do not follow the true ones, so the rows go in a seeded random
//! order (the class-ordered stream is the demo's, with a trained model).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{demo_data, fresh_db};
use mlops_core::artifact::{ModelPackage, PackageInfo};
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::db::{StreamConfig, bulk_load, connect, create_table, stream_predictions};
use mlops_core::drift::MonitorConfig;
use mlops_core::predict::Predictor;
use mlops_core::{ComputeBackend, Control};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// `day/<path>` rows of a day's manifest (the stream's data root is `data/`).
fn rows(day: &str) -> Vec<Sample> {
    let m = Manifest::read(&demo_data().join(format!("{day}.jsonl"))).unwrap();
    m.samples
        .into_iter()
        .map(|s| Sample {
            image_path: format!("{day}/{}", s.image_path),
            ..s
        })
        .collect()
}

/// Monday's rows in a seeded random order, split in two: (reference rows, streamed rows).
fn monday_halves() -> (Vec<Sample>, Vec<Sample>) {
    let mut monday = rows("monday");
    monday.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(2022));
    let streamed = monday.split_off(monday.len() / 2);
    (monday, streamed)
}

/// The small-CNN test model with a reference sample of its own features on `reference` rows.
fn package_with_reference(dir: &std::path::Path, reference: &[Sample]) -> String {
    let plain = common::small_cnn_package(7);
    let predictor = common::small_cnn_predictor(7);
    let paths: Vec<_> = reference
        .iter()
        .map(|s| demo_data().join(&s.image_path))
        .collect();
    let targets: Vec<u32> = reference.iter().map(|s| s.target).collect();
    let reference = common::reference_of(&predictor, &paths, Some(&targets));
    let (package, _) = ModelPackage::new(
        plain.model,
        plain.metadata.classes,
        plain.metadata.preprocess,
        PackageInfo {
            reference: Some(reference),
            ..PackageInfo::default()
        },
    )
    .unwrap();
    let uri = dir.join("model").display().to_string();
    package.save(&uri).unwrap();
    uri
}

/// `(first_id, last_id, drift)` of every check, in order.
fn checks(url: &str) -> Vec<(i64, i64, bool)> {
    connect(Some(url))
        .unwrap()
        .query(
            "SELECT first_id, last_id, drift FROM cargo_drift ORDER BY last_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[test]
fn monday_stays_quiet_tuesday_alarms_and_every_check_is_written_once() {
    let url = fresh_db("stream_drift");
    let dir = tempfile::tempdir().unwrap();
    let (reference_rows, monday) = monday_halves();
    let predictor = Predictor::load(
        &package_with_reference(dir.path(), &reference_rows),
        ComputeBackend::Flex,
    )
    .unwrap();
    assert!(
        predictor.reference().is_some(),
        "the package keeps its reference"
    );
    assert!(
        !monday.iter().any(|s| reference_rows.contains(s)),
        "the streamed rows are not the reference's"
    );
    let tuesday = rows("tuesday");
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &Manifest::new(monday.clone())).unwrap();
    let monitor = MonitorConfig {
        every: 20,
        ..MonitorConfig::default()
    };
    let config = StreamConfig {
        source_url: Some(url.clone()),
        data_root: demo_data(),
        batch_size: 64,
        poll_interval: Duration::from_millis(50),
        exit_when_idle: true,
        drift: Some(monitor),
        ..StreamConfig::default()
    };
    let first = stream_predictions(&config, &predictor, "v1", &Control::new()).unwrap();
    // Tuesday's rows arrive later; a new streamer (a restart) picks up from the position.
    bulk_load(&mut client, &Manifest::new(tuesday.clone())).unwrap();
    let second = stream_predictions(&config, &predictor, "v1", &Control::new()).unwrap();

    let written = checks(&url);
    assert_eq!(
        written.len() as u64,
        first.drift_checks + second.drift_checks,
        "one cargo_drift row per check"
    );
    let monday_ids = monday.len() as i64;
    // Monday's rows: a check every 20 rows (an alarm would add checks where it starts).
    assert_eq!(first.drift_checks, monday_ids as u64 / 20);
    for (first_id, last_id, _) in &written {
        assert!(first_id <= last_id, "evidence {first_id}..{last_id}");
    }
    let monday_alarms = written
        .iter()
        .filter(|(_, last, drift)| *last <= monday_ids && *drift)
        .count();
    assert_eq!(
        monday_alarms, 0,
        "alarms on unseen monday rows: {written:?}"
    );
    let first_alarm = written
        .iter()
        .find(|(_, _, drift)| *drift)
        .map(|(first, last, _)| (first - monday_ids, last - monday_ids))
        .expect("an alarm on tuesday's rows");
    // The alarm comes a few rows into tuesday and dates its evidence from about where it began.
    assert!(
        first_alarm.1 > 0 && first_alarm.1 <= 40,
        "first alarm {} rows into tuesday",
        first_alarm.1
    );
    assert!(
        first_alarm.0 > -25,
        "the alarm's evidence starts {} rows before tuesday",
        -first_alarm.0
    );
    assert!(second.drift_alarms > second.drift_checks / 2, "{second:?}");
    // Streaming again adds nothing: the checks were committed with their batches.
    let again = stream_predictions(&config, &predictor, "v1", &Control::new()).unwrap();
    assert_eq!(again.drift_checks, 0);
    assert_eq!(checks(&url), written);
}
