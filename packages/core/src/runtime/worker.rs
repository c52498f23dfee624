//! A worker thread: run tasks from the local queue, steal when it is empty, sleep when there
//! is nothing anywhere. Also the thread-locals that tell Python-facing code which runtime and
//! which task it is running in.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_deque::Worker;
use pyo3::prelude::*;

use crate::errors;
use crate::runtime::Shared;
use crate::task::Task;

/// How often a busy worker looks at the global queue and the timers.
const MAINTENANCE_INTERVAL: u32 = 61;

struct WorkerCtx {
    shared: Arc<Shared>,
    index: usize,
    local: Worker<Py<Task>>,
}

thread_local! {
    static WORKER: RefCell<Option<WorkerCtx>> = const { RefCell::new(None) };
    static CURRENT: RefCell<Option<Py<Task>>> = const { RefCell::new(None) };
    /// Set on blocking-pool threads: the runtime `from_thread` calls go back to.
    static BLOCKING_RT: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

pub fn run(py: Python<'_>, shared: Arc<Shared>, index: usize, local: Worker<Py<Task>>) {
    WORKER.with(|w| {
        *w.borrow_mut() = Some(WorkerCtx {
            shared: shared.clone(),
            index,
            local,
        })
    });
    announce_to_sniffio(py);
    install_asyncgen_hooks(py);
    let mut tick: u32 = 0;
    while !shared.is_shutdown() {
        tick = tick.wrapping_add(1);
        let mut next = None;
        if tick % MAINTENANCE_INTERVAL == 0 {
            shared.maintenance(py);
            next = shared.pop_global();
        }
        let next = next.or_else(|| {
            WORKER.with(|w| {
                let w = w.borrow();
                let ctx = w.as_ref().expect("worker context");
                ctx.local.pop().or_else(|| shared.steal(index, &ctx.local))
            })
        });
        match next {
            Some(task) => {
                shared.stats[index].polls.fetch_add(1, Ordering::Relaxed);
                Task::run(task, py);
            }
            None => {
                shared.maintenance(py);
                shared.park(py, index);
            }
        }
    }
    WORKER.with(|w| w.borrow_mut().take());
}

/// Libraries that support several event loops (AnyIO, httpcore) ask sniffio which one runs
/// the current thread. A worker thread only ever runs manyio tasks, so it answers "manyio";
/// blocking-pool threads and the caller of `block_on` keep their own answer.
fn announce_to_sniffio(py: Python<'_>) {
    if let Ok(sniffio) = py.import("sniffio") {
        if let Ok(local) = sniffio.getattr("thread_local") {
            let _ = local.setattr("name", "manyio");
        }
    }
}

/// Abandoned async generators first iterated on this worker are closed in a task of their
/// own, so that their `finally` blocks may await (see `manyio/_asyncgens.py`).
fn install_asyncgen_hooks(py: Python<'_>) {
    let installed = py
        .import("manyio._asyncgens")
        .and_then(|m| m.call_method0("install"));
    if let Err(e) = installed {
        e.write_unraisable(py, None);
    }
}

/// Pushes onto the calling worker's local queue if it belongs to `shared`; else hands it back.
pub fn push_local(shared: &Arc<Shared>, task: Py<Task>) -> Result<(), Py<Task>> {
    WORKER.with(|w| match w.try_borrow() {
        Ok(w) => match &*w {
            Some(ctx) if Arc::ptr_eq(&ctx.shared, shared) => {
                ctx.local.push(task);
                Ok(())
            }
            _ => Err(task),
        },
        Err(_) => Err(task),
    })
}

/// The runtime of the calling worker thread, or a clear error naming `what` was misused.
pub fn current_runtime(_py: Python<'_>, what: &str) -> PyResult<Arc<Shared>> {
    worker_runtime().ok_or_else(|| errors::no_runtime(what))
}

/// Cheap "are we on a worker?" check for hot paths that need no runtime handle.
pub fn require_worker(what: &str) -> PyResult<()> {
    if WORKER.with(|w| w.borrow().is_some()) {
        Ok(())
    } else {
        Err(errors::no_runtime(what))
    }
}

/// The calling worker's index if it belongs to `shared` (its registry shard), else usize::MAX.
pub fn worker_index(shared: &Arc<Shared>) -> usize {
    WORKER.with(|w| match &*w.borrow() {
        Some(ctx) if Arc::ptr_eq(&ctx.shared, shared) => ctx.index,
        _ => usize::MAX,
    })
}

pub fn worker_runtime() -> Option<Arc<Shared>> {
    WORKER.with(|w| w.borrow().as_ref().map(|ctx| ctx.shared.clone()))
}

pub fn blocking_runtime() -> Option<Arc<Shared>> {
    BLOCKING_RT.with(|b| b.borrow().clone())
}

pub fn set_blocking_runtime(rt: Option<Arc<Shared>>) {
    BLOCKING_RT.with(|b| *b.borrow_mut() = rt);
}

pub fn current_task(py: Python<'_>) -> Option<Py<Task>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|t| t.clone_ref(py)))
}

pub fn current_task_id() -> Option<u64> {
    CURRENT.with(|c| c.borrow().as_ref().map(|t| t.get().id))
}

/// Marks `task` as the one running on this thread until the guard drops.
pub fn enter_task(py: Python<'_>, task: &Py<Task>) -> CurrentGuard {
    let prev = CURRENT.with(|c| c.borrow_mut().replace(task.clone_ref(py)));
    CurrentGuard(prev)
}

pub struct CurrentGuard(Option<Py<Task>>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}
