//! Calls that must run on the main thread (installing signal handlers), made from tasks.
//!
//! The main thread is usually blocked in `block_on` (inside `manyio.run`), waking every few
//! milliseconds to let Python run signal handlers. It also drains this queue then. A worker
//! that queues a call blocks (detached) until the main thread has run it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

type Reply = Arc<(Mutex<Option<PyResult<Py<PyAny>>>>, Condvar)>;

#[derive(Default)]
pub struct MainThreadQueue {
    calls: Mutex<Vec<(Py<PyAny>, Reply)>>,
    /// Main threads currently blocked in `block_on` (0 or 1).
    present: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MainThreadQueue {
    pub fn enter(&self) {
        self.present.fetch_add(1, Ordering::AcqRel);
    }

    /// The main thread leaves `block_on`: run what is queued, so nobody waits forever.
    pub fn leave(&self, py: Python<'_>) {
        self.present.fetch_sub(1, Ordering::AcqRel);
        self.drain(py);
    }

    pub fn drain(&self, py: Python<'_>) {
        let calls = std::mem::take(&mut *lock(&self.calls));
        for (func, reply) in calls {
            let result = func.call0(py);
            *lock(&reply.0) = Some(result);
            reply.1.notify_all();
        }
    }

    /// Runs `func()` on the main thread and returns its result.
    pub fn call(&self, py: Python<'_>, func: Py<PyAny>) -> PyResult<Py<PyAny>> {
        if self.present.load(Ordering::Acquire) == 0 {
            return Err(PyRuntimeError::new_err(
                "this needs the main thread, which is not running this runtime: call it from \
                 a program started with manyio.run() (or Runtime.block_on()) on the main thread",
            ));
        }
        let reply: Reply = Arc::default();
        lock(&self.calls).push((func, reply.clone()));
        loop {
            let r = reply.clone();
            let done = py.detach(move || {
                let guard = lock(&r.0);
                let (guard, _) =
                    r.1.wait_timeout_while(guard, Duration::from_millis(100), |v| v.is_none())
                        .unwrap_or_else(|p| p.into_inner());
                guard.is_some()
            });
            if done {
                return lock(&reply.0).take().expect("checked");
            }
            if self.present.load(Ordering::Acquire) == 0 {
                // The main thread left between our check and its last drain.
                self.drain(py);
            }
        }
    }
}
