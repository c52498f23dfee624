//! Strands: serial domains. At most one task of a strand runs at any instant (on any worker);
//! the strand's runnable tasks wait in its own FIFO, not in a run queue, so a strand never
//! holds a worker idle. Steps of one strand are ordered by the strand's mutex, which gives
//! code written for a single-threaded event loop the happens-before it silently relies on.
//!
//! Scheduling a task of a busy strand parks it in the strand's queue; the end of the running
//! task's step hands the strand to the next queued task (or marks it idle).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::task::Task;

#[derive(Default)]
struct State {
    busy: bool,
    queue: VecDeque<Py<Task>>,
}

#[derive(Default)]
pub struct StrandCore {
    state: Mutex<State>,
    pub steps: AtomicU64,
    /// The asyncio loop facade of this strand, if one was attached: its tasks' steps see it
    /// as the running loop (`asyncio.get_running_loop()`).
    event_loop: Mutex<Option<Py<PyAny>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StrandCore {
    /// Takes the strand for `task`, or queues the task behind the one that holds it.
    /// Returns the task back when the caller should put it in a run queue.
    pub fn admit(&self, task: Py<Task>) -> Option<Py<Task>> {
        let mut st = lock(&self.state);
        if st.busy {
            st.queue.push_back(task);
            None
        } else {
            st.busy = true;
            Some(task)
        }
    }

    /// The running step ended: hands the strand to the next queued task, if any.
    pub fn release(&self) -> Option<Py<Task>> {
        self.steps.fetch_add(1, Ordering::Relaxed);
        let mut st = lock(&self.state);
        let next = st.queue.pop_front();
        if next.is_none() {
            st.busy = false;
        }
        next
    }

    pub fn queued(&self) -> usize {
        lock(&self.state).queue.len()
    }

    pub fn event_loop(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.event_loop).as_ref().map(|l| l.clone_ref(py))
    }
}

/// The strand a spawn should use: `strand=` if given (None: run free), else the strand of
/// the calling task, so tasks spawned from a strand stay in it.
pub fn choose(
    py: Python<'_>,
    kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<Option<Arc<StrandCore>>> {
    if let Some(kw) = kwargs {
        for key in kw.keys() {
            let key: String = key.extract()?;
            if key != "strand" {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "spawn() got an unexpected keyword argument {key:?}"
                )));
            }
        }
        if let Some(s) = kw.get_item("strand")? {
            if s.is_none() {
                return Ok(None);
            }
            // A manyio.Strand wraps the core object in `_core`.
            let inner = if s.is_instance_of::<Strand>() {
                s
            } else {
                s.getattr("_core").unwrap_or(s)
            };
            let strand = inner.cast::<Strand>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err("strand must be a manyio.Strand or None")
            })?;
            return Ok(Some(strand.get().core.clone()));
        }
    }
    Ok(crate::runtime::worker::current_task(py).and_then(|t| t.get().strand.clone()))
}

/// A strand as Python sees it (`manyio.Strand` wraps this).
#[pyclass(frozen, module = "manyio._core")]
pub struct Strand {
    pub core: Arc<StrandCore>,
}

#[pymethods]
impl Strand {
    #[new]
    fn new() -> Self {
        Self {
            core: Arc::default(),
        }
    }

    /// Runnable tasks waiting for the strand.
    fn queued(&self) -> usize {
        self.core.queued()
    }

    /// Steps run in this strand so far.
    fn steps(&self) -> u64 {
        self.core.steps.load(Ordering::Relaxed)
    }

    /// The asyncio event loop the strand's tasks see as running (None: none).
    fn get_event_loop(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.core.event_loop(py)
    }

    /// Attaches (or, with None, detaches) the strand's asyncio event loop.
    fn set_event_loop(&self, event_loop: Option<Py<PyAny>>) {
        *lock(&self.core.event_loop) = event_loop;
    }
}
