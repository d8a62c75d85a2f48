//! PostgreSQL (feature `postgres`): the data generator that fills the original's `cargo`
//! table, and the streaming predictor that turns its rows into `cargo_prediction` exactly once.

pub mod batch;
mod generator;
pub mod sink;
pub mod stream;
pub mod tail;

pub use batch::{BatchOutcome, predict_rows};
pub use generator::{bulk_load, connect, connect_config, create_table, insert_row, trickle};
pub use stream::{StreamConfig, StreamStats, stream_predictions};

use crate::error::Error;

/// The original's source table.
pub const CARGO_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS cargo (
    id SERIAL PRIMARY KEY,
    timestamp timestamp,
    image_path varchar(255),
    target int
)";

/// A database error for `what`, with the server's message (postgres' own `Display` says only
/// "db error") or the I/O cause.
pub(crate) fn db_error(what: &str, e: impl std::error::Error) -> Error {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    Error::Database {
        what: what.to_string(),
        reason,
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Whether `e` is a lost or refused connection worth retrying (the server restarting, a
/// network error), as opposed to a bad password or a bad statement.
pub fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08")
            || code.starts_with("57P")
            || code.starts_with("53")
            || code == "40001"
            || code == "40P01";
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}
