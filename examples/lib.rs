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
