//! Tailing `cargo` by id without skipping rows whose ids commit out of order.
//!
//! A reader that remembers only the highest id it has seen (Kafka Connect's `incrementing`
//! mode) loses a row when a transaction takes id 5, a faster one commits id 6, and the reader
//! moves past 6 before 5 commits. Here the position is the highest id seen plus the *gaps*
//! below it: ids not yet visible. Every poll reads the gaps again along with the ids above the
//! highest, so a late row is picked up when it commits.
//!
//! A gap can also be permanent (a rolled-back insert, a sequence value never used). It is
//! dropped once (1) every transaction that held a transaction id when the gap was first seen
//! has ended — the source's snapshot `xmin` has passed the snapshot `xmax` recorded then — and
//! (2) a grace period has passed, which covers a transaction that drew the id from the sequence
//! but had not written yet. Rows and snapshot bounds come from one repeatable-read snapshot, so
//! condition (1) is judged on the same view as the rows.
//!
//! The position lives in two tables (`cargo_stream_offset`, `cargo_stream_gap`) next to the
//! consumer's output and is saved in the output's transaction: output and position commit
//! together or not at all.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::{Client, GenericClient, Transaction};

/// The position tables, created by [`ensure_position_tables`].
pub const POSITION_TABLES_SQL: &str = "
CREATE TABLE IF NOT EXISTS cargo_stream_offset (
    stream text PRIMARY KEY,
    high_id int NOT NULL,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cargo_stream_gap (
    stream text NOT NULL,
    id int NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    horizon bigint NOT NULL,
    PRIMARY KEY (stream, id)
);";

/// One row of `cargo`. The timestamp travels as PostgreSQL's text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    /// Primary key.
    pub id: i32,
    /// `timestamp` as text (`YYYY-MM-DD HH:MM:SS[.ffffff]`), when set.
    pub timestamp: Option<String>,
    /// `image_path`, relative to the data root.
    pub image_path: Option<String>,
    /// True class id.
    pub target: Option<i32>,
}

/// An id below the highest seen that was not visible yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The source snapshot's `xmax` when the gap was first seen: every transaction that could
    /// hold the id with a transaction id had one below this.
    pub horizon: i64,
}

/// Where a consumer stands in `cargo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The highest id seen.
    pub high: i32,
    /// Ids below `high` not seen yet.
    pub gaps: BTreeMap<i32, Gap>,
    /// Bumped on every save; a save from a stale copy is refused.
    pub version: i64,
}

/// A poll's result: rows in id order and the snapshot they were read in.
#[derive(Debug, Clone, Default)]
pub struct Poll {
    /// Visible rows among the gaps and above the highest id, in id order, at most the limit.
    pub rows: Vec<SourceRow>,
    /// Snapshot `xmin`: every transaction with a smaller id had ended.
    pub xmin: i64,
    /// Snapshot `xmax`: every transaction with a smaller id had started.
    pub xmax: i64,
}

/// The new position after consuming a poll, and which gaps it opened and closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advance {
    /// The position after the poll's rows.
    pub position: Position,
    /// Gaps filled by the poll's rows or expired.
    pub closed: Vec<i32>,
    /// New gaps (ids skipped over).
    pub opened: Vec<i32>,
}

/// Creates the position tables if absent (under the schema lock, see [`super::schema`]).
pub fn ensure_position_tables(client: &mut impl GenericClient) -> Result<(), postgres::Error> {
    super::schema::create_tables(client, &[POSITION_TABLES_SQL])
}

/// Loads the position of `stream` (the start when it has none).
pub fn load_position(
    client: &mut impl GenericClient,
    stream: &str,
) -> Result<Position, postgres::Error> {
    let mut position = Position::default();
    if let Some(row) = client.query_opt(
        "SELECT high_id, version FROM cargo_stream_offset WHERE stream = $1",
        &[&stream],
    )? {
        position.high = row.get(0);
        position.version = row.get(1);
    }
    for row in client.query(
        "SELECT id, horizon FROM cargo_stream_gap WHERE stream = $1",
        &[&stream],
    )? {
        position.gaps.insert(
            row.get(0),
            Gap {
                horizon: row.get(1),
            },
        );
    }
    Ok(position)
}

/// Reads up to `limit` rows after `position` (its gaps and the ids above its highest), in one
/// repeatable-read snapshot together with that snapshot's bounds.
pub fn poll(
    source: &mut Client,
    position: &Position,
    limit: usize,
) -> Result<Poll, postgres::Error> {
    let mut tx = source
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let bounds = tx.query_one(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
                pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
        &[],
    )?;
    let gaps: Vec<i32> = position.gaps.keys().copied().collect();
    let rows = tx
        .query(
            "SELECT id, timestamp::text, image_path, target FROM cargo
             WHERE id > $1 OR id = ANY($2)
             ORDER BY id LIMIT $3",
            &[&position.high, &gaps, &(limit as i64)],
        )?
        .into_iter()
        .map(|r| SourceRow {
            id: r.get(0),
            timestamp: r.get(1),
            image_path: r.get(2),
            target: r.get(3),
        })
        .collect();
    tx.commit()?;
    Ok(Poll {
        rows,
        xmin: bounds.get(0),
        xmax: bounds.get(1),
    })
}

/// One step of a tail: polls after `position` and works out the next position, giving up the
/// gaps that are past their horizon and at least `grace` old. Gap ages are read from
/// `position_db` (where the position is kept; `None`: the source). `None` when nothing changed.
pub fn poll_next(
    source: &mut Client,
    position_db: Option<&mut Client>,
    stream: &str,
    position: &Position,
    limit: usize,
    grace: Duration,
) -> Result<Option<(Poll, Advance)>, postgres::Error> {
    let polled = poll(source, position, limit)?;
    let ages = if position.gaps.values().any(|g| polled.xmin >= g.horizon) {
        gap_ages(position_db.unwrap_or(source), stream)?
    } else {
        BTreeMap::new()
    };
    let next = advance(position, &polled, |id, _| {
        ages.get(&id).is_some_and(|age| *age >= grace)
    });
    if polled.rows.is_empty() && next.closed.is_empty() && next.opened.is_empty() {
        return Ok(None);
    }
    Ok(Some((polled, next)))
}

/// The position after consuming `poll` (pure). Gaps are dropped when the poll's rows fill them
/// or when they have expired: `expired(id, gap)` is asked only for gaps the poll did not fill
/// whose horizon the poll's `xmin` has passed.
pub fn advance(
    position: &Position,
    poll: &Poll,
    mut expired: impl FnMut(i32, Gap) -> bool,
) -> Advance {
    let mut next = position.clone();
    next.version += 1;
    let mut closed = Vec::new();
    let mut opened = Vec::new();
    let mut expected = position.high + 1;
    for row in &poll.rows {
        if next.gaps.remove(&row.id).is_some() {
            closed.push(row.id);
        }
        if row.id > position.high {
            for missing in expected.max(position.high + 1)..row.id {
                next.gaps.insert(missing, Gap { horizon: poll.xmax });
                opened.push(missing);
            }
            expected = row.id + 1;
            next.high = row.id;
        }
    }
    let old: Vec<(i32, Gap)> = next
        .gaps
        .iter()
        .filter(|(id, _)| !opened.contains(id))
        .map(|(id, g)| (*id, *g))
        .collect();
    for (id, gap) in old {
        if poll.xmin >= gap.horizon && expired(id, gap) {
            next.gaps.remove(&id);
            closed.push(id);
        }
    }
    Advance {
        position: next,
        closed,
        opened,
    }
}

/// Saves `advance` for `stream` inside `tx`, refusing (returning `false`) when the stored
/// position is not the one it was computed from (another consumer of the same stream moved on).
pub fn save_position(
    tx: &mut Transaction<'_>,
    stream: &str,
    from_version: i64,
    advance: &Advance,
) -> Result<bool, postgres::Error> {
    let stored: Option<i64> = tx
        .query_opt(
            "SELECT version FROM cargo_stream_offset WHERE stream = $1 FOR UPDATE",
            &[&stream],
        )?
        .map(|r| r.get(0));
    match stored {
        Some(v) if v != from_version => return Ok(false),
        None if from_version != 0 => return Ok(false),
        None => {
            // Two first-time consumers race here; the loser fails on the primary key and retries.
            tx.execute(
                "INSERT INTO cargo_stream_offset (stream, high_id, version) VALUES ($1, $2, $3)",
                &[&stream, &advance.position.high, &advance.position.version],
            )?;
        }
        Some(_) => {
            tx.execute(
                "UPDATE cargo_stream_offset SET high_id = $2, version = $3, updated_at = now()
                 WHERE stream = $1",
                &[&stream, &advance.position.high, &advance.position.version],
            )?;
        }
    }
    if !advance.closed.is_empty() {
        tx.execute(
            "DELETE FROM cargo_stream_gap WHERE stream = $1 AND id = ANY($2)",
            &[&stream, &advance.closed],
        )?;
    }
    if !advance.opened.is_empty() {
        let horizons: Vec<i64> = advance
            .opened
            .iter()
            .map(|id| advance.position.gaps[id].horizon)
            .collect();
        tx.execute(
            "INSERT INTO cargo_stream_gap (stream, id, horizon)
             SELECT $1, g.id, g.horizon FROM UNNEST($2::int[], $3::bigint[]) AS g(id, horizon)",
            &[&stream, &advance.opened, &horizons],
        )?;
    }
    Ok(true)
}

/// Ages of the gaps of `stream` in the database's clock, for the grace-period rule.
pub fn gap_ages(
    client: &mut impl GenericClient,
    stream: &str,
) -> Result<BTreeMap<i32, Duration>, postgres::Error> {
    Ok(client
        .query(
            "SELECT id, extract(epoch FROM now() - first_seen)::float8 FROM cargo_stream_gap
             WHERE stream = $1",
            &[&stream],
        )?
        .into_iter()
        .map(|r| {
            let seconds: f64 = r.get(1);
            (r.get(0), Duration::from_secs_f64(seconds.max(0.0)))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i32) -> SourceRow {
        SourceRow {
            id,
            timestamp: None,
            image_path: None,
            target: None,
        }
    }

    fn polled(ids: &[i32], xmin: i64, xmax: i64) -> Poll {
        Poll {
            rows: ids.iter().map(|&i| row(i)).collect(),
            xmin,
            xmax,
        }
    }

    #[test]
    fn skipped_ids_become_gaps_and_close_when_seen() {
        let start = Position::default();
        let a = advance(&start, &polled(&[1, 2, 5, 6], 10, 12), |_, _| true);
        assert_eq!(a.position.high, 6);
        assert_eq!(a.opened, vec![3, 4]);
        assert_eq!(a.position.gaps.len(), 2);
        assert_eq!(a.position.gaps[&3].horizon, 12);
        // Id 4 commits later, with a new row above.
        let b = advance(&a.position, &polled(&[4, 7], 11, 13), |_, _| false);
        assert_eq!(b.closed, vec![4]);
        assert_eq!(b.opened, Vec::<i32>::new());
        assert_eq!(b.position.high, 7);
        assert_eq!(b.position.gaps.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(b.position.version, 2);
    }

    #[test]
    fn gaps_expire_only_past_their_horizon_and_when_the_rule_agrees() {
        let a = advance(&Position::default(), &polled(&[2], 5, 9), |_, _| true);
        assert_eq!(a.opened, vec![1]);
        // xmin 8 < horizon 9: a transaction holding id 1 may still run.
        let b = advance(&a.position, &polled(&[], 8, 10), |_, _| true);
        assert!(b.position.gaps.contains_key(&1));
        // Past the horizon, but the grace rule says no.
        let c = advance(&b.position, &polled(&[], 9, 10), |_, _| false);
        assert!(c.position.gaps.contains_key(&1));
        // Both agree.
        let d = advance(&c.position, &polled(&[], 9, 10), |_, _| true);
        assert!(d.position.gaps.is_empty());
        assert_eq!(d.closed, vec![1]);
    }

    #[test]
    fn a_limited_poll_leaves_later_gaps_alone() {
        let a = advance(&Position::default(), &polled(&[1, 4], 1, 2), |_, _| false);
        assert_eq!(a.opened, vec![2, 3]);
        // The next poll returns gap 3 only (limit 1): gap 2 stays, nothing new opens.
        let b = advance(&a.position, &polled(&[3], 1, 2), |_, _| false);
        assert_eq!(b.position.high, 4);
        assert_eq!(b.position.gaps.keys().copied().collect::<Vec<_>>(), vec![2]);
    }
}
