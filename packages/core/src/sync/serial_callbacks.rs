//! `SerialCallbacks`: the ready queue of an asyncio-style loop whose callbacks run holding a
//! `SerialLock` (manyio-asyncpg's loop, one per connection).
//!
//! Every reply a connection reads goes through it: the reader delivers the bytes to the
//! protocol holding the lock, the protocol completes a future, the future queues its
//! callbacks, and those run before the lock is let go. In Python that was seven frames per
//! reply (`deliver`, `call_soon` twice, asyncio's `Handle` built and run, `run_ready`), more
//! than the protocol's own work for a small reply.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::sync::foreign::FutureDone;
use crate::sync::serial::{LockState, SerialLock};
use crate::task::context;

/// A queued callback (what asyncio's ``loop.call_soon`` returns as a ``Handle``).
#[pyclass(frozen, module = "manyio._core")]
pub struct Callback {
    callback: Py<PyAny>,
    args: Py<PyTuple>,
    context: Option<Py<PyAny>>,
    cancelled: AtomicBool,
}

#[pymethods]
impl Callback {
    /// Keeps the callback from running if it has not run yet.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// The context the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.context.as_ref().map(|c| c.clone_ref(py))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.cancelled() { " cancelled" } else { "" };
        let callback = self.callback.bind(py).repr().map(|r| r.to_string());
        format!(
            "<manyio.Callback{state} {}>",
            callback.unwrap_or_else(|_| "?".into())
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callback)?;
        visit.call(&self.args)?;
        if let Some(context) = &self.context {
            visit.call(context)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Ready {
    queue: VecDeque<Py<Callback>>,
    /// Someone will run the queue: a drain task, or a `deliver` in progress.
    draining: bool,
}

/// ``call_soon``, ``run_ready`` and ``deliver`` of one serial loop.
///
/// ``start_drain()`` is called when a callback is queued and nobody is going to run the
/// queue: it spawns a task that takes the lock and calls ``run_ready``. A callback that
/// raises is reported to ``exception_handler`` (asyncio's context dict), as asyncio reports
/// it, and the next one runs; ``SystemExit`` and ``KeyboardInterrupt`` propagate.
#[pyclass(frozen, module = "manyio._core")]
pub struct SerialCallbacks {
    lock: Arc<LockState>,
    start_drain: Py<PyAny>,
    exception_handler: Py<PyAny>,
    ready: Mutex<Ready>,
    /// What ``call_soon`` returns for a callback it ran at once.
    done: Py<Callback>,
}

impl SerialCallbacks {
    fn ready(&self) -> MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run_one(&self, py: Python<'_>, handle: &Bound<'_, Callback>) -> PyResult<()> {
        let h = handle.get();
        let callback = h.callback.bind(py);
        let args = h.args.bind(py);
        let ran = match &h.context {
            Some(context) => context::run_in(py, context, || callback.call1(args)).and_then(|r| r),
            None => callback.call1(args),
        };
        let Err(e) = ran else { return Ok(()) };
        if e.is_instance_of::<PySystemExit>(py) || e.is_instance_of::<PyKeyboardInterrupt>(py) {
            return Err(e);
        }
        let name = callback
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        let report = PyDict::new(py);
        let reported = report
            .set_item("message", format!("Exception in callback {name}"))
            .and_then(|_| report.set_item("exception", e.value(py)))
            .and_then(|_| report.set_item("handle", handle))
            .and_then(|_| self.exception_handler.call1(py, (report,)));
        if let Err(e) = reported {
            e.write_unraisable(py, Some(callback));
        }
        Ok(())
    }
}

#[pymethods]
impl SerialCallbacks {
    #[new]
    fn new(
        py: Python<'_>,
        lock: &SerialLock,
        start_drain: Py<PyAny>,
        exception_handler: Py<PyAny>,
    ) -> PyResult<Self> {
        let done = Callback {
            callback: py.None(),
            args: PyTuple::empty(py).unbind(),
            context: None,
            cancelled: AtomicBool::new(false),
        };
        Ok(Self {
            lock: lock.state().clone(),
            start_drain,
            exception_handler,
            ready: Mutex::new(Ready::default()),
            done: Py::new(py, done)?,
        })
    }

    /// Queues ``callback(*args)`` to run in ``context`` (a copy of the current one by
    /// default) holding the lock. A task's wake-up from a future (``FutureDone``) runs at
    /// once: it is thread-safe and runs no user code.
    #[pyo3(signature = (callback, *args, context=None))]
    fn call_soon(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Callback>> {
        if callback.is_exact_instance_of::<FutureDone>() {
            callback.call1(args)?;
            return Ok(self.done.clone_ref(py));
        }
        let context = match context {
            Some(c) if !c.is_none(py) => c,
            // SAFETY: PyContext_CopyCurrent returns a new reference or NULL with an exception set.
            _ => unsafe {
                Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_CopyCurrent())?.unbind()
            },
        };
        let handle = Py::new(
            py,
            Callback {
                callback: callback.unbind(),
                args: args.unbind(),
                context: Some(context),
                cancelled: AtomicBool::new(false),
            },
        )?;
        let start = {
            let mut ready = self.ready();
            ready.queue.push_back(handle.clone_ref(py));
            !std::mem::replace(&mut ready.draining, true)
        };
        if start {
            if let Err(e) = self.start_drain.call0(py) {
                // Nobody will run the queue: the next call_soon tries again.
                self.ready().draining = false;
                return Err(e);
            }
        }
        Ok(handle)
    }

    /// Runs the queued callbacks until none are left (the caller holds the lock).
    fn run_ready(&self, py: Python<'_>) -> PyResult<()> {
        loop {
            let batch = {
                let mut ready = self.ready();
                if ready.queue.is_empty() {
                    ready.draining = false;
                    return Ok(());
                }
                std::mem::take(&mut ready.queue)
            };
            let mut batch = batch.into_iter();
            while let Some(handle) = batch.next() {
                let handle = handle.into_bound(py);
                if handle.get().cancelled() {
                    continue;
                }
                if let Err(e) = self.run_one(py, &handle) {
                    // SystemExit or KeyboardInterrupt: the rest stays queued, first in line,
                    // for whoever runs the queue next.
                    let mut ready = self.ready();
                    for (k, rest) in batch.enumerate() {
                        ready.queue.insert(k, rest);
                    }
                    ready.draining = false;
                    return Err(e);
                }
            }
        }
    }

    /// Runs ``fn(*args)`` (a transport's callback) holding the lock, then the callbacks it
    /// queued, with no task of their own; returns what ``fn`` returned.
    #[pyo3(signature = (callback, *args))]
    fn deliver(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        self.lock.acquire(py);
        let drain_pending = std::mem::replace(&mut self.ready().draining, true);
        let result = callback.call1(args);
        let drained = if drain_pending {
            Ok(())
        } else {
            self.run_ready(py)
        };
        self.lock.release(py)?;
        let result = result?;
        drained?;
        Ok(result.unbind())
    }

    /// How many callbacks wait to run.
    fn __len__(&self) -> usize {
        self.ready().queue.len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.start_drain)?;
        visit.call(&self.exception_handler)?;
        visit.call(&self.done)?;
        // Skipping the queue when its mutex is taken only hides references: safe for the GC.
        if let Ok(ready) = self.ready.try_lock() {
            for handle in &ready.queue {
                visit.call(handle)?;
            }
        }
        Ok(())
    }
}
