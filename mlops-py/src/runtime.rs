//! Running core work from Python: without the GIL, on a thread pool that exists (also in a
//! forked child), stoppable with Ctrl-C, with progress passed to Python callbacks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mlops_core::{Control, Progress};
use pyo3::prelude::*;

/// The process that loaded the module. In a child made by `fork` Rayon's global pool has no
/// threads (they are not copied), so work there runs on a pool of the child's own.
pub(crate) static LOADED_BY: OnceLock<u32> = OnceLock::new();

/// The pool of a forked child (one per process id).
static CHILD_POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// Runs `work` on Rayon's global pool, or in a forked child on a pool of its own.
pub(crate) fn on_pool<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let pid = std::process::id();
    if LOADED_BY.get().is_none_or(|&p| p == pid) {
        return work();
    }
    let pool = {
        let mut slot = CHILD_POOL.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((p, pool)) if *p == pid => pool.clone(),
            _ => match rayon::ThreadPoolBuilder::new().build() {
                Ok(pool) => {
                    let pool = Arc::new(pool);
                    *slot = Some((pid, pool.clone()));
                    pool
                }
                // No pool can be made: run on the calling thread.
                Err(_) => return work(),
            },
        }
    };
    pool.install(work)
}

/// Runs `work` without the GIL on the right pool (see [`on_pool`]).
pub(crate) fn heavy<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> T {
    py.detach(|| on_pool(work))
}

/// Runs `work(control)` in a worker thread while this thread checks for Ctrl-C (and other
/// signals) every 100 ms; on a signal it cancels `control`, waits for `work` to wind down and
/// raises the signal's exception (KeyboardInterrupt).
pub(crate) fn interruptible<T: Send>(
    py: Python<'_>,
    control: Control,
    work: impl FnOnce(&Control) -> T + Send,
) -> PyResult<T> {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (control_ref, done_ref) = (&control, &done);
        let worker = scope.spawn(move || {
            let out = on_pool(|| work(control_ref));
            done_ref.store(true, Ordering::Release);
            out
        });
        let mut interrupted = None;
        loop {
            let finished = py.detach(|| {
                let until = Instant::now() + Duration::from_millis(100);
                while !done_ref.load(Ordering::Acquire) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                done_ref.load(Ordering::Acquire)
            });
            if finished {
                break;
            }
            if interrupted.is_none()
                && let Err(e) = py.check_signals()
            {
                control.cancel();
                interrupted = Some(e);
            }
        }
        let out = worker.join().map_err(|_| {
            crate::errors::MlopsError::new_err(
                "the worker thread panicked (a bug: please report it)",
            )
        })?;
        match interrupted {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

/// Calls a Python callable; an exception in it is printed, not raised, so it cannot abort a
/// half-written batch.
fn call<A: for<'py> pyo3::call::PyCallArgs<'py>>(callback: &Py<PyAny>, args: A) {
    Python::attach(|py| {
        if let Err(e) = callback.call1(py, args) {
            e.print(py);
        }
    });
}

/// A [`Control`] that passes the detail of every `stage` step to `callback` as JSON text.
pub(crate) fn detail_control(callback: Option<Py<PyAny>>, stage: &'static str) -> Control {
    match callback {
        None => Control::new(),
        Some(callback) => Control::new().with_progress(move |p: &Progress<'_>| {
            if p.stage == stage
                && let Some(detail) = p.detail
            {
                call(&callback, (detail.to_json().to_string(),));
            }
        }),
    }
}

/// A [`Control`] that passes `(done, total)` of every `stage` step to `callback`.
pub(crate) fn count_control(callback: Option<Py<PyAny>>, stage: &'static str) -> Control {
    match callback {
        None => Control::new(),
        Some(callback) => Control::new().with_progress(move |p: &Progress<'_>| {
            if p.stage == stage {
                call(&callback, (p.done, p.total.unwrap_or(p.done)));
            }
        }),
    }
}
