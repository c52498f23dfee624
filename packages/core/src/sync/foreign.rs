//! Awaiting an asyncio future (anything with asyncio's future protocol) from a manyio task.
//!
//! `Future.__await__` yields the future itself with `_asyncio_future_blocking` set. The
//! scheduler parks the task on a waiter that the future's done-callback completes; resuming
//! sends None back into `__await__`, which then returns the result or raises. Cancelling the
//! task cancels the future (from its loop), as cancelling an asyncio task cancels what it awaits.

use std::sync::Arc;

use manyio_engine::Completion;
use pyo3::prelude::*;

use super::waiter::{complete_slot, WaitSlot, Waiter};

/// A waiter for `obj` if it is an asyncio-style future, else None.
pub fn future_waiter<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, Waiter>>> {
    match obj.getattr_opt("_asyncio_future_blocking")? {
        Some(flag) if !flag.is_none() => {}
        _ => return Ok(None),
    }
    obj.setattr("_asyncio_future_blocking", false)?;
    let slot: Arc<WaitSlot> = Arc::new(Completion::new());
    obj.call_method1("add_done_callback", (FutureDone { slot: slot.clone() },))?;
    let future = obj.clone().unbind();
    let cancel = Box::new(move || Python::attach(|py| cancel_future(py, future.bind(py))));
    Ok(Some(Bound::new(py, Waiter::new(slot, Some(cancel)))?))
}

/// Cancels `future` from its loop's thread when that loop is running (asyncio futures are not
/// meant to be touched from other threads); directly when no loop is running it.
fn cancel_future(py: Python<'_>, future: &Bound<'_, PyAny>) {
    let cancel = match future.getattr("cancel") {
        Ok(c) => c,
        Err(e) => return e.write_unraisable(py, None),
    };
    let scheduled = future.call_method0("get_loop").and_then(|l| {
        if l.call_method0("is_running")?.is_truthy()? {
            l.call_method1("call_soon_threadsafe", (&cancel,))?;
            Ok(true)
        } else {
            Ok(false)
        }
    });
    if !matches!(scheduled, Ok(true)) {
        if let Err(e) = cancel.call0() {
            e.write_unraisable(py, None);
        }
    }
}

/// The done-callback: wakes the task parked on the future. Exported so that adapters whose
/// loops run future callbacks in a serial domain can run this one (it only wakes a task) at once.
#[pyclass(frozen, module = "manyio._core")]
pub struct FutureDone {
    slot: Arc<WaitSlot>,
}

#[pymethods]
impl FutureDone {
    fn __call__(&self, py: Python<'_>, _future: &Bound<'_, PyAny>) {
        complete_slot(py, &self.slot, None);
    }
}
