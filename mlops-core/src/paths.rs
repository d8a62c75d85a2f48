//! The one rule for user-given relative paths (a row's `image_path`, a request's path): they
//! name a file under a data root and never anything outside it. The stream, the Kafka
//! consumer, the FastAPI app and the MLflow pyfunc all resolve through [`resolve_under`].
//!
//! Refused: an empty path, a NUL byte, an absolute path, any `..`, and a symbolic link (at any
//! depth) whose target lies outside the root or does not exist. Allowed: `.` components and
//! links that stay inside the root (a class folder linked to another folder of the data set).
//! A path whose file does not exist is resolved all the same (the caller reports it missing).
//!
//! Checking a path and opening it later are two steps a writer under the data root could
//! slip between (swapping a checked file for a link). Readers use [`open_under`] (or
//! [`read_under`]), which opens exactly what was checked: it walks from a handle on the root
//! through each folder of the resolved path with `O_NOFOLLOW`, so a link that appeared after
//! the check is refused instead of followed.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a relative path was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathRefused {
    /// The path is empty.
    #[error("image_path is empty")]
    Empty,
    /// The path contains a NUL byte.
    #[error("image_path {0:?} contains a NUL byte")]
    NulByte(String),
    /// The path is absolute, or climbs with `..`.
    #[error("image_path {0:?} leaves the data root (absolute or with `..`)")]
    Escapes(String),
    /// A symbolic link on the path leads out of the root.
    #[error("image_path {path:?} leaves the data root through the link {link}")]
    LinkOut {
        /// The relative path as given.
        path: String,
        /// The link, under the root.
        link: PathBuf,
    },
    /// A symbolic link on the path leads nowhere.
    #[error("image_path {path:?} goes through the broken link {link}")]
    BrokenLink {
        /// The relative path as given.
        path: String,
        /// The link, under the root.
        link: PathBuf,
    },
    /// A folder or the file on the checked path became a symbolic link before it was opened
    /// (the tree changed under the reader).
    #[error("image_path {path:?}: {at} became a link after it was checked")]
    Changed {
        /// The relative path as given.
        path: String,
        /// The component that is now a link.
        at: PathBuf,
    },
    /// The file could not be opened or read (missing, a folder, no permission).
    #[error("image_path {path:?}: cannot open {at}: {source}")]
    Open {
        /// The relative path as given.
        path: String,
        /// The resolved file.
        at: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The root itself, or a folder on the path, could not be read.
    #[error("image_path {path:?}: cannot resolve {at}: {source}")]
    Unreadable {
        /// The relative path as given.
        path: String,
        /// The folder or link that could not be read.
        at: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// `root / relative` with every link on the way resolved, or why it is refused (see the
/// module's rule). The result starts with the canonical form of `root`. To read the file, use
/// [`open_under`]: a path checked here may change before it is opened.
pub fn resolve_under(root: &Path, relative: &str) -> Result<PathBuf, PathRefused> {
    resolve(root, relative).map(|(_, resolved)| resolved)
}

/// Opens `root / relative` for reading if [`resolve_under`] accepts it, and only the file it
/// resolved: the open walks from a handle on the root through the resolved folders without
/// following links ([`PathRefused::Changed`] when one appeared since the check).
pub fn open_under(root: &Path, relative: &str) -> Result<std::fs::File, PathRefused> {
    let (base, resolved) = resolve(root, relative)?;
    let inner = resolved.strip_prefix(&base).unwrap_or(&resolved);
    open_without_links(&base, inner).map_err(|(at, source)| {
        if source.raw_os_error() == Some(ELOOP) {
            PathRefused::Changed {
                path: relative.to_string(),
                at,
            }
        } else {
            PathRefused::Open {
                path: relative.to_string(),
                at,
                source,
            }
        }
    })
}

/// The bytes of the file [`open_under`] opens.
pub fn read_under(root: &Path, relative: &str) -> Result<Vec<u8>, PathRefused> {
    use std::io::Read;
    let mut file = open_under(root, relative)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| PathRefused::Open {
            path: relative.to_string(),
            at: root.join(relative),
            source,
        })?;
    Ok(bytes)
}

#[cfg(unix)]
const ELOOP: i32 = rustix::io::Errno::LOOP.raw_os_error();
#[cfg(not(unix))]
const ELOOP: i32 = -1;

/// Opens `base / inner` (`inner` relative, made of plain names) from a handle on `base`, one
/// component at a time with `O_NOFOLLOW` (the file itself also `O_NONBLOCK`, so a FIFO planted
/// under the root cannot hang the reader); on failure, the component and the error.
#[cfg(unix)]
fn open_without_links(base: &Path, inner: &Path) -> Result<std::fs::File, (PathBuf, io::Error)> {
    use rustix::fs::{Mode, OFlags, openat};
    let fail = |at: &Path| {
        let at = at.to_path_buf();
        move |e: rustix::io::Errno| (at, io::Error::from(e))
    };
    let mut dir = std::fs::File::open(base).map_err(|e| (base.to_path_buf(), e))?;
    let names: Vec<&std::ffi::OsStr> = inner.iter().collect();
    let mut at = base.to_path_buf();
    for (i, name) in names.iter().enumerate() {
        at.push(name);
        let last = i + 1 == names.len();
        let flags = OFlags::RDONLY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | if last {
                OFlags::NONBLOCK
            } else {
                OFlags::DIRECTORY
            };
        let fd = openat(&dir, *name, flags, Mode::empty()).map_err(fail(&at))?;
        dir = std::fs::File::from(fd);
    }
    Ok(dir)
}

/// Elsewhere: the resolved path, opened as it is.
#[cfg(not(unix))]
fn open_without_links(base: &Path, inner: &Path) -> Result<std::fs::File, (PathBuf, io::Error)> {
    let path = base.join(inner);
    std::fs::File::open(&path).map_err(|e| (path, e))
}

/// The canonical root and the resolved path under it (see [`resolve_under`]).
fn resolve(root: &Path, relative: &str) -> Result<(PathBuf, PathBuf), PathRefused> {
    if relative.is_empty() {
        return Err(PathRefused::Empty);
    }
    if relative.contains('\0') {
        return Err(PathRefused::NulByte(relative.to_string()));
    }
    let path = Path::new(relative);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(PathRefused::Escapes(relative.to_string()));
    }
    let unreadable = |at: &Path, source| PathRefused::Unreadable {
        path: relative.to_string(),
        at: at.to_path_buf(),
        source,
    };
    let base = root.canonicalize().map_err(|e| unreadable(root, e))?;
    let mut resolved = base.clone();
    let mut names = path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    });
    for name in names.by_ref() {
        let next = resolved.join(name);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = match next.canonicalize() {
                    Ok(target) => target,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(PathRefused::BrokenLink {
                            path: relative.to_string(),
                            link: next,
                        });
                    }
                    Err(e) => return Err(unreadable(&next, e)),
                };
                if !target.starts_with(&base) {
                    return Err(PathRefused::LinkOut {
                        path: relative.to_string(),
                        link: next,
                    });
                }
                resolved = target;
            }
            Ok(_) => resolved = next,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                // Nothing below a missing entry exists, so no link can lead out from there.
                resolved = next;
                break;
            }
            Err(e) => return Err(unreadable(&next, e)),
        }
    }
    resolved.extend(names);
    Ok((base, resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_escapes_are_refused_before_the_file_system_is_asked() {
        let root = Path::new("/nonexistent-root");
        for bad in ["../etc/passwd", "/etc/passwd", "brick/../../x.jpg", "a/.."] {
            assert!(
                matches!(resolve_under(root, bad), Err(PathRefused::Escapes(_))),
                "{bad}"
            );
        }
        assert!(matches!(resolve_under(root, ""), Err(PathRefused::Empty)));
        assert!(matches!(
            resolve_under(root, "a\0b"),
            Err(PathRefused::NulByte(_))
        ));
        // A fine path under a root that does not exist: the root is named.
        let e = resolve_under(root, "brick/x.jpg").unwrap_err();
        assert!(e.to_string().contains("nonexistent-root"), "{e}");
    }
}
