//! The folder driver: corrupt every image under an input folder into an output folder.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use walkdir::WalkDir;

use super::{Corruption, CorruptionKind};
use crate::control::{Control, Progress};
use crate::error::{Error, Result};
use crate::imageio;
use crate::seed::item_rng;

/// How to run [`corrupt_folder`].
#[derive(Debug, Clone)]
pub struct FolderOptions {
    /// Seed of the run; each file's generator derives from it, the file's relative path and its
    /// bytes (default 0).
    pub seed: u64,
    /// Worker threads; `None` uses Rayon's global pool (one per core).
    pub threads: Option<usize>,
    /// Decoder memory limit per image in bytes.
    pub max_alloc: u64,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            seed: 0,
            threads: None,
            max_alloc: imageio::DEFAULT_MAX_ALLOC,
        }
    }
}

/// A file written by the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptedFile {
    /// Path relative to the input (and output) root.
    pub path: PathBuf,
    /// The corruption drawn on it (for `mixed`, the one chosen).
    pub kind: CorruptionKind,
}

/// A file the driver passed over on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// Path relative to the input root.
    pub path: PathBuf,
    /// Why, e.g. "hidden file" or "not an image (extension)".
    pub reason: String,
}

/// A file the driver could not process.
#[derive(Debug)]
pub struct FailedFile {
    /// Path relative to the input root.
    pub path: PathBuf,
    /// What went wrong; its message names the full path.
    pub error: Error,
}

/// What a run did; every list is sorted by path.
#[derive(Debug, Default)]
pub struct FolderReport {
    /// Files written.
    pub written: Vec<CorruptedFile>,
    /// Files passed over on purpose.
    pub skipped: Vec<SkippedFile>,
    /// Files that failed; the run went on without them.
    pub failed: Vec<FailedFile>,
}

impl FolderReport {
    /// Whether every image was written.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// A path relative to a root, as a key with `/` separators (stable across platforms).
fn relative_key(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The absolute, symlink-free form of `path`, which need not exist yet: its longest existing
/// ancestor is canonicalised and the rest appended.
fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(base) => {
                let mut resolved = base;
                for part in rest.iter().rev() {
                    match part {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        Component::Normal(p) => resolved.push(p),
                        _ => {}
                    }
                }
                return Ok(resolved);
            }
            Err(e) => match (existing.parent(), existing.components().next_back()) {
                (Some(parent), Some(last)) => {
                    rest.push(last);
                    existing = parent;
                }
                _ => return Err(Error::io(path, e)),
            },
        }
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Corrupts the bytes of one image file (`rel` relative to the input root) into the bytes of its
/// output file in the same format. The result depends only on `seed`, `rel` and `bytes`.
pub fn corrupt_one_file(
    corruption: &Corruption,
    seed: u64,
    rel: &Path,
    bytes: &[u8],
    full_path: &Path,
    max_alloc: u64,
) -> Result<(Vec<u8>, CorruptionKind)> {
    let format = imageio::format_for_path(rel).ok_or_else(|| Error::UnsupportedFormat {
        path: full_path.to_path_buf(),
    })?;
    let mut image = imageio::decode(full_path, bytes, max_alloc)?;
    let mut rng = item_rng(seed, &relative_key(rel), bytes);
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::EmptyImage {
            path: full_path.to_path_buf(),
        });
    }
    let drawn = corruption.apply_in_place(&mut image, &mut rng)?;
    let out = imageio::encode(&image, format, full_path)?;
    Ok((out, drawn.kind()))
}

/// Outcome of one file.
enum Outcome {
    Written(CorruptedFile),
    Failed(FailedFile),
    Cancelled,
}

/// Corrupts every image under `input` (recursively) into the same relative path under
/// `output`, keeping file names and formats.
///
/// Never writes inside `input`: an output folder that overlaps it is refused. Each file is
/// written atomically. Hidden files and non-images are skipped and listed; a file that cannot
/// be read, decoded or written is listed under `failed` and the run goes on. The bytes written
/// for a file depend only on (`options.seed`, its relative path, its bytes). `control` reports
/// `files` done and, once cancelled, leaves files not started alone and fails with
/// [`Error::Cancelled`] after the files in hand are written (whole, atomically).
pub fn corrupt_folder(
    input: &Path,
    output: &Path,
    corruption: &Corruption,
    options: &FolderOptions,
    control: &Control,
) -> Result<FolderReport> {
    corruption.validate()?;
    let input_root = input.canonicalize().map_err(|e| Error::io(input, e))?;
    if !input_root.is_dir() {
        return Err(Error::io(
            input,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "input is not a folder"),
        ));
    }
    let output_root = resolve(output)?;
    if output_root.starts_with(&input_root) || input_root.starts_with(&output_root) {
        return Err(Error::OverlappingFolders {
            input: input_root,
            output: output_root,
        });
    }

    let mut report = FolderReport::default();
    let mut todo = Vec::new();
    let mut walker = WalkDir::new(&input_root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        match entry {
            Ok(entry) if entry.depth() > 0 && is_hidden(entry.path()) => {
                if entry.file_type().is_dir() {
                    walker.skip_current_dir();
                }
                report.skipped.push(SkippedFile {
                    path: entry
                        .path()
                        .strip_prefix(&input_root)
                        .unwrap_or(entry.path())
                        .to_path_buf(),
                    reason: "hidden".into(),
                });
            }
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) => {
                let rel = entry
                    .path()
                    .strip_prefix(&input_root)
                    .unwrap_or(entry.path())
                    .to_path_buf();
                if imageio::is_image_path(&rel) {
                    todo.push(rel);
                } else {
                    report.skipped.push(SkippedFile {
                        path: rel,
                        reason: "not an image (extension)".into(),
                    });
                }
            }
            Err(err) => {
                let path = err.path().unwrap_or(&input_root).to_path_buf();
                let rel = path
                    .strip_prefix(&input_root)
                    .unwrap_or(&path)
                    .to_path_buf();
                let source = err
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("symbolic link loop"));
                report.failed.push(FailedFile {
                    path: rel,
                    error: Error::io(path, source),
                });
            }
        }
    }

    let total = todo.len() as u64;
    let done = AtomicU64::new(0);
    let cancelled = || control.is_cancelled();
    let process = |rel: &PathBuf| -> Outcome {
        if cancelled() {
            return Outcome::Cancelled;
        }
        let source = input_root.join(rel);
        let result = std::fs::read(&source)
            .map_err(|e| Error::io(&source, e))
            .and_then(|bytes| {
                corrupt_one_file(
                    corruption,
                    options.seed,
                    rel,
                    &bytes,
                    &source,
                    options.max_alloc,
                )
            })
            .and_then(|(bytes, kind)| {
                imageio::write_atomic(&output_root.join(rel), &bytes)?;
                Ok(kind)
            });
        let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
        control.report(Progress::items("files", finished, Some(total)));
        match result {
            Ok(kind) => Outcome::Written(CorruptedFile {
                path: rel.clone(),
                kind,
            }),
            Err(error) => Outcome::Failed(FailedFile {
                path: rel.clone(),
                error,
            }),
        }
    };
    let outcomes: Vec<Outcome> = match options.threads {
        Some(0) => return Err(Error::invalid("threads", "must be at least 1")),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::invalid("threads", e.to_string()))?
            .install(|| todo.par_iter().map(process).collect()),
        None => todo.par_iter().map(process).collect(),
    };
    if cancelled() {
        return Err(Error::Cancelled {
            what: format!("corrupting {}", input.display()),
        });
    }

    for outcome in outcomes {
        match outcome {
            Outcome::Written(w) => report.written.push(w),
            Outcome::Failed(f) => report.failed.push(f),
            Outcome::Cancelled => {}
        }
    }
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}
