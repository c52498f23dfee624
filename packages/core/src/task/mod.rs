//! Tasks: a coroutine, its context, its place in the cancel tree, and how it ended.
pub mod cancel;
mod claims;
pub mod context;
pub mod group;
mod step;
pub mod stepped;
pub mod strand;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use manyio_engine::TaskState;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors;
use crate::outcome::Outcome;
use crate::runtime::registry::RegKey;
use crate::runtime::Shared;
use crate::sync::lot::{park_on, TaskQueue};
use crate::sync::waiter::{wake_all, Waiter};
use cancel::CancelNode;
use group::GroupState;
use strand::StrandCore;

/// Lets a foreign thread block until a task ends (`Runtime.block_on`, `from_thread.run`).
#[derive(Default)]
pub struct Blocker {
    done: Mutex<bool>,
    cvar: Condvar,
}

impl Blocker {
    fn release(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cvar.notify_all();
    }

    /// Waits up to `timeout`; true once the task has ended.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = self
            .cvar
            .wait_timeout_while(done, timeout, |d| !*d)
            .unwrap_or_else(|p| p.into_inner());
        *done
    }
}

/// How a task was created; everything but the coroutine is optional.
pub struct Spawn {
    pub coro: Py<PyAny>,
    /// The strand to run in; `None` runs free. Spawners pass the current task's strand
    /// unless asked otherwise.
    pub strand: Option<Arc<StrandCore>>,
    pub name: Option<Py<PyAny>>,
    pub parent_node: Arc<CancelNode>,
    pub group: Option<Arc<GroupState>>,
    pub blocker: Option<Arc<Blocker>>,
}

/// A coroutine running on a manyio runtime (see ``manyio.spawn``). Await it for its result;
/// ``cancel()`` cancels it at its next checkpoint.
#[pyclass(frozen, weakref, module = "manyio")]
pub struct Task {
    pub id: u64,
    /// Where the registry keeps us; cancel nodes name their owner by it.
    pub key: RegKey,
    pub state: TaskState,
    pub rt: Arc<Shared>,
    coro: Mutex<Option<Py<PyAny>>>,
    context: Py<PyAny>,
    name: Mutex<Option<Py<PyAny>>>,
    /// The waiter the task is parked on, if any.
    waiting: Mutex<Option<Py<Waiter>>>,
    pub root: Arc<CancelNode>,
    /// The innermost cancel scope the task is in (its root when in none).
    pub current: Mutex<Arc<CancelNode>>,
    outcome: OnceLock<Outcome>,
    /// Tasks awaiting this one; allocated by the first of them.
    joiners: OnceLock<Arc<TaskQueue>>,
    group: Option<Arc<GroupState>>,
    parent: Option<u64>,
    /// Someone looked at the outcome (awaited, result(), a group): no need to report it.
    retrieved: AtomicBool,
    blocker: Option<Arc<Blocker>>,
    pub strand: Option<Arc<StrandCore>>,
    /// Set by the first step.
    started: AtomicBool,
    /// Set by `cancel_shielded_checkpoint` for the resume that follows.
    shielded_resume: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Task {
    /// Creates a task and schedules it.
    pub fn spawn(py: Python<'_>, rt: &Arc<Shared>, spec: Spawn) -> PyResult<Py<Task>> {
        if rt.is_closed() {
            // Close the coroutine so Python does not warn it was never awaited.
            let _ = spec.coro.call_method0(py, "close");
            return Err(PyRuntimeError::new_err("this manyio runtime is closed"));
        }
        let coro = as_coroutine(py, spec.coro)?;
        let claim = coro.as_ptr() as usize;
        if !claims::claim(claim) {
            return Err(PyRuntimeError::new_err(
                "this coroutine already belongs to a running task; \
                 create a new coroutine object for each task",
            ));
        }
        let coro = ClaimedCoro {
            coro: Some(coro),
            addr: claim,
        };
        // SAFETY: PyContext_CopyCurrent returns a new reference or NULL with an exception set.
        let context = unsafe {
            Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_CopyCurrent())?.unbind()
        };
        let coro = coro.keep();
        let id = rt.next_task_id();
        let key = rt
            .registry
            .reserve(crate::runtime::worker::worker_index(rt));
        let root = CancelNode::new_child(&spec.parent_node, key);
        // A group's children belong to the task that opened the group (as in trio), whoever
        // spawned them.
        let parent = match &spec.group {
            Some(group) if group.host.is_some() => group.host,
            _ => crate::runtime::worker::current_task_id(),
        };
        let task = Py::new(
            py,
            Task {
                id,
                key,
                state: TaskState::new_scheduled(),
                rt: rt.clone(),
                coro: Mutex::new(Some(coro)),
                context,
                name: Mutex::new(spec.name),
                waiting: Mutex::new(None),
                current: Mutex::new(root.clone()),
                root,
                outcome: OnceLock::new(),
                joiners: OnceLock::new(),
                retrieved: AtomicBool::new(spec.group.is_some()),
                group: spec.group,
                parent,
                blocker: spec.blocker,
                strand: spec.strand,
                started: AtomicBool::new(false),
                shielded_resume: AtomicBool::new(false),
            },
        )?;
        rt.registry.fill(key, task.clone_ref(py));
        rt.schedule(task.clone_ref(py));
        Ok(task)
    }

    /// Wakes a task whose cancel scopes were cancelled. If it is parked and the cancellation
    /// reaches it, its wait is aborted now, as in trio: whatever completes the waiter later
    /// (a lock handing itself over, say) sees the task gone and moves on to the next one.
    pub fn wake_cancelled(py: Python<'_>, task: Py<Task>) {
        let t = task.get();
        if t.is_cancelled() {
            let waiting = lock(&t.waiting).as_ref().map(|w| w.clone_ref(py));
            if let Some(waiter) = waiting {
                waiter.get().abort();
            }
        }
        Task::wake(task);
    }

    /// Asks the scheduler to run the task (after a wait completed, or to re-check cancellation).
    pub fn wake(task: Py<Task>) {
        let t = task.get();
        if t.state.wake() {
            let rt = t.rt.clone();
            rt.schedule(task);
        }
    }

    /// The next resume after a bare yield delivers no cancellation (see
    /// `cancel_shielded_checkpoint`).
    pub fn shield_next_resume(&self) {
        self.shielded_resume.store(true, Ordering::Relaxed);
    }

    /// The `Cancelled` to raise in this task if it is inside a cancelled scope now.
    pub fn pending_cancellation(&self, py: Python<'_>) -> Option<PyErr> {
        self.is_cancelled().then(|| self.cancelled_error(py))
    }

    /// A `Cancelled` carrying the reason of the scope that cancelled the task (or the error
    /// that creating it raised).
    pub fn cancelled_error(&self, py: Python<'_>) -> PyErr {
        match errors::new_cancelled(py, self.current_node().cancel_reason()) {
            Ok(e) => PyErr::from_value(e),
            Err(e) => e,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        lock(&self.current).is_cancelled()
    }

    pub fn current_node(&self) -> Arc<CancelNode> {
        lock(&self.current).clone()
    }

    pub fn set_current_node(&self, node: Arc<CancelNode>) {
        *lock(&self.current) = node;
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.get()
    }

    /// Records how the task ended and tells everyone who waits for it.
    fn finish(&self, py: Python<'_>, outcome: Outcome) {
        self.state.finish();
        if let Some(coro) = lock(&self.coro).take() {
            claims::release(coro.as_ptr() as usize);
        }
        lock(&self.waiting).take();
        self.root.detach();
        let for_group = self.group.as_ref().map(|_| outcome.clone_ref(py));
        let _ = self.outcome.set(outcome);
        // Leave the registry before anyone is told: whoever awaited us must not still see us
        // in all_tasks(). The caller holds a reference, so this does not free us.
        self.rt.registry.remove(self.key);
        let out = self.outcome.get().expect("just set");
        // Only awaiters still waiting count as retrieving the outcome: one that gave up
        // (cancelled) removed itself, and then the handler must still hear of an error.
        let wakers = match self.joiners.get() {
            Some(j) if !j.is_empty() => {
                self.retrieved.store(true, Ordering::Release);
                j.hand_all(|| out.clone_ref(py))
            }
            _ => Vec::new(),
        };
        wake_all(wakers);
        if let (Some(group), Some(o)) = (&self.group, for_group) {
            group.child_done(py, o);
        }
        if let Some(b) = &self.blocker {
            b.release();
        }
    }

    fn is_cancelled_outcome(&self, py: Python<'_>) -> bool {
        matches!(self.outcome.get(), Some(Outcome::Error(e)) if errors::is_cancelled(py, e.bind(py)))
    }

    fn display_name(&self, py: Python<'_>) -> String {
        match &*lock(&self.name) {
            Some(n) => n.bind(py).str().map(|s| s.to_string()).unwrap_or_default(),
            None => format!("Task-{}", self.id),
        }
    }
}

#[pymethods]
impl Task {
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    #[getter]
    fn get_name(&self, py: Python<'_>) -> String {
        self.display_name(py)
    }

    #[setter]
    fn set_name(&self, name: Py<PyAny>) {
        *lock(&self.name) = Some(name);
    }

    /// The id of the task that spawned this one (None for a root task).
    #[getter]
    fn parent_id(&self) -> Option<u64> {
        self.parent
    }

    /// The coroutine, while the task runs.
    fn get_coro(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.coro).as_ref().map(|c| c.clone_ref(py))
    }

    /// Cancels the task: from now on every checkpoint in it raises `Cancelled` (except inside
    /// shielded scopes), until it ends. Takes effect at its next checkpoint.
    fn cancel(&self, py: Python<'_>) {
        self.root.cancel(py);
    }

    fn cancel_called(&self) -> bool {
        self.root.cancel_called()
    }

    fn done(&self) -> bool {
        self.outcome.get().is_some()
    }

    /// True if the task would be cancelled at its next checkpoint (a cancelled, unshielded
    /// scope encloses where it is now). Safe to ask from any thread.
    fn cancellation_pending(&self) -> bool {
        !self.done() && self.is_cancelled()
    }

    /// True while the task waits for a wake-up: it is neither queued nor running.
    fn blocked(&self) -> bool {
        self.state.is_parked()
    }

    /// True if the task ended by raising `Cancelled`.
    fn cancelled(&self, py: Python<'_>) -> bool {
        self.is_cancelled_outcome(py)
    }

    /// The task's return value; raises its exception, or `InvalidStateError` while it runs.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.outcome.get() {
            None => Err(invalid_state(py, "the task has not finished")),
            Some(o) => {
                self.retrieved.store(true, Ordering::Release);
                o.clone_ref(py).into_result(py)
            }
        }
    }

    /// The exception the task raised, or None.
    fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.outcome.get() {
            None => Err(invalid_state(py, "the task has not finished")),
            Some(Outcome::Value(_)) => Ok(None),
            Some(Outcome::Error(e)) => {
                self.retrieved.store(true, Ordering::Release);
                Ok(Some(e.clone_ref(py)))
            }
        }
    }

    /// `await task` waits for it to end and returns its result (or raises its exception).
    fn __await__(&self, py: Python<'_>) -> Waiter {
        match self.outcome.get() {
            Some(o) => {
                self.retrieved.store(true, Ordering::Release);
                Waiter::finished(o.clone_ref(py))
            }
            None => {
                let joiners = self.joiners.get_or_init(Arc::default);
                let w = park_on(joiners);
                // The task may have ended between the check and the push.
                if let Some(o) = self.outcome.get() {
                    self.retrieved.store(true, Ordering::Release);
                    wake_all(joiners.hand_all(|| o.clone_ref(py)));
                }
                w
            }
        }
    }

    #[classmethod]
    fn __class_getitem__(
        cls: &Bound<'_, pyo3::types::PyType>,
        _item: &Bound<'_, PyAny>,
    ) -> Py<pyo3::types::PyType> {
        cls.clone().unbind()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = match self.outcome.get() {
            None => "running".to_string(),
            Some(Outcome::Value(_)) => "done".to_string(),
            Some(Outcome::Error(_)) if self.is_cancelled_outcome(py) => "cancelled".to_string(),
            Some(Outcome::Error(_)) => "failed".to_string(),
        };
        format!(
            "<manyio.Task {} id={} {}>",
            self.display_name(py),
            self.id,
            state
        )
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // An exception nobody looked at must not vanish: hand it to the runtime's handler.
        if self.retrieved.load(Ordering::Acquire) {
            return;
        }
        if let Some(Outcome::Error(e)) = self.outcome.get() {
            Python::attach(|py| {
                if !errors::is_cancelled(py, e.bind(py)) {
                    self.rt
                        .report_unretrieved(py, e.bind(py), &self.display_name(py));
                }
            });
        }
    }
}

/// A claimed coroutine; released again if spawning fails before the task owns it.
struct ClaimedCoro {
    coro: Option<Py<PyAny>>,
    addr: usize,
}

impl ClaimedCoro {
    /// The task now owns the claim; `finish` releases it.
    fn keep(mut self) -> Py<PyAny> {
        self.coro.take().expect("kept once")
    }
}

impl Drop for ClaimedCoro {
    fn drop(&mut self) {
        if self.coro.is_some() {
            claims::release(self.addr);
        }
    }
}

/// Native coroutines are stepped directly; any other awaitable (a manyio waiter, a
/// generator-based coroutine, an object with `__await__`) runs inside a small coroutine that
/// awaits it, so that throwing `Cancelled` into it always works.
fn as_coroutine(py: Python<'_>, obj: Py<PyAny>) -> PyResult<Py<PyAny>> {
    // SAFETY: obj is a live object.
    if unsafe { pyo3::ffi::PyCoro_CheckExact(obj.as_ptr()) } != 0 {
        return Ok(obj);
    }
    let b = obj.bind(py);
    if !b.hasattr("__await__")? {
        let type_name = b.get_type().name()?;
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a coroutine or another awaitable, got {type_name} object {}",
            b.repr()?
        )));
    }
    static WRAP: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let wrap = WRAP.import(py, "manyio._run", "_await")?;
    Ok(wrap.call1((b,))?.unbind())
}

fn invalid_state(py: Python<'_>, msg: &str) -> PyErr {
    match py
        .import("asyncio")
        .and_then(|m| m.getattr("InvalidStateError"))
    {
        Ok(cls) => PyErr::from_type(cls.cast_into().expect("a type"), msg.to_string()),
        Err(e) => e,
    }
}
