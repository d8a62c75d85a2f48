//! Running the crate's async I/O (object stores, Kafka) from blocking functions, wherever the
//! caller is: outside any tokio runtime the future runs on a small runtime of its own; inside a
//! multi-thread runtime (an axum or tonic service) the worker thread is handed over with
//! `block_in_place`; inside a current-thread runtime, which cannot be blocked, the call fails
//! with [`Error::BlockingInAsync`] instead of panicking, and the caller uses the async variant.

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{Error, Result};

/// Runs `future` to completion from synchronous code; `operation` names it in errors.
pub(crate) fn block_on<F: Future>(operation: &'static str, future: F) -> Result<F::Output> {
    match Handle::try_current() {
        Err(_) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("<tokio runtime>", e))?;
            Ok(runtime.block_on(future))
        }
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(|| handle.block_on(future)))
        }
        Ok(_) => Err(Error::BlockingInAsync { operation }),
    }
}
