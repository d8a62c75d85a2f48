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
//! control.cancel();
//! assert!(control.check("corruption").is_err());
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

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
    /// What the step produced, for stages that produce something.
    pub detail: Option<Detail<'a>>,
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
    pub fn with_detail(mut self, detail: Detail<'a>) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// What a step produced.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Detail<'a> {
    /// A training epoch's metrics.
    #[cfg(feature = "train")]
    Epoch(&'a crate::train::EpochMetrics),
    /// One run (shift, strategy, budget, seed) of the shift experiment.
    #[cfg(feature = "train")]
    Run(&'a crate::experiment::StrategyRun),
    /// The stream's totals after a committed batch.
    #[cfg(feature = "postgres")]
    Stream(&'a crate::db::StreamStats),
    /// The Kafka publisher's totals after a delivered batch.
    #[cfg(feature = "kafka")]
    Publish(&'a crate::kafka::PublishStats),
    /// A Kafka consumer's totals after a committed batch.
    #[cfg(feature = "kafka")]
    Consume(&'a crate::kafka::ConsumeStats),
    /// Never built; keeps the lifetime used in every feature combination.
    #[doc(hidden)]
    _Unused(std::marker::PhantomData<&'a ()>),
}

impl Detail<'_> {
    /// The detail as JSON (what Python callbacks receive).
    pub fn to_json(&self) -> serde_json::Value {
        let value: serde_json::Result<serde_json::Value> = match self {
            #[cfg(feature = "train")]
            Detail::Epoch(m) => serde_json::to_value(m),
            #[cfg(feature = "train")]
            Detail::Run(r) => serde_json::to_value(r),
            #[cfg(feature = "postgres")]
            Detail::Stream(s) => serde_json::to_value(s),
            #[cfg(feature = "kafka")]
            Detail::Publish(s) => serde_json::to_value(s),
            #[cfg(feature = "kafka")]
            Detail::Consume(s) => serde_json::to_value(s),
            Detail::_Unused(_) => Ok(serde_json::Value::Null),
        };
        value.unwrap_or(serde_json::Value::Null)
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
