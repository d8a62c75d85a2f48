//! Creating tables. PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not safe when two sessions run
//! it at once on a database where the table does not exist yet: one of them fails with a
//! unique violation on the catalog (`pg_type_typname_nsp_index`). So every job that creates
//! tables (the generator, the stream, the Kafka publisher and consumers, the adapter) does it
//! through [`with_schema_lock`]: one transaction-scoped advisory lock for all of them, held
//! until the tables are committed.

use postgres::{GenericClient, Transaction};

/// The advisory lock every table-creating job takes (`hashtext` of this name).
pub const SCHEMA_LOCK: &str = "mlops.schema";

/// Runs `work` in a transaction (a savepoint when `client` is already one) that holds the
/// schema lock, and commits it. Jobs starting together on a fresh database take turns here.
pub fn with_schema_lock<T>(
    client: &mut impl GenericClient,
    work: impl FnOnce(&mut Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&SCHEMA_LOCK],
    )?;
    let out = work(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

/// Runs the `CREATE ... IF NOT EXISTS` statements of every text in `sql` under the schema lock,
/// in one transaction.
pub fn create_tables(client: &mut impl GenericClient, sql: &[&str]) -> Result<(), postgres::Error> {
    with_schema_lock(client, |tx| {
        sql.iter().try_for_each(|s| tx.batch_execute(s))
    })
}
