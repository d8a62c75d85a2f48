//! Jobs that start together on a fresh database: every pair of table-creating jobs (the
//! generator, a stream or Kafka consumer, a Kafka publisher, the adapter) creates its tables
//! at the same instant, many times, and both succeed with every table in place.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{Deadline, fresh_db};
use mlops_core::db::{
    connect, create_table, ensure_adaptation_table, ensure_position_tables, ensure_stream_tables,
};

/// A job's start-up: the function it calls to create its tables.
#[derive(Debug, Clone, Copy)]
enum Job {
    Generator,
    /// The stream and the Kafka consumer (same start-up).
    Stream,
    Publisher,
    Adapter,
}

const JOBS: [Job; 4] = [Job::Generator, Job::Stream, Job::Publisher, Job::Adapter];

fn start(job: Job, client: &mut postgres::Client) -> Result<(), String> {
    let classes: Vec<String> = ["brick", "wood"].map(String::from).to_vec();
    match job {
        Job::Generator => create_table(client, false).map_err(|e| e.to_string()),
        Job::Stream => ensure_stream_tables(client, &classes).map_err(|e| format!("{e:?}")),
        Job::Publisher => ensure_position_tables(client).map_err(|e| format!("{e:?}")),
        Job::Adapter => ensure_adaptation_table(client).map_err(|e| format!("{e:?}")),
    }
}

/// The tables `job` must have made.
fn tables(job: Job) -> &'static [&'static str] {
    match job {
        Job::Generator => &["cargo"],
        Job::Stream => &[
            "cargo_prediction",
            "cargo_prediction_error",
            "cargo_class",
            "cargo_drift",
            "cargo_stream_offset",
            "cargo_stream_gap",
        ],
        Job::Publisher => &["cargo_stream_offset", "cargo_stream_gap"],
        Job::Adapter => &["cargo_adaptation"],
    }
}

const ROUNDS: usize = 12;

#[test]
fn every_pair_of_jobs_creates_its_tables_at_the_same_instant() {
    let _deadline = Deadline::new("the schema race", Duration::from_secs(300));
    let url = fresh_db("mlops_schema_race");
    let mut admin = connect(Some(&url)).unwrap();
    let mut failures = Vec::new();
    for (i, &a) in JOBS.iter().enumerate() {
        for &b in &JOBS[i..] {
            for round in 0..ROUNDS {
                // A fresh database: nothing of the previous round is left.
                admin
                    .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
                    .unwrap();
                let barrier = Arc::new(Barrier::new(2));
                let handles: Vec<_> = [a, b]
                    .into_iter()
                    .map(|job| {
                        let barrier = Arc::clone(&barrier);
                        let mut client = connect(Some(&url)).unwrap();
                        std::thread::spawn(move || {
                            barrier.wait();
                            start(job, &mut client)
                        })
                    })
                    .collect();
                let before = failures.len();
                for (job, handle) in [a, b].into_iter().zip(handles) {
                    if let Err(e) = handle.join().unwrap() {
                        failures.push(format!("{a:?} + {b:?}, round {round}: {job:?}: {e}"));
                    }
                }
                if failures.len() > before {
                    continue;
                }
                for table in tables(a).iter().chain(tables(b)) {
                    let exists: bool = admin
                        .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
                        .unwrap()
                        .get(0);
                    assert!(exists, "{a:?} + {b:?}, round {round}: {table} is missing");
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} starts failed:\n{}",
        failures.len(),
        10 * ROUNDS * 2,
        failures.join("\n")
    );
}
