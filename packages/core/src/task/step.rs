//! Running one step of a task: decide how to resume it, resume it, and act on what it yields.
//!
//! How a task is resumed is decided here and nowhere else:
//! - parked on a waiter that completed → resume it (the waiter returns the value);
//! - parked, not complete, task cancelled → abort the wait; if that wins, throw `Cancelled`;
//! - parked, not complete, not cancelled → a spurious wake-up (a cancel poke that a shield
//!   blocked): park again without touching the coroutine;
//! - not parked (new, or after a checkpoint) → throw `Cancelled` if cancelled, else send None.
//!
//! The same decision is taken right after a task parks, so a wait that starts inside an
//! already-cancelled scope raises immediately.

use std::sync::atomic::Ordering;

use manyio_engine::{Registered, RunEnd};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::context;
use super::stepped::Stepped;
use super::{lock, Task};
use crate::outcome::Outcome;
use crate::runtime::worker;
use crate::sync::foreign;
use crate::sync::waiter::Waiter;

enum Resume {
    Send,
    Throw(Py<PyAny>),
    ParkAgain,
}

impl Task {
    /// Runs the task until it parks, checkpoints or ends. Called by a worker that dequeued it.
    pub fn run(task: Py<Task>, py: Python<'_>) {
        let t = task.get();
        t.state.start_step();
        let _strand = StrandTurn(t);
        let _current = worker::enter_task(py, &task);
        let _loop = RunningLoop::enter(py, t);
        let mut resume = t.decide(py);
        loop {
            let stepped = match resume {
                Resume::ParkAgain => {
                    t.park_end(task.clone_ref(py));
                    return;
                }
                Resume::Send => t.send(py),
                Resume::Throw(exc) => t.throw(py, exc),
            };
            match stepped {
                Stepped::Returned(v) => return t.finish(py, Outcome::Value(v)),
                Stepped::Raised(e) => {
                    return t.finish(py, Outcome::Error(e.into_value(py).into_any()))
                }
                Stepped::Yielded(obj) => {
                    let obj = obj.into_bound(py);
                    if obj.is_none() {
                        // A checkpoint: back of the queue, so others get a turn.
                        if t.state.end_step() == RunEnd::Parked && !t.state.wake() {
                            return;
                        }
                        t.rt.schedule_yielded(task.clone_ref(py));
                        return;
                    }
                    let waiter = match obj.cast_into::<Waiter>() {
                        Ok(waiter) => waiter,
                        Err(e) => {
                            let obj = e.into_inner();
                            match foreign::future_waiter(py, &obj) {
                                Ok(Some(waiter)) => waiter,
                                Ok(None) => {
                                    resume = Resume::Throw(bad_yield(py, &obj));
                                    continue;
                                }
                                Err(err) => {
                                    resume = Resume::Throw(err.into_value(py).into_any());
                                    continue;
                                }
                            }
                        }
                    };
                    let ready = waiter.get().slot.register(task.clone_ref(py)) == Registered::Ready;
                    *lock(&t.waiting) = Some(waiter.unbind());
                    // Level-triggered: parking inside a cancelled scope raises at once, not at
                    // the next wake-up (which might never come).
                    if ready || t.is_cancelled() {
                        resume = t.decide(py);
                        continue;
                    }
                    t.park_end(task.clone_ref(py));
                    return;
                }
            }
        }
    }

    fn park_end(&self, task: Py<Task>) {
        if self.state.end_step() == RunEnd::Reschedule {
            self.rt.schedule(task);
        }
    }

    fn decide(&self, py: Python<'_>) -> Resume {
        let waiting = lock(&self.waiting).take();
        match waiting {
            Some(w) => {
                let waiter = w.get();
                if waiter.slot.is_aborted() {
                    // A cancellation aborted the wait while the task was parked.
                    self.cancelled_exc(py)
                } else if !waiter.slot.is_pending() {
                    if waiter.born_ready && self.is_cancelled() {
                        self.cancelled_exc(py)
                    } else {
                        Resume::Send
                    }
                } else if self.is_cancelled() && waiter.abort() {
                    self.cancelled_exc(py)
                } else if !waiter.slot.is_pending() {
                    // The value won the race with the abort.
                    Resume::Send
                } else {
                    *lock(&self.waiting) = Some(w);
                    Resume::ParkAgain
                }
            }
            // A new task always runs to its first checkpoint (as in trio), so its code, and
            // the try/finally it opens, runs even if it was cancelled before it started.
            None if self.started.swap(true, Ordering::Relaxed)
                && !self.shielded_resume.swap(false, Ordering::Relaxed)
                && self.is_cancelled() =>
            {
                self.cancelled_exc(py)
            }
            None => Resume::Send,
        }
    }

    fn cancelled_exc(&self, py: Python<'_>) -> Resume {
        Resume::Throw(self.cancelled_error(py).into_value(py).into_any())
    }

    fn send(&self, py: Python<'_>) -> Stepped {
        let coro = match lock(&self.coro).as_ref() {
            Some(c) => c.clone_ref(py),
            None => return Stepped::Raised(PyTypeError::new_err("task has no coroutine")),
        };
        context::run_in(py, &self.context, || Stepped::send(py, &coro, &py.None()))
            .unwrap_or_else(Stepped::Raised)
    }

    fn throw(&self, py: Python<'_>, exc: Py<PyAny>) -> Stepped {
        let coro = match lock(&self.coro).as_ref() {
            Some(c) => c.clone_ref(py),
            None => return Stepped::Raised(PyErr::from_value(exc.into_bound(py))),
        };
        let ctx = self.context.bind(py);
        let result = coro
            .bind(py)
            .getattr("throw")
            .and_then(|throw| ctx.call_method1("run", (throw, exc)));
        Stepped::of_throw(py, result)
    }
}

/// Ends the task's turn in its strand when the step ends, however it ends.
struct StrandTurn<'a>(&'a Task);

impl Drop for StrandTurn<'_> {
    fn drop(&mut self) {
        if let Some(strand) = &self.0.strand {
            if let Some(next) = strand.release() {
                self.0.rt.enqueue(next);
            }
        }
    }
}

/// While a strand task with an asyncio loop facade steps, that loop is the thread's running
/// loop, so asyncio code in the task finds it (workers change from step to step). What was
/// running before is put back when the step ends.
struct RunningLoop<'py> {
    restore: Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>,
}

static LOOP_ACCESSORS: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

impl<'py> RunningLoop<'py> {
    fn enter(py: Python<'py>, task: &Task) -> Self {
        let Some(event_loop) = task.strand.as_ref().and_then(|s| s.event_loop(py)) else {
            return Self { restore: None };
        };
        match Self::swap(py, event_loop.into_bound(py)) {
            Ok(restore) => Self {
                restore: Some(restore),
            },
            Err(e) => {
                e.write_unraisable(py, None);
                Self { restore: None }
            }
        }
    }

    /// Sets the running loop; returns the setter and the loop that was running.
    fn swap(
        py: Python<'py>,
        event_loop: Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (get, set) = LOOP_ACCESSORS.get_or_try_init(py, || -> PyResult<_> {
            let events = py.import("asyncio.events")?;
            Ok((
                events.getattr("_get_running_loop")?.unbind(),
                events.getattr("_set_running_loop")?.unbind(),
            ))
        })?;
        let previous = get.bind(py).call0()?;
        let set = set.bind(py).clone();
        set.call1((event_loop,))?;
        Ok((set, previous))
    }
}

impl Drop for RunningLoop<'_> {
    fn drop(&mut self) {
        if let Some((set, previous)) = self.restore.take() {
            if let Err(e) = set.call1((previous,)) {
                e.write_unraisable(set.py(), None);
            }
        }
    }
}

/// The exception thrown into a coroutine that yielded something the scheduler cannot wait on.
fn bad_yield(py: Python<'_>, obj: &Bound<'_, PyAny>) -> Py<PyAny> {
    let what = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable object>".into());
    PyTypeError::new_err(format!(
        "manyio tasks can only await manyio awaitables and asyncio futures, but the coroutine \
         yielded {what}"
    ))
    .into_value(py)
    .into_any()
}
