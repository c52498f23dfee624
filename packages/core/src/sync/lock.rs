//! `Lock`: the fair task lock behind `manyio.Lock`.
//!
//! FIFO and owned: `release()` hands the lock straight to the longest waiting task, so
//! nobody barges in; if that task was cancelled meanwhile its slot refuses the hand-off and
//! the next one gets it. The state sits under one short mutex and `acquire()` is an awaitable
//! object rather than a coroutine, so an uncontended `async with lock:` costs one checkpoint
//! and no Python frame (it took a `threading.Lock`, a deque and two coroutines before).
//!
//! Hand-off has a price on several workers: the lock belongs to the next waiter from the
//! moment it is released, but that waiter first has to be scheduled and reach the front of a
//! run queue, and every task arriving meanwhile parks behind it (a lock convoy: a section of
//! a few microseconds held for a whole scheduling round). So the first waiter, when the owner
//! is running on another thread, spins briefly in its place in the queue before parking: a
//! short section ends while it spins and the hand-off reaches a task that is running.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use manyio_engine::Completion;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors;
use crate::runtime::worker;
use crate::sync::waiter::{complete_slot, WaitSlot, Waiter};
use crate::task::Task;

/// How long the first waiter spins while the owner runs elsewhere: several times a section
/// that only touches memory, far shorter than a park and a wake-up through the run queue.
const SPIN: Duration = Duration::from_micros(20);

#[derive(Default)]
struct State {
    owner: Option<Py<Task>>,
    /// Parked acquirers, oldest first: the slot to complete and the task it makes the owner.
    waiters: VecDeque<(Arc<WaitSlot>, Py<Task>)>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn caller(py: Python<'_>, what: &str) -> PyResult<Py<Task>> {
    worker::current_task(py).ok_or_else(|| errors::no_runtime(what))
}

fn owned_by(state: &State, task: &Py<Task>) -> bool {
    state.owner.as_ref().is_some_and(|o| o.is(task))
}

fn would_block(py: Python<'_>) -> PyErr {
    let exc = py
        .import("manyio._exceptions")
        .and_then(|m| m.getattr("WouldBlock"))
        .and_then(|cls| cls.call0());
    match exc {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

/// A fair mutual-exclusion lock for tasks: FIFO, owned by the task that acquired it.
///
/// The owner is held strongly and is not visited by the garbage collector: a task drops its
/// coroutine when it finishes, so a lock held by a finished task cannot keep a cycle alive.
#[pyclass(frozen, subclass, module = "manyio._core")]
#[derive(Default)]
pub struct Lock {
    state: Arc<Mutex<State>>,
}

#[pymethods]
impl Lock {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// True while a task holds the lock.
    fn locked(&self) -> bool {
        lock(&self.state).owner.is_some()
    }

    /// The task holding the lock, or None.
    #[getter(_owner)]
    fn owner(&self, py: Python<'_>) -> Option<Py<Task>> {
        lock(&self.state).owner.as_ref().map(|t| t.clone_ref(py))
    }

    /// Takes the lock or raises :class:`WouldBlock`.
    fn acquire_nowait(&self, py: Python<'_>) -> PyResult<()> {
        let task = caller(py, "Lock.acquire_nowait()")?;
        let mut state = lock(&self.state);
        if owned_by(&state, &task) {
            return Err(PyRuntimeError::new_err("this task already holds the lock"));
        }
        if state.owner.is_some() || !state.waiters.is_empty() {
            drop(state);
            return Err(would_block(py));
        }
        state.owner = Some(task);
        Ok(())
    }

    /// ``await lock.acquire()`` waits for the lock and takes it (a checkpoint); a task cannot
    /// take a lock it holds.
    fn acquire(&self) -> PyResult<Acquire> {
        worker::require_worker("Lock.acquire()")?;
        Ok(Acquire::new(&self.state))
    }

    /// ``await lock.acquire_unchecked()`` takes a free lock without a checkpoint, as
    /// asyncio's ``Lock.acquire`` does; a taken lock is waited for as by ``acquire()``.
    /// Code written for asyncio takes locks in ``finally`` blocks of cancelled tasks and
    /// relies on that (the asyncio shim uses it); manyio code should use ``acquire()``.
    fn acquire_unchecked(&self) -> Acquire {
        Acquire::unchecked(&self.state)
    }

    /// Releases the lock, handing it to the longest waiting task.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let task = caller(py, "Lock.release()")?;
        let mut state = lock(&self.state);
        if !owned_by(&state, &task) {
            return Err(PyRuntimeError::new_err("the lock is not held by this task"));
        }
        while let Some((slot, next)) = state.waiters.pop_front() {
            state.owner = Some(next);
            if complete_slot(py, &slot, None) {
                return Ok(());
            }
        }
        state.owner = None;
        Ok(())
    }

    /// ``locked``, ``owner`` (the holding task) and ``tasks_waiting``.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = lock(&self.state);
        let d = PyDict::new(py);
        d.set_item("locked", state.owner.is_some())?;
        d.set_item("owner", state.owner.as_ref().map(|t| t.clone_ref(py)))?;
        d.set_item("tasks_waiting", state.waiters.len())?;
        Ok(d)
    }

    fn __aenter__(&self) -> PyResult<Acquire> {
        self.acquire()
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__(
        &self,
        py: Python<'_>,
        _exc_info: &Bound<'_, pyo3::types::PyTuple>,
    ) -> PyResult<Acquire> {
        self.release(py)?;
        Ok(Acquire::done())
    }

    fn __repr__(&self) -> String {
        let state = lock(&self.state);
        let what = if state.owner.is_some() {
            "locked"
        } else {
            "unlocked"
        };
        format!("<manyio.Lock {what} waiters={}>", state.waiters.len())
    }
}

const START: u8 = 0;
const CHECKED: u8 = 1;
const PARKED: u8 = 2;
const DONE: u8 = 3;

/// `await lock.acquire()`: a checkpoint, then the lock, parking FIFO if it is taken.
///
/// A cancellation at the checkpoint or while parked is raised in the awaiting coroutine (this
/// object has no `throw`), with the lock untaken: a parked waiter is dequeued by its abort
/// hook, and a hand-off that races the abort is refused by the slot and goes to the next one.
#[pyclass(frozen, module = "manyio._core")]
pub struct Acquire {
    state: Weak<Mutex<State>>,
    step: AtomicU8,
}

impl Acquire {
    fn new(state: &Arc<Mutex<State>>) -> Self {
        Self {
            state: Arc::downgrade(state),
            step: AtomicU8::new(START),
        }
    }

    /// Skips the checkpoint: the first resume takes the lock or parks.
    fn unchecked(state: &Arc<Mutex<State>>) -> Self {
        Self {
            state: Arc::downgrade(state),
            step: AtomicU8::new(CHECKED),
        }
    }

    /// Already finished: what `__aexit__` returns.
    fn done() -> Self {
        Self {
            state: Weak::new(),
            step: AtomicU8::new(DONE),
        }
    }

    /// Takes the lock now, or queues the task and returns the waiter to park on.
    fn take_or_park(&self, py: Python<'_>) -> PyResult<Option<Waiter>> {
        let task = caller(py, "Lock.acquire()")?;
        let Some(shared) = self.state.upgrade() else {
            return Err(PyRuntimeError::new_err("the lock was garbage-collected"));
        };
        let mut state = lock(&shared);
        if owned_by(&state, &task) {
            return Err(PyRuntimeError::new_err("this task already holds the lock"));
        }
        if state.owner.is_none() && state.waiters.is_empty() {
            state.owner = Some(task);
            return Ok(None);
        }
        let slot: Arc<WaitSlot> = Arc::new(Completion::new());
        state.waiters.push_back((slot.clone(), task));
        let running_owner = match &state.owner {
            Some(owner) if state.waiters.len() == 1 && owner.get().state.is_running() => {
                Some(owner.clone_ref(py))
            }
            _ => None,
        };
        drop(state);
        if let Some(owner) = running_owner {
            if spin_for_handoff(&slot, &owner) {
                slot.take();
                return Ok(None);
            }
        }
        let weak = Arc::downgrade(&shared);
        let mine = Arc::downgrade(&slot);
        Ok(Some(Waiter::new(
            slot,
            Some(Box::new(move || {
                if let (Some(shared), Some(mine)) = (weak.upgrade(), mine.upgrade()) {
                    lock(&shared)
                        .waiters
                        .retain(|(s, _)| !Arc::ptr_eq(s, &mine));
                }
            })),
        )))
    }
}

/// Waits, without parking, for `slot` (the first in the queue) to receive the lock while
/// `owner` is still running on another thread. True if it did.
fn spin_for_handoff(slot: &WaitSlot, owner: &Py<Task>) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
        if !slot.is_pending() {
            return true;
        }
        if !owner.get().state.is_running() || start.elapsed() > SPIN {
            return false;
        }
    }
}

#[pymethods]
impl Acquire {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.step.load(Ordering::Acquire) {
            START => {
                self.step.store(CHECKED, Ordering::Release);
                Ok(Some(py.None()))
            }
            CHECKED => match self.take_or_park(py)? {
                None => {
                    self.step.store(DONE, Ordering::Release);
                    Ok(None)
                }
                Some(waiter) => {
                    self.step.store(PARKED, Ordering::Release);
                    Ok(Some(Py::new(py, waiter)?.into_any()))
                }
            },
            PARKED => {
                // Resumed without an exception: the releaser made us the owner.
                self.step.store(DONE, Ordering::Release);
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}
