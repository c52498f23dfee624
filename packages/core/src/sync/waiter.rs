//! The one thing a task parks on.
//!
//! A `Waiter` is an awaitable over a one-shot [`WaitSlot`]. Awaiting it yields the waiter
//! itself to the scheduler, which parks the task until the slot completes; the second
//! `__next__` then returns the slot's value (or raises its exception). If the task is
//! cancelled first, the scheduler aborts the slot and runs the waiter's abort hook, which
//! unregisters it from whatever would have completed it (a timer, a wait queue). A waiter for
//! something that has already ended ([`Waiter::finished`]) skips the yield.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use manyio_engine::Completion;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;

use crate::outcome::Outcome;
use crate::task::Task;

pub type WaitSlot = Completion<Outcome, Py<Task>>;
pub type AbortHook = Box<dyn FnOnce() + Send>;

/// Completes `slot` (with `None` when `outcome` is `None`) and wakes its task.
/// False when the waiter had already given up.
pub fn complete_slot(py: Python<'_>, slot: &WaitSlot, outcome: Option<Outcome>) -> bool {
    match slot.complete(outcome.unwrap_or_else(|| Outcome::none(py))) {
        Ok(Some(task)) => {
            Task::wake(task);
            true
        }
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Wakes every task in `wakers` (what the engine's queues hand back).
pub fn wake_all(wakers: Vec<Py<Task>>) {
    for task in wakers {
        Task::wake(task);
    }
}

#[pyclass(frozen, module = "manyio._core")]
pub struct Waiter {
    pub slot: Arc<WaitSlot>,
    /// Complete from the start (an event already set, a task already done): awaiting it is
    /// still a checkpoint, so a cancelled task raises instead of taking the value.
    pub born_ready: bool,
    yielded: AtomicBool,
    /// Awaited without yielding: see [`Waiter::finished`].
    no_yield: bool,
    on_abort: Mutex<Option<AbortHook>>,
}

impl Waiter {
    pub fn new(slot: Arc<WaitSlot>, on_abort: Option<AbortHook>) -> Self {
        let born_ready = !slot.is_pending();
        Self {
            slot,
            born_ready,
            yielded: AtomicBool::new(false),
            no_yield: false,
            on_abort: Mutex::new(on_abort),
        }
    }

    /// A waiter in a wait queue, which may be completed before the task awaits it: the task
    /// then resumes and looks again (as if it had parked), even when cancelled, instead of
    /// dropping what completed it (a lock handed to it, or a wake-up it must pass on).
    pub fn queued(slot: Arc<WaitSlot>, on_abort: Option<AbortHook>) -> Self {
        Self {
            born_ready: false,
            ..Self::new(slot, on_abort)
        }
    }

    /// The outcome of something that has already ended (a finished task). Awaiting it does
    /// not go through the scheduler, as awaiting a finished asyncio future does not: it is a
    /// cancellation point only, where a cancelled task raises `Cancelled` instead of taking
    /// the outcome.
    pub fn finished(outcome: Outcome) -> Self {
        Self {
            slot: Arc::new(Completion::ready(outcome)),
            born_ready: true,
            yielded: AtomicBool::new(true),
            no_yield: true,
            on_abort: Mutex::new(None),
        }
    }

    /// A waiter that is complete already; awaiting it is still a checkpoint.
    pub fn ready(py: Python<'_>, value: Option<Py<PyAny>>) -> Self {
        let value = value.unwrap_or_else(|| py.None());
        Self::new(Arc::new(Completion::ready(Outcome::Value(value))), None)
    }

    /// Called by the scheduler when the waiting task is cancelled. True if the wait was
    /// abandoned (raise `Cancelled`); false if the value arrived first (deliver it).
    pub fn abort(&self) -> bool {
        if !self.slot.try_abort() {
            return false;
        }
        let hook = self
            .on_abort
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(hook) = hook {
            hook();
        }
        true
    }
}

#[pymethods]
impl Waiter {
    /// A pending waiter for primitives written in Python: they keep it in their own queue and
    /// later call `complete()` or `fail()` on it.
    #[new]
    fn py_new() -> Self {
        Self::new(Arc::new(Completion::new()), None)
    }

    /// Hands `value` to the waiting task and wakes it. False if the task stopped waiting
    /// (it was cancelled): give the value to someone else.
    #[pyo3(signature = (value=None))]
    fn complete(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> bool {
        complete_slot(py, &self.slot, value.map(Outcome::Value))
    }

    /// Wakes the waiting task by raising `exc` in it. False if it stopped waiting.
    fn fail(&self, py: Python<'_>, exc: Py<PyAny>) -> bool {
        complete_slot(py, &self.slot, Some(Outcome::Error(exc)))
    }

    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(slf: Bound<'_, Self>) -> PyResult<Option<Py<PyAny>>> {
        let py = slf.py();
        let this = slf.get();
        if !this.yielded.swap(true, Ordering::AcqRel) {
            return Ok(Some(slf.into_any().unbind()));
        }
        if this.no_yield {
            let task = crate::runtime::worker::current_task(py);
            if let Some(cancelled) = task.and_then(|t| t.get().pending_cancellation(py)) {
                return Err(cancelled);
            }
        }
        match this.slot.take() {
            Some(Outcome::Value(v)) if v.is_none(py) => Ok(None),
            Some(Outcome::Value(v)) => Err(PyStopIteration::new_err((v,))),
            Some(Outcome::Error(e)) => {
                let e = e.into_bound(py);
                if e.is_instance_of::<PyStopIteration>() {
                    // Raised from here, StopIteration would read as "the wait returned None":
                    // surface it as Python does when a coroutine raises it (PEP 479).
                    let err = PyRuntimeError::new_err("coroutine raised StopIteration");
                    err.set_cause(py, Some(PyErr::from_value(e)));
                    return Err(err);
                }
                Err(PyErr::from_value(e))
            }
            None => Err(PyRuntimeError::new_err(
                "a manyio waiter was resumed before it completed: manyio awaitables must be \
                 awaited from a task running on a manyio runtime",
            )),
        }
    }

    /// True once a value or exception is stored (or taken).
    fn done(&self) -> bool {
        !self.slot.is_pending()
    }
}
