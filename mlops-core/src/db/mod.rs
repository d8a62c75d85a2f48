//! PostgreSQL (feature `postgres`): the data generator that fills the original's `cargo`
//! table.

mod generator;

pub use generator::{bulk_load, connect, create_table, insert_row, trickle};

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
