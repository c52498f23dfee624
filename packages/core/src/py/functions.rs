//! Module-level functions of `manyio._core`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use manyio_engine::Completion;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::clock;
use crate::errors;
use crate::runtime::{worker, Runtime};
use crate::sync::waiter::Waiter;
use crate::task::{strand, Spawn, Task};
use crate::time::TimerAction;

/// Starts `coro` as a task on the current runtime and returns it.
///
/// The task runs in the calling task's strand unless ``strand=`` says otherwise (a
/// ``manyio.Strand``, or ``None`` to run free).
#[pyfunction]
#[pyo3(signature = (coro, *, name=None, **kwargs))]
pub fn spawn(
    py: Python<'_>,
    coro: Py<PyAny>,
    name: Option<Py<PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<Task>> {
    let rt = worker::current_runtime(py, "manyio.spawn()")?;
    let parent_node = rt.root.clone();
    Task::spawn(
        py,
        &rt,
        Spawn {
            strand: strand::choose(py, kwargs)?,
            coro,
            name,
            parent_node,
            group: None,
            blocker: None,
        },
    )
}

/// The awaitable behind `checkpoint()`: yields `None` once, which puts the task at the back
/// of the run queue and lets the scheduler deliver a pending cancellation.
#[pyclass(frozen, module = "manyio._core")]
pub struct Checkpoint {
    yielded: AtomicBool,
}

#[pymethods]
impl Checkpoint {
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        (!self.yielded.swap(true, Ordering::AcqRel)).then(|| py.None())
    }
}

/// Raises `Cancelled` if the current task is cancelled; never yields. For operations that
/// must not start once cancelled (and then yield with `cancel_shielded_checkpoint`).
#[pyfunction]
pub fn check_cancelled(py: Python<'_>) -> PyResult<()> {
    let task =
        worker::current_task(py).ok_or_else(|| errors::no_runtime("manyio check_cancelled()"))?;
    match task.get().pending_cancellation(py) {
        Some(cancelled) => Err(cancelled),
        None => Ok(()),
    }
}

/// Lets other tasks run without raising `Cancelled`: for the end of an operation that has
/// already happened (its result must reach the caller; a pending cancellation is raised at
/// the next checkpoint).
#[pyfunction]
pub fn cancel_shielded_checkpoint(py: Python<'_>) -> PyResult<Checkpoint> {
    let task = worker::current_task(py)
        .ok_or_else(|| errors::no_runtime("manyio cancel_shielded_checkpoint()"))?;
    task.get().shield_next_resume();
    Ok(Checkpoint {
        yielded: AtomicBool::new(false),
    })
}

/// Lets other tasks run and raises `Cancelled` if the task is cancelled.
#[pyfunction]
pub fn checkpoint() -> PyResult<Checkpoint> {
    worker::require_worker("manyio.checkpoint()")?;
    Ok(Checkpoint {
        yielded: AtomicBool::new(false),
    })
}

fn sleep_until_ns(py: Python<'_>, deadline_ns: u64, what: &str) -> PyResult<Py<PyAny>> {
    let rt = worker::current_runtime(py, what)?;
    if deadline_ns <= clock::now_ns() {
        return Ok(checkpoint()?.into_pyobject(py)?.into_any().unbind());
    }
    let slot = Arc::new(Completion::new());
    let key = rt.add_timer(deadline_ns, TimerAction::Complete(slot.clone()));
    let weak_rt = Arc::downgrade(&rt);
    let waiter = Waiter::new(
        slot,
        Some(Box::new(move || {
            if let Some(rt) = weak_rt.upgrade() {
                rt.timers.remove(key);
            }
        })),
    );
    Ok(Py::new(py, waiter)?.into_any())
}

/// Sleeps for `seconds` (a checkpoint even for 0).
#[pyfunction]
pub fn sleep(py: Python<'_>, seconds: f64) -> PyResult<Py<PyAny>> {
    if seconds.is_nan() || seconds < 0.0 {
        return Err(PyValueError::new_err(format!(
            "sleep duration must be a non-negative number, got {seconds}"
        )));
    }
    let deadline = clock::now_ns().saturating_add((seconds.min(1e12) * 1e9) as u64);
    sleep_until_ns(py, deadline, "manyio.sleep()")
}

/// Sleeps until `deadline` on the `current_time()` clock.
#[pyfunction]
pub fn sleep_until(py: Python<'_>, deadline: f64) -> PyResult<Py<PyAny>> {
    if deadline.is_nan() {
        return Err(PyValueError::new_err("deadline must not be NaN"));
    }
    sleep_until_ns(py, clock::from_secs(deadline), "manyio.sleep_until()")
}

/// Seconds on a monotonic clock (the same scale as `time.monotonic()`).
#[pyfunction]
pub fn current_time() -> f64 {
    clock::now_secs()
}

/// The task running this code; raises ``RuntimeError`` outside a manyio task.
#[pyfunction]
pub fn current_task(py: Python<'_>) -> PyResult<Py<Task>> {
    worker::current_task(py).ok_or_else(|| errors::no_runtime("manyio.current_task()"))
}

/// True when the caller is a manyio task and not an asyncio task.
///
/// Adapters answer a library's async calls with manyio's primitives only then: an asyncio
/// task (on asyncio's own loop, or on a :mod:`manyio.asyncio` facade loop inside a strand)
/// keeps stock asyncio behaviour, so both kinds of program work in one process.
// Native because adapters ask on nearly every call they intercept (six times per redis
// command): a manyio task with no asyncio loop in its thread costs one call into asyncio.
#[pyfunction]
pub fn on_manyio(py: Python<'_>) -> PyResult<bool> {
    if worker::current_task_id().is_none() {
        return Ok(false);
    }
    static ASYNCIO: pyo3::sync::PyOnceLock<Py<PyModule>> = pyo3::sync::PyOnceLock::new();
    let asyncio = ASYNCIO
        .get_or_try_init(py, || py.import("asyncio").map(Bound::unbind))?
        .bind(py);
    // Looked up on each call, not cached: tests and facades may patch these functions.
    let running = asyncio
        .getattr(pyo3::intern!(py, "_get_running_loop"))?
        .call0()?;
    if running.is_none() {
        return Ok(true);
    }
    let task = asyncio
        .getattr(pyo3::intern!(py, "current_task"))?
        .call1((running,))?;
    Ok(task.is_none())
}

/// Every task of the current runtime that has not finished, oldest first.
#[pyfunction]
pub fn all_tasks(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let rt = worker::current_runtime(py, "manyio.all_tasks()")?;
    PyList::new(py, rt.registry.all(py))
}

/// The deadline in force at this point of the current task (-inf if cancelled, inf if none).
#[pyfunction]
pub fn current_effective_deadline(py: Python<'_>) -> PyResult<f64> {
    let task = current_task(py)?;
    Ok(task.get().current_node().effective_deadline())
}

/// A handle on the runtime running the calling task.
#[pyfunction]
pub fn current_runtime(py: Python<'_>) -> PyResult<Runtime> {
    Ok(Runtime::handle(worker::current_runtime(
        py,
        "manyio.current_runtime()",
    )?))
}

/// A handle on the runtime that started the calling `to_thread` worker thread.
#[pyfunction]
pub fn from_thread_runtime() -> PyResult<Runtime> {
    match worker::blocking_runtime() {
        Some(rt) => Ok(Runtime::handle(rt)),
        None if worker::worker_runtime().is_some() => Err(PyRuntimeError::new_err(
            "manyio.from_thread functions must not be called from a manyio task; \
             just await the coroutine",
        )),
        None => Err(PyRuntimeError::new_err(
            "manyio.from_thread functions can only be called from threads started by \
             manyio.to_thread",
        )),
    }
}

/// Runs `func()` on the main thread (which must be inside `manyio.run`) and returns its result.
/// Blocks the calling worker until then (a few milliseconds).
#[pyfunction]
pub fn call_on_main_thread(py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
    let rt = worker::current_runtime(py, "manyio call_on_main_thread()")?;
    rt.main_thread.call(py, func)
}

/// Runs the zero-argument callable `func` on the blocking pool; the waiter gets its result.
#[pyfunction]
pub fn to_thread_raw(py: Python<'_>, func: Py<PyAny>) -> PyResult<Waiter> {
    let rt = worker::current_runtime(py, "manyio.to_thread()")?;
    let slot = Arc::new(Completion::new());
    rt.blocking
        .submit(func, slot.clone())
        .map_err(|e| PyRuntimeError::new_err(format!("could not start a worker thread: {e}")))?;
    Ok(Waiter::new(slot, None))
}
