//! `CancelScope`: trio's cancel scopes over the cancel tree.
//!
//! A scope may be created anywhere, configured (deadline, shield, even cancelled) before it is
//! entered, and entered once, by one task. Entering adds a node under the task's current one;
//! exiting removes it and decides whether the `Cancelled` passing through is ours to catch: it
//! is when our cancel was called and no cancellation from outside reaches us (otherwise an
//! outer scope catches it).

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use crate::clock;
use crate::errors;
use crate::runtime::{worker, Shared};
use crate::task::cancel::{CancelNode, DEADLINE_EXCEEDED};
use crate::task::Task;
use crate::time::{TimerAction, TimerKey};

#[derive(Default)]
struct State {
    node: Option<Arc<CancelNode>>,
    task: Option<Py<Task>>,
    rt: Option<Arc<Shared>>,
    timer: Option<TimerKey>,
    entered: bool,
    exited: bool,
    cancel_called: bool,
    reason: Option<String>,
    cancelled_caught: bool,
}

/// A trio-style cancel scope: ``with CancelScope(deadline=..., shield=...) as scope:``.
///
/// Cancelling it (``cancel()`` or the deadline passing) makes every checkpoint inside raise
/// ``Cancelled`` until the block exits; the scope then catches that ``Cancelled`` and sets
/// ``cancelled_caught``. ``shield=True`` keeps cancellations from outside out.
#[pyclass(frozen, module = "manyio")]
pub struct CancelScope {
    state: Mutex<State>,
    deadline: Mutex<f64>,
    shield: Mutex<bool>,
}

impl CancelScope {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scope's node while it is entered.
    pub fn node(&self) -> Option<Arc<CancelNode>> {
        let st = self.lock();
        (st.entered && !st.exited)
            .then(|| st.node.clone())
            .flatten()
    }

    /// (Re)arms the deadline timer for an entered scope.
    fn arm(&self, py: Python<'_>, st: &mut State) {
        let (Some(node), Some(rt)) = (st.node.clone(), st.rt.clone()) else {
            return;
        };
        if let Some(key) = st.timer.take() {
            rt.timers.remove(key);
        }
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        node.set_deadline(deadline);
        if deadline == f64::INFINITY || st.exited {
            return;
        }
        let ns = clock::from_secs(deadline);
        if ns <= clock::now_ns() {
            node.cancel_because(py, Some(DEADLINE_EXCEEDED));
        } else {
            st.timer = Some(rt.add_timer(ns, TimerAction::Cancel(Arc::downgrade(&node))));
        }
    }
}

#[pymethods]
impl CancelScope {
    #[new]
    #[pyo3(signature = (*, deadline=f64::INFINITY, shield=false))]
    fn new(deadline: f64, shield: bool) -> PyResult<Self> {
        if deadline.is_nan() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "deadline must not be NaN",
            ));
        }
        Ok(Self {
            state: Mutex::new(State::default()),
            deadline: Mutex::new(deadline),
            shield: Mutex::new(shield),
        })
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let py = slf.py();
        let task =
            worker::current_task(py).ok_or_else(|| errors::no_runtime("entering a CancelScope"))?;
        let this = slf.get();
        {
            let mut st = this.lock();
            if st.entered {
                return Err(PyRuntimeError::new_err(
                    "a CancelScope can only be entered once",
                ));
            }
            let t = task.get();
            let node = CancelNode::new_child(&t.current_node(), t.key);
            node.set_shield(py, *this.shield.lock().unwrap_or_else(|p| p.into_inner()));
            t.set_current_node(node.clone());
            st.entered = true;
            st.rt = Some(t.rt.clone());
            st.node = Some(node.clone());
            st.task = Some(task.clone_ref(py));
            if st.cancel_called {
                node.cancel_because(py, st.reason.as_deref());
            }
            this.arm(py, &mut st);
        }
        Ok(slf)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let exc = _exc_info.get_item(1).ok().filter(|e| !e.is_none());
        let node = {
            let mut st = self.lock();
            let node = match (&st.node, st.exited) {
                (Some(n), false) => n.clone(),
                _ => {
                    return Err(PyRuntimeError::new_err(
                        "CancelScope exited without being entered",
                    ))
                }
            };
            let task = st
                .task
                .as_ref()
                .expect("entered scopes have a task")
                .clone_ref(py);
            let t = task.get();
            if worker::current_task_id() != Some(t.id) {
                return Err(PyRuntimeError::new_err(
                    "a cancel scope can only be exited by the task that entered it",
                ));
            }
            if !Arc::ptr_eq(&t.current_node(), &node) {
                return Err(PyRuntimeError::new_err(
                    "cancel scopes must be exited in the reverse order they were entered, \
                     in the task that entered them",
                ));
            }
            t.set_current_node(node.parent().expect("scope nodes have a parent").clone());
            node.detach();
            st.exited = true;
            if let (Some(key), Some(rt)) = (st.timer.take(), &st.rt) {
                rt.timers.remove(key);
            }
            st.task = None;
            node
        };
        let Some(exc) = exc else { return Ok(false) };
        if !node.cancel_called() || node.parent_cancel_visible() {
            return Ok(false);
        }
        let cancelled = errors::cancelled_type(py)?;
        if exc.is_instance(cancelled)? {
            self.lock().cancelled_caught = true;
            return Ok(true);
        }
        let group_type = py.import("builtins")?.getattr("BaseExceptionGroup")?;
        if exc.is_instance(&group_type)? {
            let split = exc.call_method1("split", (cancelled,))?;
            let (matched, rest): (Bound<'_, PyAny>, Bound<'_, PyAny>) = split.extract()?;
            if !matched.is_none() {
                self.lock().cancelled_caught = true;
                if rest.is_none() {
                    return Ok(true);
                }
                return Err(PyErr::from_value(rest));
            }
        }
        Ok(false)
    }

    /// Cancels everything inside the scope (now, or as soon as it is entered). `reason`
    /// becomes the message of the `Cancelled` raised inside (the first reason given wins).
    #[pyo3(signature = (reason=None))]
    fn cancel(&self, py: Python<'_>, reason: Option<String>) {
        let node = {
            let mut st = self.lock();
            st.cancel_called = true;
            if st.reason.is_none() {
                st.reason = reason.clone();
            }
            st.node.clone()
        };
        if let Some(node) = node {
            node.cancel_because(py, reason.as_deref());
        }
    }

    #[getter]
    fn cancel_called(&self) -> bool {
        let st = self.lock();
        st.cancel_called || st.node.as_ref().is_some_and(|n| n.cancel_called())
    }

    /// True if this scope caught the `Cancelled` it caused.
    #[getter]
    fn cancelled_caught(&self) -> bool {
        self.lock().cancelled_caught
    }

    #[getter]
    fn get_deadline(&self) -> f64 {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moving the deadline takes effect at once, even while the scope is entered.
    #[setter]
    fn set_deadline(&self, py: Python<'_>, deadline: f64) -> PyResult<()> {
        if deadline.is_nan() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "deadline must not be NaN",
            ));
        }
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
        let mut st = self.lock();
        if st.entered && !st.exited {
            self.arm(py, &mut st);
        }
        Ok(())
    }

    /// `asyncio.Timeout`-style: move the deadline (None removes it).
    #[pyo3(signature = (when))]
    fn reschedule(&self, py: Python<'_>, when: Option<f64>) -> PyResult<()> {
        self.set_deadline(py, when.unwrap_or(f64::INFINITY))
    }

    /// `asyncio.Timeout`-style: the deadline, or None.
    fn when(&self) -> Option<f64> {
        let d = self.get_deadline();
        (d != f64::INFINITY).then_some(d)
    }

    #[getter]
    fn get_shield(&self) -> bool {
        *self.shield.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[setter]
    fn set_shield(&self, py: Python<'_>, shield: bool) {
        *self.shield.lock().unwrap_or_else(|p| p.into_inner()) = shield;
        let node = self.lock().node.clone();
        if let Some(node) = node {
            node.set_shield(py, shield);
        }
    }

    fn __repr__(&self) -> String {
        let st = self.lock();
        let state = match (st.entered, st.exited) {
            (false, _) => "unbound",
            (true, false) => "active",
            (true, true) => "exited",
        };
        format!(
            "<manyio.CancelScope {state}{}{}>",
            if st.cancel_called || st.node.as_ref().is_some_and(|n| n.cancel_called()) {
                ", cancelled"
            } else {
                ""
            },
            if self.get_shield() { ", shielded" } else { "" }
        )
    }

    #[classmethod]
    fn __class_getitem__(cls: &Bound<'_, PyType>, _item: &Bound<'_, PyAny>) -> Py<PyType> {
        cls.clone().unbind()
    }
}

/// Where a task stands in the cancel tree, captured at one point of its code. It answers
/// "would that point be cancelled now?" from any thread: a worker thread started by the task
/// asks it even while the task itself waits under a shield.
#[pyclass(frozen, module = "manyio._core")]
pub struct CancelStatus {
    node: Arc<CancelNode>,
}

impl CancelStatus {
    pub fn node(&self) -> &Arc<CancelNode> {
        &self.node
    }
}

#[pymethods]
impl CancelStatus {
    fn cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    fn effective_deadline(&self) -> f64 {
        self.node.effective_deadline()
    }
}

/// The calling task's current place in the cancel tree (see [`CancelStatus`]).
#[pyfunction]
pub fn current_cancel_status(py: Python<'_>) -> PyResult<CancelStatus> {
    let task = worker::current_task(py)
        .ok_or_else(|| errors::no_runtime("manyio current_cancel_status()"))?;
    Ok(CancelStatus {
        node: task.get().current_node(),
    })
}
