//! PostgreSQL (feature `postgres`): the data generator that fills the original's `cargo`
//! table, and the streaming predictor that turns its rows into `cargo_prediction` exactly once.

pub mod adapt;
pub(crate) mod batch;
pub(crate) mod connection;
mod generator;
pub mod schema;
pub(crate) mod sink;
pub mod stream;
pub mod tail;

pub use adapt::{
    AdaptLoopConfig, AdaptLoopStats, ensure_adaptation_table, look_once, run_adaptation_loop,
};
pub use batch::resolve_image_path;
pub use batch::{BatchOutcome, predict_rows};
pub(crate) use connection::db_error;
pub use connection::{config_from_vars, connect, connect_config, is_transient, redact};
pub use generator::{bulk_load, create_table, insert_row, trickle, trickle_in_order};
pub use schema::{create_tables, with_schema_lock};
pub use sink::{
    ErrorRow, HEALTH_TABLE_SQL, PREDICTION_TABLES_SQL, PredictionRow, ensure_prediction_tables,
    write_health,
};
pub use stream::{StreamConfig, StreamStats, ensure_stream_tables, stream_predictions};
pub use tail::ensure_position_tables;

/// The original's source table.
pub const CARGO_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS cargo (
    id SERIAL PRIMARY KEY,
    timestamp timestamp,
    image_path varchar(255),
    target int
)";
