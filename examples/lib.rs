//! Helpers shared by the example programs.

use mlops_core::corrupt::FolderReport;

/// Prints a folder report: counts, then every skipped and failed file with its reason.
pub fn print_folder_report(report: &FolderReport) {
    eprintln!(
        "written {}, skipped {}, failed {}",
        report.written.len(),
        report.skipped.len(),
        report.failed.len()
    );
    for s in &report.skipped {
        eprintln!("  skipped {}: {}", s.path.display(), s.reason);
    }
    for f in &report.failed {
        eprintln!("  FAILED  {}", f.error);
    }
}

/// Reads one file out of a wheel (a zip archive), e.g. `skimage/data/astronaut.png`.
pub fn read_from_wheel(
    wheel: &std::path::Path,
    member: &str,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use std::io::Read;
    let file = std::fs::File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| format!("{}: {member}: {e}", wheel.display()))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The one wheel in `dir` whose file name starts with `prefix` (e.g. `scikit_image-0.25.2`).
pub fn find_wheel(
    dir: &std::path::Path,
    prefix: &str,
) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(prefix) && name.ends_with(".whl") {
            return Ok(path);
        }
    }
    Err(format!(
        "no {prefix}*.whl in {}: run `make wheels` first",
        dir.display()
    )
    .into())
}

/// The exit code of a program whose work returned `result`: 0, or 2 after printing the error.
pub fn exit_code<E: std::fmt::Display>(result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
