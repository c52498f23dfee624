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
//!
//! When the owner is preempted (a busy machine: the workers share their cores with the
//! servers they talk to), the first waiter parks and the convoy forms all the same. So a lock
//! made with `fair=False` (the asyncio shim's: asyncio code relies on no order of waiters)
//! lets newcomers barge, as parking_lot's and Go's mutexes do: `release()` leaves it free and
//! wakes the first waiter to try again, and whoever runs first takes it. A woken waiter that
//! finds it taken queues again in the place its first queuing gave it (oldest first), and once
//! the oldest has waited `STARVING` the lock is handed to it as a fair lock would.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
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

/// How long a waiter of a barging lock may be overtaken before the lock is handed to it.
const STARVING: Duration = Duration::from_millis(1);

/// A parked acquirer: the slot to complete, its task, and when it first queued.
type Queued = (Arc<WaitSlot>, Py<Task>, Instant);

#[derive(Default)]
struct State {
    owner: Option<Py<Task>>,
    /// Parked acquirers, oldest first.
    waiters: VecDeque<Queued>,
    /// `fair=False`: newcomers may take the lock while others wait.
    barging: bool,
}

impl State {
    /// Whether `task` may take the lock now: it is free and nobody waits (or it barges).
    fn free_for_newcomer(&self) -> bool {
        self.owner.is_none() && (self.barging || self.waiters.is_empty())
    }
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

/// A mutual-exclusion lock for tasks, owned by the task that acquired it: FIFO by default,
/// barging with eventual fairness with ``fair=False``.
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
    #[pyo3(signature = (*, fair = true))]
    fn new(fair: bool) -> Self {
        let state = State {
            barging: !fair,
            ..State::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
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
        if !state.free_for_newcomer() {
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

    /// Releases the lock, handing it to the longest waiting task (a barging lock: leaving it
    /// free and waking that task to try again, unless it has waited `STARVING`).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let task = caller(py, "Lock.release()")?;
        let mut state = lock(&self.state);
        if !owned_by(&state, &task) {
            return Err(PyRuntimeError::new_err("the lock is not held by this task"));
        }
        state.owner = None;
        while let Some((slot, next, since)) = state.waiters.pop_front() {
            let hand_off = !state.barging || since.elapsed() >= STARVING;
            state.owner = hand_off.then_some(next);
            if complete_slot(py, &slot, None) {
                return Ok(());
            }
            state.owner = None;
        }
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
    /// When this acquirer first queued: a barging lock hands itself to it after `STARVING`.
    queued_at: OnceLock<Instant>,
}

impl Acquire {
    fn new(state: &Arc<Mutex<State>>) -> Self {
        Self {
            state: Arc::downgrade(state),
            step: AtomicU8::new(START),
            queued_at: OnceLock::new(),
        }
    }

    /// Skips the checkpoint: the first resume takes the lock or parks.
    fn unchecked(state: &Arc<Mutex<State>>) -> Self {
        Self {
            state: Arc::downgrade(state),
            step: AtomicU8::new(CHECKED),
            queued_at: OnceLock::new(),
        }
    }

    /// Already finished: what `__aexit__` returns.
    fn done() -> Self {
        Self {
            state: Weak::new(),
            step: AtomicU8::new(DONE),
            queued_at: OnceLock::new(),
        }
    }

    /// Takes the lock now, or queues the task and returns the waiter to park on.
    ///
    /// `woken`: this acquirer parked before and was woken, either as the new owner (a hand-off)
    /// or, by a barging lock, to try again; then it takes a free lock whoever else waits, and
    /// queues again in the place its first queuing gave it if the lock is taken.
    fn take_or_park(&self, py: Python<'_>, mut woken: bool) -> PyResult<Option<Waiter>> {
        let task = caller(py, "Lock.acquire()")?;
        let Some(shared) = self.state.upgrade() else {
            if woken {
                return Ok(None); // handed a lock nobody else can reach any more
            }
            return Err(PyRuntimeError::new_err("the lock was garbage-collected"));
        };
        loop {
            let mut state = lock(&shared);
            if owned_by(&state, &task) {
                if woken {
                    return Ok(None);
                }
                return Err(PyRuntimeError::new_err("this task already holds the lock"));
            }
            let free = if woken {
                state.owner.is_none()
            } else {
                state.free_for_newcomer()
            };
            if free {
                state.owner = Some(task);
                return Ok(None);
            }
            let since = *self.queued_at.get_or_init(Instant::now);
            let slot: Arc<WaitSlot> = Arc::new(Completion::new());
            // Oldest first: a woken waiter goes back before everyone who queued after it.
            let at = state
                .waiters
                .iter()
                .position(|(_, _, queued)| *queued > since)
                .unwrap_or(state.waiters.len());
            state
                .waiters
                .insert(at, (slot.clone(), task.clone_ref(py), since));
            let first = Arc::ptr_eq(&state.waiters[0].0, &slot);
            let running_owner = match &state.owner {
                Some(owner) if first && owner.get().state.is_running() => Some(owner.clone_ref(py)),
                _ => None,
            };
            drop(state);
            if let Some(owner) = running_owner {
                if spin_for_handoff(&slot, &owner) {
                    // Handed the lock, or (barging) told to try again: either way, look.
                    slot.take();
                    woken = true;
                    continue;
                }
            }
            let weak = Arc::downgrade(&shared);
            let mine = Arc::downgrade(&slot);
            return Ok(Some(Waiter::queued(
                slot,
                Some(Box::new(move || {
                    if let (Some(shared), Some(mine)) = (weak.upgrade(), mine.upgrade()) {
                        lock(&shared)
                            .waiters
                            .retain(|(s, _, _)| !Arc::ptr_eq(s, &mine));
                    }
                })),
            )));
        }
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
            // PARKED: resumed without an exception, as the owner or (barging) to try again.
            step @ (CHECKED | PARKED) => match self.take_or_park(py, step == PARKED)? {
                None => {
                    self.step.store(DONE, Ordering::Release);
                    Ok(None)
                }
                Some(waiter) => {
                    self.step.store(PARKED, Ordering::Release);
                    Ok(Some(Py::new(py, waiter)?.into_any()))
                }
            },
            _ => Ok(None),
        }
    }
}
