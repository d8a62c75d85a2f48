//! The data generator against a real PostgreSQL (started by `scripts/with-services.sh`, which
//! the test command runs). Each test works in its own database.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

mod common;

use common::{fresh_db, pg_server_url as server_url};
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::db::{bulk_load, connect, create_table, insert_row, redact, trickle};

fn manifest(n: usize) -> Manifest {
    Manifest::new(
        (0..n)
            .map(|i| Sample::new(format!("class_{}/img_{i:05}.png", i % 5), (i % 5) as u32))
            .collect(),
    )
}

fn count(url: &str) -> i64 {
    connect(Some(url))
        .unwrap()
        .query_one("SELECT count(*) FROM cargo", &[])
        .unwrap()
        .get(0)
}

#[test]
fn bulk_load_copies_every_row_in_order() {
    let url = fresh_db("gen_bulk");
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    let m = manifest(10_000);
    let started = Instant::now();
    assert_eq!(bulk_load(&mut client, &m).unwrap(), 10_000);
    eprintln!(
        "COPY of 10 000 rows: {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let rows = client
        .query(
            "SELECT id, image_path, target, timestamp IS NOT NULL FROM cargo ORDER BY id",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 10_000);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<_, i32>(0), i as i32 + 1);
        assert_eq!(row.get::<_, String>(1), m.samples[i].image_path);
        assert_eq!(row.get::<_, i32>(2), m.samples[i].target as i32);
        assert!(row.get::<_, bool>(3));
    }
}

#[test]
fn quotes_and_commas_in_paths_are_data() {
    let url = fresh_db("gen_quotes");
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    let odd = Manifest::new(vec![
        Sample::new("brick/it's \"odd\", really.png", 1),
        Sample::new("wood/'); DROP TABLE cargo; --.png", 4),
    ]);
    bulk_load(&mut client, &odd).unwrap();
    let id = insert_row(&mut client, &odd.samples[1]).unwrap();
    let paths: Vec<String> = client
        .query("SELECT image_path FROM cargo ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        paths,
        vec![
            odd.samples[0].image_path.clone(),
            odd.samples[1].image_path.clone(),
            odd.samples[1].image_path.clone()
        ]
    );
    assert_eq!(id, 3);
}

#[test]
fn a_bad_row_loads_nothing_and_is_named() {
    let url = fresh_db("gen_atomic");
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    let mut m = manifest(100);
    m.samples[57].image_path = "x".repeat(300);
    let err = bulk_load(&mut client, &m).unwrap_err().to_string();
    assert!(err.contains("row 58") && err.contains("255"), "{err}");
    assert_eq!(count(&url), 0);
}

#[test]
fn the_table_is_kept_unless_a_drop_is_asked_for() {
    let url = fresh_db("gen_keep");
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &manifest(10)).unwrap();
    create_table(&mut client, false).unwrap();
    assert_eq!(count(&url), 10);
    create_table(&mut client, true).unwrap();
    assert_eq!(count(&url), 0);
}

#[test]
fn trickle_inserts_at_the_asked_rate() {
    let url = fresh_db("gen_trickle");
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    let pool = manifest(50);
    let started = Instant::now();
    let n = trickle(
        &mut client,
        &pool,
        40.0,
        Some(20),
        7,
        &mlops_core::Control::new(),
    )
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(n, 20);
    assert!(
        (0.4..2.0).contains(&seconds),
        "20 rows at 40/s took {seconds} s"
    );
    assert_eq!(count(&url), 20);
    // Seeded: the same seed draws the same rows.
    let drawn: Vec<String> = client
        .query("SELECT image_path FROM cargo ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    create_table(&mut client, true).unwrap();
    trickle(
        &mut client,
        &pool,
        1000.0,
        Some(20),
        7,
        &mlops_core::Control::new(),
    )
    .unwrap();
    let again: Vec<String> = client
        .query("SELECT image_path FROM cargo ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(again, drawn);
    // A set stop flag ends it at once.
    assert_eq!(
        trickle(&mut client, &pool, 1.0, None, 7, &{
            let c = mlops_core::Control::new();
            c.cancel();
            c
        })
        .unwrap(),
        0
    );
    let err = trickle(
        &mut client,
        &pool,
        0.0,
        Some(1),
        7,
        &mlops_core::Control::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`rate`"), "{err}");
}

#[test]
fn a_wrong_password_is_a_clear_error_that_hides_it() {
    let url = server_url().replace("mlops-test-password", "wrong-secret");
    let Err(err) = connect(Some(&url)) else {
        panic!("a wrong password connected")
    };
    // The message says what was done; the report adds the server's reason, once.
    assert!(!err.to_string().contains("authentication"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    let err = err.report();
    assert_eq!(
        err.matches("password authentication failed").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("password authentication failed") || err.contains("authentication"),
        "{err}"
    );
    assert!(!err.contains("wrong-secret"), "{err}");
    assert_eq!(
        redact("postgresql://u:pw@h:1/d"),
        "postgresql://u:***@h:1/d"
    );
}
