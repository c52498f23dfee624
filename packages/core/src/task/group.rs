//! The Rust half of `TaskGroup`: children, their errors, and "wait until all are done".
//!
//! The Python `TaskGroup` owns the policy (what `__aexit__` raises); this owns the state that
//! children on other workers touch when they end, so it has to be thread-safe.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors;
use crate::outcome::Outcome;
use crate::py::scope::CancelScope;
use crate::runtime::worker;
use crate::sync::lot::{park_on, TaskQueue};
use crate::sync::waiter::{wake_all, Waiter};
use crate::task::cancel::CancelNode;
use crate::task::{Spawn, Task};

pub struct GroupState {
    node: Arc<CancelNode>,
    /// The task that opened the group: its children's parent.
    pub host: Option<u64>,
    pending: AtomicUsize,
    errors: Mutex<Vec<Py<PyAny>>>,
    idle: Arc<TaskQueue>,
}

impl GroupState {
    /// Called as a child ends. Errors (not cancellations) are kept and cancel the group.
    pub fn child_done(&self, py: Python<'_>, outcome: Outcome) {
        if let Outcome::Error(e) = outcome {
            if !errors::is_cancelled(py, e.bind(py)) {
                self.add_error(py, e);
            }
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            wake_all(self.idle.hand_all(|| Outcome::none(py)));
        }
    }

    fn add_error(&self, py: Python<'_>, e: Py<PyAny>) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
        self.node.cancel(py);
    }
}

#[pyclass(frozen, module = "manyio._core")]
pub struct TaskGroupCore {
    state: Arc<GroupState>,
}

#[pymethods]
impl TaskGroupCore {
    /// `scope` must be entered: children are spawned under it, so cancelling it reaches them.
    #[new]
    fn new(scope: &CancelScope) -> PyResult<Self> {
        let node = scope.node().ok_or_else(|| {
            PyRuntimeError::new_err("the task group's cancel scope is not entered")
        })?;
        Ok(Self {
            state: Arc::new(GroupState {
                node,
                host: worker::current_task_id(),
                pending: AtomicUsize::new(0),
                errors: Mutex::new(Vec::new()),
                idle: Arc::default(),
            }),
        })
    }

    #[pyo3(signature = (coro, name=None, **kwargs))]
    fn spawn(
        &self,
        py: Python<'_>,
        coro: Py<PyAny>,
        name: Option<Py<PyAny>>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Py<Task>> {
        let rt = worker::current_runtime(py, "TaskGroup.start_soon()")?;
        let strand = crate::task::strand::choose(py, kwargs)?;
        self.state.pending.fetch_add(1, Ordering::AcqRel);
        let spec = Spawn {
            strand,
            coro,
            name,
            parent_node: self.state.node.clone(),
            group: Some(self.state.clone()),
            blocker: None,
        };
        Task::spawn(py, &rt, spec).inspect_err(|_| {
            self.state.pending.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Records an error from the host body; cancels the group.
    fn add_error(&self, py: Python<'_>, exc: Py<PyAny>) {
        self.state.add_error(py, exc);
    }

    /// The children's errors, handed over once: the group keeps no reference to them.
    fn take_errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let errs =
            std::mem::take(&mut *self.state.errors.lock().unwrap_or_else(|p| p.into_inner()));
        PyList::new(py, errs)
    }

    fn pending(&self) -> usize {
        self.state.pending.load(Ordering::Acquire)
    }

    /// Waits until no child is running.
    fn wait(&self, py: Python<'_>) -> Waiter {
        if self.pending() == 0 {
            return Waiter::ready(py, None);
        }
        let w = park_on(&self.state.idle);
        if self.pending() == 0 {
            wake_all(self.state.idle.hand_all(|| Outcome::none(py)));
        }
        w
    }
}
