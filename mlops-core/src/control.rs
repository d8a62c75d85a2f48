//! Following and stopping long operations: one [`Control`] (a cancel flag and a progress
//! callback) taken by training, folder corruption, the shift experiment, the stream, the data
//! generator's trickle and Kafka.
//!
//! Bounded jobs (training, corruption, the experiment) fail with
//! [`Error::Cancelled`] once cancelled; open-ended ones (the stream,
//! the trickle, Kafka) stop cleanly and return their statistics. The library never prints:
//! progress goes to the callback (the examples draw bars from it) and diagnostics to the
//! [`log`](https://docs.rs/log) facade.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use mlops_core::{Control, Progress};
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! let control = Control::new().with_progress(move |p: &Progress<'_>| {
//!     sink.lock().unwrap().push((p.stage, p.done, p.total));
//! });
//! control.report(Progress::items("files", 1, Some(2)));
//! assert_eq!(seen.lock().unwrap()[0], ("files", 1, Some(2)));
//! assert!(!control.is_cancelled());
//!
//! // A stage reports what a step produced in a type of its own; callers read it back.
//! #[derive(Debug, serde::Serialize)]
//! struct Batch { rows: u64 }
//! let typed = Control::new().with_progress(|p: &Progress<'_>| {
//!     assert_eq!(p.detail::<Batch>().map(|b| b.rows), Some(64));
//!     assert_eq!(p.detail.map(|d| d.to_json()["rows"].clone()), Some(64.into()));
//! });
//! typed.report(Progress::items("stream", 64, None).with_detail(&Batch { rows: 64 }));
//! control.cancel();
//! assert!(control.check("corruption").is_err());
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};

/// What a step produced, in the producing stage's own type: a training epoch's metrics, an
/// experiment run, a stream's totals. The control layer knows none of these types; a caller
/// reads the value back as the type it expects ([`Progress::detail`]) or as JSON
/// ([`StepDetail::to_json`], what Python callbacks receive). Every `Serialize + Debug` type
/// is one.
pub trait StepDetail: Any + fmt::Debug + Send + Sync {
    /// The value as JSON (`null` if it cannot be written).
    fn to_json(&self) -> serde_json::Value;
}

impl<T: Serialize + Any + fmt::Debug + Send + Sync> StepDetail for T {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// A step of a long operation.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// What is being counted: `files` (corruption), `features` and `epochs` (training),
    /// `runs` (the experiment), `stream`, `trickle`, `publish`, `consume`.
    pub stage: &'static str,
    /// Items done so far in this stage.
    pub done: u64,
    /// Items in the stage, when known (`None` for open-ended jobs such as a stream).
    pub total: Option<u64>,
    /// What the step produced, for stages that produce something (see [`Progress::detail`]).
    pub detail: Option<&'a (dyn StepDetail + 'static)>,
}

impl<'a> Progress<'a> {
    /// `done` of `total` items of `stage`, with no detail.
    pub fn items(stage: &'static str, done: u64, total: Option<u64>) -> Self {
        Progress {
            stage,
            done,
            total,
            detail: None,
        }
    }

    /// The same step with `detail`.
    pub fn with_detail(mut self, detail: &'a (dyn StepDetail + 'static)) -> Self {
        self.detail = Some(detail);
        self
    }

    /// The step's detail if it is a `T` (e.g. `train::EpochMetrics` for `epochs`,
    /// `db::StreamStats` for `stream`).
    pub fn detail<T: Any>(&self) -> Option<&'a T> {
        let detail: &'a (dyn Any + 'static) = self.detail?;
        detail.downcast_ref()
    }
}

type Callback = Arc<dyn Fn(&Progress<'_>) + Send + Sync>;

/// A cancel flag and an optional progress callback for a long operation. Cheap to clone;
/// clones share the flag, so one can be cancelled from another thread (or a signal handler)
/// while the operation runs with the other.
#[derive(Clone, Default)]
pub struct Control {
    cancelled: Arc<AtomicBool>,
    progress: Option<Callback>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("cancelled", &self.is_cancelled())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Control {
    /// No callback, not cancelled.
    pub fn new() -> Self {
        Control::default()
    }

    /// Uses `flag` as the cancel flag (e.g. one set by a Ctrl-C handler).
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancelled = flag;
        self
    }

    /// Calls `callback` at every step. It runs on the operation's threads, so keep it short.
    pub fn with_progress(
        mut self,
        callback: impl Fn(&Progress<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(callback));
        self
    }

    /// The shared cancel flag.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancelled)
    }

    /// Asks the operation to stop at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Control::cancel`] was called (or the flag set).
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(`[`Error::Cancelled`]`)` naming `what` once cancelled.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled { what: what.into() })
        } else {
            Ok(())
        }
    }

    /// Passes `progress` to the callback, if any.
    pub fn report(&self, progress: Progress<'_>) {
        if let Some(callback) = &self.progress {
            callback(&progress);
        }
    }
}
