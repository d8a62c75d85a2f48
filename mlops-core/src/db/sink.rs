//! The output side of streaming: `cargo_prediction` (one row per source id) and
//! `cargo_prediction_error` (rows that could not be predicted, with the reason), and
//! `cargo_class` (the model's class names, for dashboards).

use postgres::GenericClient;

use crate::drift::DriftCheck;

/// The output tables. `id` is the source row's id in both, so a write is idempotent.
pub const PREDICTION_TABLES_SQL: &str = "
CREATE TABLE IF NOT EXISTS cargo_prediction (
    id int PRIMARY KEY,
    timestamp timestamp,
    target int NOT NULL,
    probability real NOT NULL,
    model_version text NOT NULL,
    predicted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cargo_prediction_predicted_at ON cargo_prediction (predicted_at);
CREATE TABLE IF NOT EXISTS cargo_prediction_error (
    id int PRIMARY KEY,
    timestamp timestamp,
    image_path text,
    reason text NOT NULL,
    model_version text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS cargo_class (
    id int PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS cargo_drift (
    stream text NOT NULL,
    first_id bigint NOT NULL,
    last_id bigint NOT NULL,
    method text NOT NULL,
    statistic double precision NOT NULL,
    p_value double precision NOT NULL,
    drift boolean NOT NULL,
    window_rows int NOT NULL,
    model_version text NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    threshold double precision,
    estimated_accuracy double precision,
    PRIMARY KEY (stream, last_id, method)
);
DO $$ BEGIN
    -- Tables of an earlier version: add the columns (only then, so no lock is taken otherwise).
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                   AND table_name = 'cargo_drift' AND column_name = 'estimated_accuracy') THEN
        ALTER TABLE cargo_drift ADD COLUMN IF NOT EXISTS threshold double precision,
            ADD COLUMN IF NOT EXISTS estimated_accuracy double precision;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS cargo_drift_checked_at ON cargo_drift (checked_at);";

/// What each long-running job says of itself, for dashboards: one row per job and name
/// (`stream` / `kafka_consumer` with the stream's name, `adapter` with the stream it adapts
/// for), replaced whenever the state changes.
pub const HEALTH_TABLE_SQL: &str = "
CREATE TABLE IF NOT EXISTS cargo_health (
    job text NOT NULL,
    name text NOT NULL,
    state text NOT NULL,
    model_version text,
    detail text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, name)
);";

/// Records the state of a job (see [`HEALTH_TABLE_SQL`]).
pub fn write_health(
    client: &mut impl GenericClient,
    job: &str,
    name: &str,
    state: &str,
    model_version: Option<&str>,
    detail: Option<&str>,
) -> Result<(), postgres::Error> {
    client.execute(
        "INSERT INTO cargo_health (job, name, state, model_version, detail)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (job, name) DO UPDATE SET state = EXCLUDED.state,
             model_version = EXCLUDED.model_version, detail = EXCLUDED.detail,
             updated_at = now()",
        &[&job, &name, &state, &model_version, &detail],
    )?;
    Ok(())
}

/// One predicted row.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    /// Source id.
    pub id: i32,
    /// Source timestamp (PostgreSQL text form).
    pub timestamp: Option<String>,
    /// Predicted class id.
    pub target: i32,
    /// Its probability.
    pub probability: f32,
}

/// One row that could not be predicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    /// Source id.
    pub id: i32,
    /// Source timestamp (PostgreSQL text form).
    pub timestamp: Option<String>,
    /// Source image path.
    pub image_path: Option<String>,
    /// Why it failed.
    pub reason: String,
}

/// Writes drift checks of `stream` (one statement; a check already there is left as it is).
/// `drift` is the monitor's alarm ([`DriftCheck::alarm`]), `statistic` its CUSUM, `threshold`
/// the CUSUM's calibrated threshold, `estimated_accuracy` the latest rows' estimated
/// accuracy (NULL without one).
pub fn write_drift(
    client: &mut impl GenericClient,
    stream: &str,
    checks: &[DriftCheck],
    model_version: &str,
) -> Result<u64, postgres::Error> {
    if checks.is_empty() {
        return Ok(0);
    }
    let first: Vec<i64> = checks.iter().map(|c| c.first_id).collect();
    let last: Vec<i64> = checks.iter().map(|c| c.last_id).collect();
    let methods: Vec<&str> = checks.iter().map(|c| c.method.as_str()).collect();
    let statistics: Vec<f64> = checks.iter().map(|c| c.statistic).collect();
    let p_values: Vec<f64> = checks.iter().map(|c| c.p_value).collect();
    let alarms: Vec<bool> = checks.iter().map(|c| c.alarm).collect();
    let rows: Vec<i32> = checks
        .iter()
        .map(|c| i32::try_from(c.window_rows).unwrap_or(i32::MAX))
        .collect();
    let thresholds: Vec<f64> = checks.iter().map(|c| c.threshold).collect();
    let estimates: Vec<Option<f64>> = checks.iter().map(|c| c.estimated_accuracy).collect();
    client.execute(
        "INSERT INTO cargo_drift
             (stream, first_id, last_id, method, statistic, p_value, drift, window_rows,
              threshold, estimated_accuracy, model_version)
         SELECT $1, u.* , $11
         FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], $5::float8[], $6::float8[],
                     $7::bool[], $8::int[], $9::float8[], $10::float8[]) AS u
         ON CONFLICT (stream, last_id, method) DO NOTHING",
        &[
            &stream,
            &first,
            &last,
            &methods,
            &statistics,
            &p_values,
            &alarms,
            &rows,
            &thresholds,
            &estimates,
            &model_version,
        ],
    )
}

/// Creates the output tables and `cargo_health` if absent (under the schema lock, see
/// [`super::schema`]).
pub fn ensure_prediction_tables(client: &mut impl GenericClient) -> Result<(), postgres::Error> {
    super::schema::create_tables(client, &[PREDICTION_TABLES_SQL, HEALTH_TABLE_SQL])
}

/// Records the model's class names in `cargo_class` (for dashboards), replacing names of the
/// same ids.
pub fn write_classes(
    client: &mut impl GenericClient,
    names: &[String],
) -> Result<(), postgres::Error> {
    let ids: Vec<i32> = (0..names.len() as i32).collect();
    client.execute(
        "INSERT INTO cargo_class (id, name) SELECT * FROM UNNEST($1::int[], $2::text[])
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
        &[&ids, &names],
    )?;
    Ok(())
}

/// Writes predictions and errors so that every id has one outcome: a prediction of an id is
/// kept as it is (`ON CONFLICT DO NOTHING`); a prediction replaces an earlier error of its id
/// (an image that was missing and appeared before a replay); an error is not written for an id
/// already predicted. Writers of one database take turns on a transaction-scoped advisory lock,
/// so two writers of the same id (a Kafka rebalance replaying a batch) cannot both land; call it
/// inside a transaction. Returns the rows written (predictions, errors).
pub fn write_outcomes(
    client: &mut impl GenericClient,
    predictions: &[PredictionRow],
    errors: &[ErrorRow],
    model_version: &str,
) -> Result<(u64, u64), postgres::Error> {
    let mut written = (0, 0);
    if predictions.is_empty() && errors.is_empty() {
        return Ok(written);
    }
    client.execute(
        "SELECT pg_advisory_xact_lock(hashtext('mlops.cargo_prediction.outcome'))",
        &[],
    )?;
    if !predictions.is_empty() {
        let ids: Vec<i32> = predictions.iter().map(|p| p.id).collect();
        let times: Vec<Option<&str>> = predictions.iter().map(|p| p.timestamp.as_deref()).collect();
        let targets: Vec<i32> = predictions.iter().map(|p| p.target).collect();
        let probs: Vec<f32> = predictions.iter().map(|p| p.probability).collect();
        written.0 = client.execute(
            "INSERT INTO cargo_prediction (id, timestamp, target, probability, model_version)
             SELECT u.id, u.ts::timestamp, u.target, u.probability, $5
             FROM UNNEST($1::int[], $2::text[], $3::int[], $4::real[]) AS u(id, ts, target, probability)
             ON CONFLICT (id) DO NOTHING",
            &[&ids, &times, &targets, &probs, &model_version],
        )?;
        client.execute(
            "DELETE FROM cargo_prediction_error WHERE id = ANY($1::int[])",
            &[&ids],
        )?;
    }
    if !errors.is_empty() {
        let ids: Vec<i32> = errors.iter().map(|e| e.id).collect();
        let times: Vec<Option<&str>> = errors.iter().map(|e| e.timestamp.as_deref()).collect();
        let paths: Vec<Option<&str>> = errors.iter().map(|e| e.image_path.as_deref()).collect();
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        written.1 = client.execute(
            "INSERT INTO cargo_prediction_error (id, timestamp, image_path, reason, model_version)
             SELECT u.id, u.ts::timestamp, u.path, u.reason, $5
             FROM UNNEST($1::int[], $2::text[], $3::text[], $4::text[]) AS u(id, ts, path, reason)
             WHERE NOT EXISTS (SELECT 1 FROM cargo_prediction p WHERE p.id = u.id)
             ON CONFLICT (id) DO NOTHING",
            &[&ids, &times, &paths, &reasons, &model_version],
        )?;
    }
    Ok(written)
}
