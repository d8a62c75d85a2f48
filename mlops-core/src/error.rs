//! The crate's single error type. Every variant names what failed and where.

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
        /// What went wrong.
        reason: String,
        /// The object store's error, where one caused it.
        #[source]
        source: Option<Source>,
    },
    /// A database operation failed.
    #[error("database: {what}: {reason}")]
    Database {
        /// What was being done (passwords hidden).
        what: String,
        /// The database's message with its causes (the driver's own `Display` says only
        /// "db error").
        reason: String,
        /// The driver's error (`postgres::Error`; see [`Error::sqlstate`]), where one caused it.
        #[source]
        source: Option<Source>,
    },
    /// A Kafka operation failed.
    #[error("kafka: {what}: {reason}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client's message.
        reason: String,
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
            Error::Database {
                source: Some(source),
                ..
            } => source
                .downcast_ref::<postgres::Error>()
                .and_then(postgres::Error::code)
                .map(postgres::error::SqlState::code),
            _ => None,
        }
    }

    /// An [`Error::InvalidParameter`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}
