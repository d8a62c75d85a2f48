//! The one path rule every entry point shares ([`mlops_core::paths::resolve_under`]), on a real
//! folder tree with links in and out of the root; and [`mlops_core::paths::open_under`], which
//! opens what was checked, under a writer that swaps a file for a link in a loop.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use mlops_core::paths::{PathRefused, open_under, read_under, resolve_under};

/// `<tmp>/data` (the root) with `brick/a.jpg`, links `inside -> brick`, `out -> <tmp>/outside`,
/// `secret.jpg -> <tmp>/outside/s.jpg`, `broken -> <tmp>/nowhere`, `up -> ..`; and
/// `<tmp>/root-link -> data`.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(data.join("brick")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(data.join("brick/a.jpg"), b"a").unwrap();
    std::fs::write(outside.join("s.jpg"), b"s").unwrap();
    symlink(data.join("brick"), data.join("inside")).unwrap();
    symlink(&outside, data.join("out")).unwrap();
    symlink(outside.join("s.jpg"), data.join("secret.jpg")).unwrap();
    symlink(tmp.path().join("nowhere"), data.join("broken")).unwrap();
    symlink("..", data.join("up")).unwrap();
    symlink(&data, tmp.path().join("root-link")).unwrap();
    (tmp, data)
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap()
}

#[test]
fn paths_under_the_root_resolve_to_the_file() {
    let (_tmp, data) = tree();
    let file = canonical(&data.join("brick/a.jpg"));
    assert_eq!(resolve_under(&data, "brick/a.jpg").unwrap(), file);
    assert_eq!(resolve_under(&data, "./brick/./a.jpg").unwrap(), file);
    // Through a linked folder that stays inside the root.
    assert_eq!(resolve_under(&data, "inside/a.jpg").unwrap(), file);
    // A root reached through a link is fine too.
    let via_link = data.parent().unwrap().join("root-link");
    assert_eq!(resolve_under(&via_link, "inside/a.jpg").unwrap(), file);
    // A missing file resolves (the caller reports it missing), still under the root.
    let missing = resolve_under(&data, "brick/none/deeper.jpg").unwrap();
    assert!(missing.starts_with(canonical(&data)), "{missing:?}");
    assert!(!missing.exists());
}

#[test]
fn every_way_out_of_the_root_is_refused_and_named() {
    let (_tmp, data) = tree();
    for (path, expect) in [
        ("../outside/s.jpg", "absolute or with `..`"),
        ("brick/../../outside/s.jpg", "absolute or with `..`"),
        ("/etc/passwd", "absolute or with `..`"),
        ("out/s.jpg", "through the link"),
        ("secret.jpg", "through the link"),
        ("up/outside/s.jpg", "through the link"),
        ("broken/x.jpg", "broken link"),
        ("", "empty"),
        ("brick/a\0.jpg", "NUL"),
    ] {
        let refused = resolve_under(&data, path).expect_err(path);
        let message = refused.to_string();
        assert!(message.contains(expect), "{path:?}: {message}");
        if !path.is_empty() && !path.contains('\0') {
            assert!(message.contains(path), "{path:?} not named: {message}");
        }
    }
    assert!(matches!(
        resolve_under(&data, "out/s.jpg"),
        Err(PathRefused::LinkOut { .. })
    ));
    // A root that does not exist is named.
    let e = resolve_under(&data.join("nope"), "a.jpg").unwrap_err();
    assert!(matches!(e, PathRefused::Unreadable { .. }), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn open_under_reads_what_resolve_under_accepts_and_refuses_the_rest() {
    let (_tmp, data) = tree();
    assert_eq!(read_under(&data, "brick/a.jpg").unwrap(), b"a");
    assert_eq!(read_under(&data, "inside/a.jpg").unwrap(), b"a");
    for path in [
        "out/s.jpg",
        "secret.jpg",
        "up/outside/s.jpg",
        "../outside/s.jpg",
    ] {
        assert!(open_under(&data, path).is_err(), "{path} was opened");
    }
    let missing = open_under(&data, "brick/none.jpg").unwrap_err();
    assert!(
        matches!(&missing, PathRefused::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{missing}"
    );
    // A FIFO planted under the root does not hang the reader (no writer: nothing to read).
    let status = std::process::Command::new("mkfifo")
        .arg(data.join("brick/pipe.jpg"))
        .status()
        .unwrap();
    assert!(status.success());
    let (sent, read) = std::sync::mpsc::channel();
    let root = data.clone();
    std::thread::spawn(move || {
        let _ = sent.send(read_under(&root, "brick/pipe.jpg").map(|b| b.len()).ok());
    });
    assert_eq!(
        read.recv_timeout(std::time::Duration::from_secs(10)),
        Ok(Some(0)),
        "reading a FIFO hung"
    );
}

/// A writer under the data root swaps a checked file for a link to a file outside, back and
/// forth, as fast as it can, while readers read the path: a reader gets the inside bytes or a
/// refusal, never the outside file's bytes. (A check followed by a plain open leaks them.)
#[test]
fn a_file_swapped_for_a_link_while_reading_never_leaks_the_link_target() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(data.join("brick")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.jpg"), b"SECRET").unwrap();
    let target = data.join("brick/x.jpg");
    std::fs::write(&target, b"inside").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, data, outside) = (Arc::clone(&stop), data.clone(), outside.clone());
        std::thread::spawn(move || {
            let (file, link) = (data.join("brick/.file"), data.join("brick/.link"));
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::fs::write(&file, b"inside").unwrap();
                std::fs::rename(&file, data.join("brick/x.jpg")).unwrap();
                let _ = std::fs::remove_file(&link);
                symlink(outside.join("secret.jpg"), &link).unwrap();
                std::fs::rename(&link, data.join("brick/x.jpg")).unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let started = std::time::Instant::now();
    let (mut read, mut refused) = (0u64, 0u64);
    while started.elapsed() < std::time::Duration::from_secs(2) {
        match read_under(&data, "brick/x.jpg") {
            Ok(bytes) => {
                assert_eq!(bytes, b"inside", "read the link's target");
                read += 1;
            }
            Err(_) => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = writer.join().unwrap();
    assert!(swaps > 100, "the writer swapped only {swaps} times");
    assert!(
        read > 0 && refused > 0,
        "read {read}, refused {refused}: the race was not exercised"
    );
}
