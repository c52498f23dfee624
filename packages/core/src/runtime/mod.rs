//! The runtime: worker threads, their queues and parking, the driver, the blocking pool.
pub mod blocking;
pub mod driver;
pub mod main_thread;
pub mod registry;
mod shared;
pub mod worker;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub use shared::{live_runtimes, Shared};

use crate::py::scope::CancelStatus;
use crate::task::strand::StrandCore;
use crate::task::{Blocker, Spawn, Task};

/// How often a thread blocked on the runtime wakes to let Python handle signals (Ctrl-C) and,
/// on the main thread, to run calls queued for it.
const SIGNAL_CHECK: Duration = Duration::from_millis(20);

/// A set of worker threads running tasks. `manyio.run()` makes one for you.
#[pyclass(frozen, module = "manyio._core")]
pub struct Runtime {
    shared: Arc<Shared>,
    /// Empty for handles (`current_runtime()`): only the owner joins and closes.
    threads: Mutex<Vec<JoinHandle<()>>>,
    owner: bool,
}

impl Runtime {
    pub fn handle(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            threads: Mutex::new(Vec::new()),
            owner: false,
        }
    }

    fn check_not_own_worker(&self, what: &str) -> PyResult<()> {
        if worker::worker_runtime().is_some_and(|rt| Arc::ptr_eq(&rt, &self.shared)) {
            return Err(PyRuntimeError::new_err(format!(
                "Runtime.{what}() was called from one of this runtime's own tasks; \
                 await the coroutine instead"
            )));
        }
        Ok(())
    }

    /// Spawns `coro` and blocks this (non-worker) thread until it ends.
    pub fn run_blocking(
        &self,
        py: Python<'_>,
        coro: Py<PyAny>,
        strand: Option<Arc<StrandCore>>,
    ) -> PyResult<Py<PyAny>> {
        let on_main = is_main_thread(py)?;
        if on_main {
            self.shared.main_thread.enter();
        }
        let result = self.run_blocking_inner(py, coro, strand, on_main);
        if on_main {
            self.shared.main_thread.leave(py);
        }
        result
    }

    fn run_blocking_inner(
        &self,
        py: Python<'_>,
        coro: Py<PyAny>,
        strand: Option<Arc<StrandCore>>,
        on_main: bool,
    ) -> PyResult<Py<PyAny>> {
        let blocker = Arc::new(Blocker::default());
        let task = Task::spawn(
            py,
            &self.shared,
            Spawn {
                strand,
                coro,
                name: None,
                parent_node: self.shared.root.clone(),
                group: None,
                blocker: Some(blocker.clone()),
            },
        )?;
        let mut interrupt: Option<PyErr> = None;
        loop {
            let b = blocker.clone();
            if py.detach(move || b.wait(SIGNAL_CHECK)) {
                break;
            }
            if on_main {
                self.shared.main_thread.drain(py);
            }
            if interrupt.is_none() {
                if let Err(e) = py.check_signals() {
                    // Ctrl-C: cancel the task, let its finally blocks run, then re-raise.
                    task.get().root.cancel(py);
                    interrupt = Some(e);
                }
            }
        }
        if let Some(e) = interrupt {
            return Err(e);
        }
        task.bind(py).call_method0("result").map(Bound::unbind)
    }
}

/// Whether this is Python's main thread, asked of `_thread`'s C functions: no Python bytecode
/// runs, so a pending Ctrl-C cannot fire inside this check and be lost. It stays pending for
/// the caller's `check_signals`.
fn is_main_thread(py: Python<'_>) -> PyResult<bool> {
    let thread = py.import(pyo3::intern!(py, "_thread"))?;
    let main = thread.call_method0(pyo3::intern!(py, "_get_main_thread_ident"))?;
    let me = thread.call_method0(pyo3::intern!(py, "get_ident"))?;
    main.eq(me)
}

/// An owner nobody closed (Ctrl-C between creating the core runtime and registering its
/// finalizer) is closed when it is dropped: its workers must not outlive it, nor try to
/// attach to an interpreter that is shutting down.
impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.owner || self.shared.is_closed() {
            return;
        }
        Python::attach(|py| {
            // Dropped while an exception unwinds (that Ctrl-C): closing calls into Python,
            // which must not see or clear it.
            let unwinding = PyErr::take(py);
            if let Err(e) = self.close(py) {
                // Dropped on one of its own workers: it cannot wait for itself.
                e.write_unraisable(py, None);
                self.shared.mark_closed();
                self.shared.begin_shutdown();
            }
            if let Some(e) = unwinding {
                e.restore(py);
            }
        });
    }
}

#[pymethods]
impl Runtime {
    #[new]
    #[pyo3(signature = (threads=None, exception_handler=None))]
    fn new(
        py: Python<'_>,
        threads: Option<usize>,
        exception_handler: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let threads = match threads {
            Some(0) => return Err(PyValueError::new_err("threads must be at least 1")),
            Some(n) if n > 1024 => {
                return Err(PyValueError::new_err("threads must be at most 1024"))
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let (shared, locals) = Shared::new(threads, exception_handler)
            .map_err(|e| PyRuntimeError::new_err(format!("could not create the poller: {e}")))?;
        let mut handles = Vec::with_capacity(threads);
        for (index, local) in locals.into_iter().enumerate() {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("manyio-worker-{index}"))
                .spawn(move || Python::attach(|py| worker::run(py, s, index, local)));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.begin_shutdown();
                    py.detach(|| handles.into_iter().for_each(|h| drop(h.join())));
                    return Err(PyRuntimeError::new_err(format!(
                        "could not start worker thread: {e}"
                    )));
                }
            }
        }
        Ok(Self {
            shared,
            threads: Mutex::new(handles),
            owner: true,
        })
    }

    #[getter]
    fn threads(&self) -> usize {
        self.shared.threads()
    }

    /// A dict shared by every task of this runtime, for libraries layered on manyio.
    #[getter]
    fn locals(&self, py: Python<'_>) -> Py<PyDict> {
        self.shared.locals.clone_ref(py)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Starts `coro` as a new task. Callable from any thread. `within` (a `CancelStatus`)
    /// puts the task inside those cancel scopes: cancelling them cancels it too.
    #[pyo3(signature = (coro, *, name=None, within=None, **kwargs))]
    fn spawn(
        &self,
        py: Python<'_>,
        coro: Py<PyAny>,
        name: Option<Py<PyAny>>,
        within: Option<PyRef<'_, CancelStatus>>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Py<Task>> {
        let parent_node = match within {
            Some(status) => status.node().clone(),
            None => self.shared.root.clone(),
        };
        Task::spawn(
            py,
            &self.shared,
            Spawn {
                strand: crate::task::strand::choose(py, kwargs)?,
                coro,
                name,
                parent_node,
                group: None,
                blocker: None,
            },
        )
    }

    /// Runs `coro` to completion and returns its result, blocking the calling thread (which
    /// must not be one of this runtime's workers). `strand=` runs it (and, by default, the
    /// tasks it spawns) in that strand.
    #[pyo3(signature = (coro, **kwargs))]
    fn block_on(
        &self,
        py: Python<'_>,
        coro: Py<PyAny>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        self.check_not_own_worker("block_on")?;
        let strand = crate::task::strand::choose(py, kwargs)?;
        self.run_blocking(py, coro, strand)
    }

    /// Cancels every task still running, waits for them to finish (their `finally` blocks
    /// run), then stops the workers. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if !self.owner {
            return Err(PyRuntimeError::new_err(
                "only the code that created a Runtime can close it",
            ));
        }
        self.check_not_own_worker("close")?;
        // Cancelled tasks may still need the main thread (restoring signal handlers in their
        // finally blocks): keep serving it while they finish.
        let on_main = is_main_thread(py)?;
        if on_main {
            self.shared.main_thread.enter();
        }
        self.shared.root.cancel(py);
        let registry_empty = |py: Python<'_>| {
            let s = self.shared.clone();
            py.detach(move || s.registry.wait_empty(SIGNAL_CHECK))
        };
        while !registry_empty(py) {
            if on_main {
                self.shared.main_thread.drain(py);
            }
        }
        if on_main {
            self.shared.main_thread.leave(py);
        }
        self.shared.mark_closed();
        self.shared.begin_shutdown();
        // Joined under the lock: a concurrent second close() returns only once they are gone.
        let threads = &self.threads;
        py.detach(|| {
            let mut handles = threads.lock().unwrap_or_else(|p| p.into_inner());
            handles.drain(..).for_each(|h| drop(h.join()));
        });
        Ok(())
    }

    /// Counters: workers, queue depths, steals, parks, live tasks, timers.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.shared.stats_dict(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "<manyio.Runtime threads={} live_tasks={}{}>",
            self.shared.threads(),
            self.shared.registry.len(),
            if self.shared.is_closed() {
                " closed"
            } else {
                ""
            }
        )
    }
}
