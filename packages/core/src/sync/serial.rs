//! `SerialLock` and `Serialized`: running code written for one asyncio loop (a protocol that
//! keeps its state without locks) from tasks on every worker, one step at a time.
//!
//! A `SerialLock` is a reentrant lock of threads, held for one step: a callback, or one
//! `send`/`throw` of a coroutine, never across an await. Short callbacks take it with `with`,
//! blocking their thread (detached from the interpreter, so a collection can still stop the
//! world). A task that wants it for a step of a coroutine (`Serialized`) parks instead, and
//! its worker runs other tasks meanwhile: every release wakes one parked task, which takes
//! the lock or parks again. Both were Python before; each step of a query crossed them a
//! dozen times, and their frames cost more than the steps' own bookkeeping.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use manyio_engine::Completion;
use pyo3::exceptions::{PyBaseException, PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{PyTraverseError, PyVisit};

use crate::sync::waiter::{complete_slot, WaitSlot, Waiter};
use crate::task::stepped::Stepped;

thread_local! {
    static TOKEN: Cell<u8> = const { Cell::new(0) };
}

/// A number unique to the calling thread while it lives (the address of a thread-local).
fn this_thread() -> usize {
    TOKEN.with(|t| t as *const Cell<u8> as usize)
}

#[derive(Default)]
struct State {
    /// The owning thread's token; 0 when free.
    owner: usize,
    depth: u32,
    /// Threads blocked in `acquire`.
    blocked: u32,
    /// Tasks parked until a release, oldest first.
    parked: VecDeque<Arc<WaitSlot>>,
}

impl State {
    /// Takes the lock for `me` if it is free or already `me`'s (one level deeper).
    fn take(&mut self, me: usize) -> bool {
        if self.owner != 0 && self.owner != me {
            return false;
        }
        self.owner = me;
        self.depth += 1;
        true
    }
}

/// A `SerialLock`'s state, shared with what waits for it.
#[derive(Default)]
pub(crate) struct LockState {
    state: Mutex<State>,
    freed: Condvar,
}

impl LockState {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_acquire(&self) -> bool {
        self.state().take(this_thread())
    }

    pub(crate) fn acquire(&self, py: Python<'_>) {
        if self.try_acquire() {
            return;
        }
        py.detach(|| {
            let me = this_thread();
            let mut s = self.state();
            s.blocked += 1;
            while s.owner != 0 {
                s = self.freed.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.blocked -= 1;
            s.owner = me;
            s.depth = 1;
        });
    }

    pub(crate) fn release(&self, py: Python<'_>) -> PyResult<()> {
        let mut s = self.state();
        if s.owner != this_thread() {
            return Err(PyRuntimeError::new_err(
                "cannot release a SerialLock this thread does not hold",
            ));
        }
        s.depth -= 1;
        if s.depth > 0 {
            return Ok(());
        }
        s.owner = 0;
        if s.blocked > 0 {
            self.freed.notify_one();
        }
        drop(s);
        self.wake_one(py);
        Ok(())
    }

    /// Wakes the longest parked task. It may find the lock taken again (by a thread or a
    /// task that came first) and park again: that holder's release then wakes it.
    fn wake_one(&self, py: Python<'_>) {
        loop {
            let Some(slot) = self.state().parked.pop_front() else {
                return;
            };
            if complete_slot(py, &slot, None) {
                return;
            }
        }
    }

    /// Takes the lock now (None), or parks the caller until a release: the slot that
    /// release completes. The slot is only made when needed: most steps find the lock free.
    fn take_or_park(&self) -> Option<Arc<WaitSlot>> {
        let mut s = self.state();
        if s.take(this_thread()) {
            return None;
        }
        let slot: Arc<WaitSlot> = Arc::new(Completion::new());
        s.parked.push_back(slot.clone());
        Some(slot)
    }

    /// Forgets a parked slot; false if a release already took it off the list.
    fn unpark(&self, slot: &Arc<WaitSlot>) -> bool {
        let mut s = self.state();
        let before = s.parked.len();
        s.parked.retain(|p| !Arc::ptr_eq(p, slot));
        s.parked.len() != before
    }
}

/// A reentrant lock of threads whose waiters may also be tasks (through :class:`Serialized`).
#[pyclass(frozen, module = "manyio._core")]
#[derive(Default)]
pub struct SerialLock {
    shared: Arc<LockState>,
}

impl SerialLock {
    pub(crate) fn state(&self) -> &Arc<LockState> {
        &self.shared
    }
}

#[pymethods]
impl SerialLock {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Takes the lock if it is free or already this thread's; never waits.
    fn try_acquire(&self) -> bool {
        self.shared.try_acquire()
    }

    /// Takes the lock, blocking this thread while another holds it.
    fn acquire(&self, py: Python<'_>) {
        self.shared.acquire(py)
    }

    /// Releases one level; the last one wakes a blocked thread and a parked task.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.shared.release(py)
    }

    /// True while some thread holds the lock.
    fn locked(&self) -> bool {
        self.shared.state().owner != 0
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf.get().shared.acquire(slf.py());
        slf
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.shared.release(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let s = self.shared.state();
        let what = if s.owner != 0 { "locked" } else { "unlocked" };
        format!("<manyio.SerialLock {what} tasks_parked={}>", s.parked.len())
    }
}

enum Input {
    Send(Py<PyAny>),
    Throw(Py<PyAny>),
}

/// While parked for the lock: what the coroutine is to receive once the lock is taken, and
/// the slot a release completes.
struct Parked {
    input: Input,
    slot: Arc<WaitSlot>,
}

/// ``await Serialized(coro, lock, on_error)`` awaits ``coro`` holding ``lock`` for each of
/// its steps. When the lock is taken the task parks (its worker stays free); a cancellation
/// that arrives meanwhile is thrown into ``coro`` once the lock is taken. When ``coro``
/// raises, ``on_error()`` runs still holding the lock (an asyncio loop runs the callbacks the
/// failure queued before the caller sees it).
#[pyclass(frozen, module = "manyio._core")]
pub struct Serialized {
    coro: Py<PyAny>,
    lock: Arc<LockState>,
    on_error: Option<Py<PyAny>>,
    parked: Mutex<Option<Parked>>,
    /// Set by the first step.
    started: AtomicBool,
}

impl Serialized {
    fn parked(&self) -> MutexGuard<'_, Option<Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn resume(&self, py: Python<'_>, input: Input) -> PyResult<Option<Py<PyAny>>> {
        let previous = self.parked().take();
        let input = match (previous, input) {
            // Cancelled while parked (the scheduler aborted the slot, which unparked it):
            // the coroutine hears it, holding the lock like every other step. Unless it has
            // not started: asyncio code calls it synchronously, so nothing cancels it before
            // its first await (asyncpg's pool releases connections so from cancelled tasks).
            // Cancellation is level-triggered, so that first await raises.
            (Some(p), Input::Throw(exc)) => {
                self.lock.unpark(&p.slot);
                self.lock.acquire(py);
                if self.started.load(Ordering::Relaxed) {
                    Input::Throw(exc)
                } else {
                    p.input
                }
            }
            // Woken by a release: try again with what the coroutine was waiting for.
            (Some(p), Input::Send(_)) => match self.take_or_park(py, p.input)? {
                Ok(input) => input,
                Err(waiter) => return Ok(Some(waiter)),
            },
            (None, input) => match self.take_or_park(py, input)? {
                Ok(input) => input,
                Err(waiter) => return Ok(Some(waiter)),
            },
        };
        let stepped = self.step(py, input);
        if let Stepped::Raised(_) = stepped {
            if let Some(on_error) = &self.on_error {
                if let Err(e) = on_error.call0(py) {
                    let _ = self.lock.release(py);
                    return Err(e);
                }
            }
        }
        self.lock.release(py)?;
        match stepped {
            Stepped::Yielded(v) => Ok(Some(v)),
            Stepped::Returned(v) => Err(PyStopIteration::new_err((v,))),
            Stepped::Raised(e) => Err(e),
        }
    }

    /// Takes the lock (giving back `input`), or parks on it (giving back the waiter to yield).
    fn take_or_park(&self, py: Python<'_>, input: Input) -> PyResult<Result<Input, Py<PyAny>>> {
        let Some(slot) = self.lock.take_or_park() else {
            return Ok(Ok(input));
        };
        let lock = Arc::downgrade(&self.lock);
        let mine = Arc::downgrade(&slot);
        let waiter = Waiter::new(
            slot.clone(),
            Some(Box::new(move || {
                if let (Some(lock), Some(mine)) = (lock.upgrade(), mine.upgrade()) {
                    lock.unpark(&mine);
                }
            })),
        );
        *self.parked() = Some(Parked { input, slot });
        Ok(Err(Py::new(py, waiter)?.into_any()))
    }

    fn step(&self, py: Python<'_>, input: Input) -> Stepped {
        self.started.store(true, Ordering::Relaxed);
        match input {
            Input::Send(value) => Stepped::send(py, &self.coro, &value),
            Input::Throw(exc) => {
                Stepped::of_throw(py, self.coro.bind(py).call_method1("throw", (exc,)))
            }
        }
    }
}

#[pymethods]
impl Serialized {
    #[new]
    #[pyo3(signature = (coro, lock, on_error=None))]
    fn new(coro: Py<PyAny>, lock: &SerialLock, on_error: Option<Py<PyAny>>) -> Self {
        Self {
            coro,
            lock: lock.shared.clone(),
            on_error,
            parked: Mutex::new(None),
            started: AtomicBool::new(false),
        }
    }

    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.resume(py, Input::Send(py.None()))
    }

    fn send(&self, py: Python<'_>, value: Py<PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.resume(py, Input::Send(value))
    }

    /// ``throw(exc)``, or the old ``throw(type, value)`` form.
    #[pyo3(signature = (typ, val=None, _tb=None))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: Bound<'_, PyAny>,
        val: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let exc = if typ.is_instance_of::<PyBaseException>() {
            typ
        } else {
            match val {
                Some(v) if v.is_instance_of::<PyBaseException>() => v,
                Some(v) if !v.is_none() => typ.call1((v,))?,
                _ => typ.call0()?,
            }
        };
        self.resume(py, Input::Throw(exc.unbind()))
    }

    /// Closes the coroutine; a parked wait is given up first, passing on a wake-up it got.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(p) = self.parked().take() {
            if !self.lock.unpark(&p.slot) {
                self.lock.wake_one(py);
            }
        }
        self.coro.bind(py).call_method0("close")?;
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.coro)?;
        if let Some(on_error) = &self.on_error {
            visit.call(on_error)?;
        }
        Ok(())
    }
}
