//! Progress bars for long jobs, on standard error; hidden when asked, and drawn only when
//! standard error is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps labelled `prefix`; `show = false` gives a hidden bar.
pub(crate) fn bar(show: bool, len: u64, prefix: &str) -> ProgressBar {
    let bar = if show {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} {wide_bar} {pos}/{len} [{elapsed} < {eta}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix.to_string());
    bar
}
