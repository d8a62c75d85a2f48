//! Listing a class-folder data set, `<root>/<class>/...`, into a [`Manifest`].

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use super::{ClassMap, Manifest, Sample};
use crate::error::{Error, Result};
use crate::imageio::is_image_path;

/// How to list a data set.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// The classes in id order. `None` (the default) takes every non-hidden folder under the
    /// root, sorted alphabetically.
    pub classes: Option<Vec<String>>,
    /// With a given class list: fail on folders that are not in it instead of reporting them.
    pub strict: bool,
}

/// What listing found besides the samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingReport {
    /// Image count per class, in id order.
    pub per_class: Vec<(String, usize)>,
    /// Classes with no image (including given classes with no folder).
    pub empty_classes: Vec<String>,
    /// Folders under the root that are not in the given class list (not listed).
    pub unknown_folders: Vec<String>,
    /// Hidden files and folders passed over (names starting with `.`).
    pub hidden: Vec<String>,
    /// Files passed over because their extension is not an image's.
    pub non_images: Vec<String>,
    /// Files directly in the root, outside any class folder.
    pub stray_files: Vec<String>,
}

impl ListingReport {
    /// Whether anything was passed over or is empty.
    pub fn has_warnings(&self) -> bool {
        !(self.empty_classes.is_empty()
            && self.unknown_folders.is_empty()
            && self.hidden.is_empty()
            && self.non_images.is_empty()
            && self.stray_files.is_empty())
    }
}

/// A listed data set.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Samples sorted by `image_path` (byte order).
    pub manifest: Manifest,
    /// The class map used.
    pub classes: ClassMap,
    /// What was passed over.
    pub report: ListingReport,
}

fn is_hidden_name(name: &str) -> bool {
    name.starts_with('.')
}

fn key(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Lists `<root>/<class>/**/<image>` into samples with paths relative to `root`.
///
/// Images may sit in sub-folders of a class folder. Hidden entries, non-images and files
/// directly in the root are passed over and reported; so are empty classes and, with a given
/// class list, folders outside it. Fails when the root cannot be read or no image was found.
pub fn list_dataset(root: &Path, options: &ListOptions) -> Result<Listing> {
    let mut report = ListingReport::default();
    let mut folders = Vec::new();
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if is_hidden_name(&name) {
            report.hidden.push(name);
        } else if path.is_dir() {
            folders.push(name);
        } else {
            report.stray_files.push(name);
        }
    }
    folders.sort();

    let classes = match &options.classes {
        Some(given) => {
            let classes = ClassMap::new(given.iter().cloned())?;
            report.unknown_folders = folders
                .iter()
                .filter(|f| classes.id(f).is_none())
                .cloned()
                .collect();
            if options.strict && !report.unknown_folders.is_empty() {
                return Err(Error::EmptyDataset {
                    root: root.to_path_buf(),
                    reason: format!(
                        "folders not in the class list: {}",
                        report.unknown_folders.join(", ")
                    ),
                });
            }
            classes
        }
        None => {
            ClassMap::alphabetical(folders.iter().cloned()).map_err(|_| Error::EmptyDataset {
                root: root.to_path_buf(),
                reason: "no class folders found (expected <root>/<class>/<image>)".into(),
            })?
        }
    };

    let mut samples = Vec::new();
    for (id, class) in classes.names().iter().enumerate() {
        let class_dir: PathBuf = root.join(class);
        let mut count = 0;
        if class_dir.is_dir() {
            let mut walker = WalkDir::new(&class_dir)
                .follow_links(true)
                .sort_by_file_name()
                .into_iter();
            while let Some(entry) = walker.next() {
                let entry = entry.map_err(|e| {
                    let path = e.path().unwrap_or(&class_dir).to_path_buf();
                    let source = e
                        .into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("symbolic link loop"));
                    Error::io(path, source)
                })?;
                let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
                if entry.depth() > 0 && is_hidden_name(&entry.file_name().to_string_lossy()) {
                    if entry.file_type().is_dir() {
                        walker.skip_current_dir();
                    }
                    report.hidden.push(key(rel));
                    continue;
                }
                if entry.file_type().is_dir() {
                    continue;
                }
                if is_image_path(rel) {
                    samples.push(Sample::new(key(rel), id as u32));
                    count += 1;
                } else {
                    report.non_images.push(key(rel));
                }
            }
        }
        if count == 0 {
            report.empty_classes.push(class.clone());
        }
        report.per_class.push((class.clone(), count));
    }
    if samples.is_empty() {
        return Err(Error::EmptyDataset {
            root: root.to_path_buf(),
            reason: format!(
                "no images found in the class folders ({})",
                classes.names().join(", ")
            ),
        });
    }
    samples.sort();
    report.hidden.sort();
    report.non_images.sort();
    report.stray_files.sort();
    Ok(Listing {
        manifest: Manifest::new(samples),
        classes,
        report,
    })
}
