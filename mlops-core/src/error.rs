//! The crate's single error type. Every variant names what failed and where.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    },
    /// A database operation failed.
    #[error("database: {what}: {reason}")]
    Database {
        /// What was being done (passwords hidden).
        what: String,
        /// The database's error.
        reason: String,
    },
    /// A Kafka operation failed.
    #[error("kafka: {what}: {reason}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client's error.
        reason: String,
    },
    /// A long operation was stopped on request (e.g. Ctrl-C from Python).
    #[error("{what}: cancelled")]
    Cancelled {
        /// What was stopped.
        what: String,
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

    /// An [`Error::InvalidParameter`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}
