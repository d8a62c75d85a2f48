//! The crate's single error type. Every variant names what failed and where.
//!
//! Where another library's error caused a failure (object_store, postgres, serde_json, the
//! Kafka client), it is kept as the [`source`](std::error::Error::source), so a caller can
//! match it (`downcast_ref`), and the variant's own message says what was being done without
//! repeating the source's text. [`Error::report`] (and [`report`] for any error) gives the
//! message with its causes, each once: what the examples print and Python raises.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The underlying error of a failure in another library (object_store, postgres, rdkafka),
/// kept so that callers can inspect it (`downcast_ref`), e.g. for a SQLSTATE.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read, written, created or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An image file could not be decoded (corrupt, truncated, not an image, too large).
    #[error("{path}: cannot decode image: {source}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// An image decoded to zero pixels.
    #[error("{path}: the image has no pixels")]
    EmptyImage {
        /// The image file.
        path: PathBuf,
    },
    /// An image could not be encoded to the file's format.
    #[error("{path}: cannot encode image: {source}")]
    Encode {
        /// The destination file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The file's extension is not one of the supported image formats.
    #[error("{path}: unsupported image format (expected png, jpg, jpeg, gif, bmp or webp)")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name, as the user spells it.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing into a folder that overlaps the input folder would touch the input.
    #[error(
        "refusing to run: output folder {output} overlaps input folder {input}; choose an output outside the input"
    )]
    OverlappingFolders {
        /// The input folder.
        input: PathBuf,
        /// The output folder.
        output: PathBuf,
    },
    /// A manifest line or record could not be parsed.
    #[error("{path}:{line}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line number (for CSV: the record's line).
        line: u64,
        /// What is wrong with the line.
        reason: String,
    },
    /// Model weights could not be found or loaded.
    #[error("{path}: cannot load weights: {reason}")]
    Weights {
        /// The weights file or archive.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A model package could not be saved, found, read or verified.
    #[error("model package {uri}: {reason}")]
    Package {
        /// The package URI.
        uri: String,
        /// What went wrong, or what was being done when `source` failed.
        reason: String,
        /// The object store's error (`object_store::Error`), where one caused it.
        #[source]
        source: Option<Source>,
    },
    /// JSON (a package's metadata, a registry pointer, a decision) could not be read or
    /// written.
    #[error("{what}: invalid JSON")]
    Json {
        /// What was being read or written, and where.
        what: String,
        /// The parser's error (line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A database operation failed.
    #[error("database: {what}")]
    Database {
        /// What was being done (passwords hidden).
        what: String,
        /// The driver's error (`postgres::Error`; see [`Error::sqlstate`]): the server's
        /// message, or the connection's failure.
        #[source]
        source: Source,
    },
    /// A Kafka operation failed.
    #[error("kafka: {what}")]
    Kafka {
        /// What was being done (and what went wrong, when no client error says it).
        what: String,
        /// The client's error (`rdkafka::error::KafkaError`), where one caused it.
        #[source]
        source: Option<Source>,
    },
    /// Another process changed what this one was updating (two publishers of one topic
    /// moving the same position); nothing of this step was written.
    #[error("conflict: {what}")]
    Conflict {
        /// What was changed concurrently.
        what: String,
    },
    /// A chart could not be drawn or written.
    #[error("{path}: cannot draw chart: {reason}")]
    Chart {
        /// The chart file.
        path: PathBuf,
        /// The drawing library's message.
        reason: String,
    },
    /// A computation inside the crate failed (a tensor of an unexpected shape or type). This
    /// is a bug: please report it with the message.
    #[error("internal error in {what}: {reason}")]
    Internal {
        /// The computation.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A long operation was stopped on request (e.g. Ctrl-C from Python).
    #[error("{what}: cancelled")]
    Cancelled {
        /// What was stopped.
        what: String,
    },
    /// A blocking function was called on a current-thread tokio runtime, which it would stall;
    /// call the `_async` variant instead (or use a multi-thread runtime).
    #[error(
        "{operation}: blocking call inside a current-thread tokio runtime; use the async variant or a multi-thread runtime"
    )]
    BlockingInAsync {
        /// The function called.
        operation: &'static str,
    },
    /// A user-given relative path was refused, or its file could not be opened, under the one
    /// path rule ([`crate::paths`]).
    #[error(transparent)]
    Path(#[from] crate::paths::PathRefused),
    /// A data set has no usable classes or images.
    #[error("{root}: {reason}")]
    EmptyDataset {
        /// The data set's root folder.
        root: PathBuf,
        /// Why it is empty.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Internal`].
    #[cfg_attr(not(feature = "train"), allow(dead_code))]
    pub(crate) fn internal(what: &'static str, reason: impl std::fmt::Debug) -> Self {
        Error::Internal {
            what,
            reason: format!("{reason:?}"),
        }
    }

    /// Whether this is an I/O error of `kind` (e.g. a missing file or package folder).
    pub fn is_io_kind(&self, kind: io::ErrorKind) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == kind)
    }

    /// The SQLSTATE code of a database error the server reported (e.g. `28P01` for a wrong
    /// password), if this is one.
    #[cfg(feature = "postgres")]
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Database { source, .. } => source
                .downcast_ref::<postgres::Error>()
                .and_then(postgres::Error::code)
                .map(postgres::error::SqlState::code),
            _ => None,
        }
    }

    /// The message with its causes, each once (`what failed: why: deeper cause`); see
    /// [`report`].
    pub fn report(&self) -> String {
        report(self)
    }

    /// An [`Error::InvalidParameter`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}

/// `error`'s message followed by each cause's message, separated by `: `, leaving out a cause
/// whose text the message already holds (many libraries, `postgres` among them, print their
/// cause inside their own message too).
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let line = e.to_string();
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_every_cause_once() {
        let json = serde_json::from_str::<u32>("[").unwrap_err();
        let parse_message = json.to_string();
        let e = Error::Json {
            what: "decisions/x.json".into(),
            source: json,
        };
        // The variant's own message does not repeat the source; the report adds it once.
        assert_eq!(e.to_string(), "decisions/x.json: invalid JSON");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            e.report(),
            format!("decisions/x.json: invalid JSON: {parse_message}")
        );
        // A source printed inside the message (`{path}: {source}`) is not printed again.
        let io = Error::io("a.png", io::Error::new(io::ErrorKind::NotFound, "gone"));
        assert_eq!(io.report(), "a.png: gone");
    }
}
