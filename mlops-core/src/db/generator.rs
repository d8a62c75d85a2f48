//! The data generator: creates `cargo`, bulk-loads manifests with `COPY`, and trickles
//! randomly sampled rows like a live source. Only parameterised SQL and `COPY` data: a path
//! holding a quote is data, never SQL.

use std::time::{Duration, Instant};

use postgres::Client;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::schema::with_schema_lock;
use super::{CARGO_TABLE_SQL, db_error};
use crate::control::{Control, Progress};
use crate::dataset::{Manifest, Sample};
use crate::error::{Error, Result};

/// Creates `cargo` if absent; with `drop_existing`, drops it first (its rows are lost and ids
/// restart at 1, so predictions and stream positions made from the old table no longer match
/// it: stream into a new database or under a new stream name).
pub fn create_table(client: &mut Client, drop_existing: bool) -> Result<()> {
    with_schema_lock(client, |tx| {
        if drop_existing {
            tx.batch_execute("DROP TABLE IF EXISTS cargo")?;
        }
        tx.batch_execute(CARGO_TABLE_SQL)
    })
    .map_err(|e| db_error("create table cargo", e))
}

/// Appends every sample of `manifest` to `cargo` with one `COPY`, in one transaction (all rows
/// or none), stamped with the transaction's time. Returns the number of rows.
pub fn bulk_load(client: &mut Client, manifest: &Manifest) -> Result<u64> {
    for (i, s) in manifest.samples.iter().enumerate() {
        check_sample(s, i)?;
    }
    let mut tx = client.transaction().map_err(|e| db_error("begin", e))?;
    let mut writer = tx
        .copy_in("COPY cargo (timestamp, image_path, target) FROM STDIN (FORMAT csv)")
        .map_err(|e| db_error("COPY cargo", e))?;
    {
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut writer);
        let now = "now";
        for s in &manifest.samples {
            csv.write_record([now, s.image_path.as_str(), &s.target.to_string()])
                .map_err(|e| db_error("COPY cargo", e))?;
        }
        csv.flush().map_err(|e| db_error("COPY cargo", e))?;
    }
    let rows = writer.finish().map_err(|e| db_error("COPY cargo", e))?;
    tx.commit().map_err(|e| db_error("commit", e))?;
    Ok(rows)
}

fn check_sample(s: &Sample, row: usize) -> Result<()> {
    if s.image_path.chars().count() > 255 {
        return Err(Error::invalid(
            "image_path",
            format!(
                "manifest row {}: path longer than the column's 255 characters: {}",
                row + 1,
                s.image_path
            ),
        ));
    }
    if i32::try_from(s.target).is_err() {
        return Err(Error::invalid(
            "target",
            format!(
                "manifest row {}: class id {} does not fit an int",
                row + 1,
                s.target
            ),
        ));
    }
    Ok(())
}

/// Inserts one row (its own transaction) and returns its id.
pub fn insert_row(client: &mut Client, sample: &Sample) -> Result<i32> {
    check_sample(sample, 0)?;
    let row = client
        .query_one(
            "INSERT INTO cargo (timestamp, image_path, target) VALUES (localtimestamp, $1, $2) RETURNING id",
            &[&sample.image_path, &(sample.target as i32)],
        )
        .map_err(|e| db_error("insert into cargo", e))?;
    Ok(row.get(0))
}

/// Inserts rows sampled uniformly (seeded) from `pool` at `rate` rows per second until
/// `count` rows are in (when given) or `control` is cancelled, reporting `trickle` after every
/// row. Returns the rows inserted.
pub fn trickle(
    client: &mut Client,
    pool: &Manifest,
    rate: f64,
    count: Option<u64>,
    seed: u64,
    control: &Control,
) -> Result<u64> {
    if pool.is_empty() {
        return Err(Error::invalid("pool", "no samples to draw from"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    paced(rate, count, control, || {
        let sample = &pool.samples[rng.random_range(0..pool.len())];
        insert_row(client, sample).map(|_| ())
    })
}

/// Inserts `manifest`'s rows in order, one commit each, at `rate` rows per second (a day's
/// data arriving as it was recorded), until all are in or `control` is cancelled, reporting
/// `trickle` after every row. Returns the rows inserted.
pub fn trickle_in_order(
    client: &mut Client,
    manifest: &Manifest,
    rate: f64,
    control: &Control,
) -> Result<u64> {
    let mut samples = manifest.samples.iter();
    paced(
        rate,
        Some(manifest.len() as u64),
        control,
        || match samples.next() {
            Some(sample) => insert_row(client, sample).map(|_| ()),
            None => Ok(()),
        },
    )
}

/// Calls `insert` `rate` times per second until it was called `count` times (when given) or
/// `control` is cancelled, reporting `trickle` after every call; returns the calls made.
fn paced(
    rate: f64,
    count: Option<u64>,
    control: &Control,
    mut insert: impl FnMut() -> Result<()>,
) -> Result<u64> {
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(Error::invalid(
            "rate",
            format!("must be a positive number of rows per second, got {rate}"),
        ));
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut inserted = 0u64;
    while count.is_none_or(|c| inserted < c) && !control.is_cancelled() {
        let due = started + period.mul_f64(inserted as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(200)));
            continue;
        }
        insert()?;
        inserted += 1;
        control.report(Progress::items("trickle", inserted, count));
    }
    Ok(inserted)
}
