//! Manifests: the list of `{image_path, target}` samples of a data set, as JSON lines
//! (the original's `monday.json` format) or CSV.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::imageio::write_atomic;

/// One labelled image: its path relative to the data set's root (with `/` separators) and its
/// class id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sample {
    /// Path relative to the data root, e.g. `background/background_13.jpg`.
    pub image_path: String,
    /// Class id.
    pub target: u32,
}

impl Sample {
    /// A sample.
    pub fn new(image_path: impl Into<String>, target: u32) -> Self {
        Sample {
            image_path: image_path.into(),
            target,
        }
    }
}

/// An ordered list of samples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The samples, in order.
    pub samples: Vec<Sample>,
}

/// Manifest file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// One JSON object per line: `{"image_path":"a/b.jpg","target":0}`.
    JsonLines,
    /// CSV with header `image_path,target`.
    Csv,
}

impl ManifestFormat {
    /// The format for a path: `.csv` is CSV, anything else (`.jsonl`, `.json`, `.ndjson`) JSON lines.
    pub fn for_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => ManifestFormat::Csv,
            _ => ManifestFormat::JsonLines,
        }
    }
}

impl Manifest {
    /// A manifest of these samples.
    pub fn new(samples: Vec<Sample>) -> Self {
        Manifest { samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Sample count per class id.
    pub fn class_counts(&self) -> BTreeMap<u32, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.samples {
            *counts.entry(s.target).or_insert(0) += 1;
        }
        counts
    }

    /// The JSON-lines text: one compact object per line, keys `image_path` then `target`,
    /// each line ending in `\n`.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::with_capacity(self.samples.len() * 48);
        for s in &self.samples {
            // Serialising a struct of a string and an integer cannot fail.
            out.push_str(&serde_json::to_string(s).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Parses JSON lines; blank lines are ignored; `path` names the source in errors.
    pub fn from_jsonl(text: &str, path: &Path) -> Result<Self> {
        Self::from_jsonl_reader(text.as_bytes(), path)
    }

    fn from_jsonl_reader(reader: impl BufRead, path: &Path) -> Result<Self> {
        let mut samples = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| Error::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let sample: Sample = serde_json::from_str(&line).map_err(|e| Error::Manifest {
                path: path.to_path_buf(),
                line: i as u64 + 1,
                reason: e.to_string(),
            })?;
            samples.push(sample);
        }
        Ok(Manifest { samples })
    }

    /// The CSV text with header `image_path,target`.
    pub fn to_csv(&self) -> Result<String> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for s in &self.samples {
            writer
                .serialize(s)
                .map_err(|e| Error::invalid("manifest", e.to_string()))?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| Error::invalid("manifest", e.to_string()))?;
        String::from_utf8(bytes).map_err(|e| Error::invalid("manifest", e.to_string()))
    }

    /// Parses CSV with a header naming `image_path` and `target` (other columns are ignored).
    pub fn from_csv(text: &str, path: &Path) -> Result<Self> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut samples = Vec::new();
        for record in reader.deserialize::<Sample>() {
            let sample = record.map_err(|e| Error::Manifest {
                path: path.to_path_buf(),
                line: e.position().map_or(0, |p| p.line()),
                reason: e.to_string(),
            })?;
            samples.push(sample);
        }
        Ok(Manifest { samples })
    }

    /// Reads a manifest file, JSON lines or CSV by its extension ([`ManifestFormat::for_path`]).
    pub fn read(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        match ManifestFormat::for_path(path) {
            ManifestFormat::JsonLines => Self::from_jsonl_reader(BufReader::new(file), path),
            ManifestFormat::Csv => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                Self::from_csv(&text, path)
            }
        }
    }

    /// Writes the manifest atomically, JSON lines or CSV by its extension.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = match ManifestFormat::for_path(path) {
            ManifestFormat::JsonLines => self.to_jsonl(),
            ManifestFormat::Csv => self.to_csv()?,
        };
        write_atomic(path, text.as_bytes())
    }
}
