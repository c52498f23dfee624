//! The blocking pool behind `to_thread`: threads start on demand and exit after sitting idle
//! for a while, so a burst of blocking calls does not leave threads behind.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;

use crate::outcome::Outcome;
use crate::runtime::{worker, Shared};
use crate::sync::waiter::{complete_slot, WaitSlot};

const IDLE_TTL: Duration = Duration::from_secs(10);

struct Job {
    func: Py<PyAny>,
    slot: Arc<WaitSlot>,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<Job>>,
    cvar: Condvar,
    idle: AtomicUsize,
    threads: AtomicUsize,
    shutdown: AtomicBool,
}

pub struct BlockingPool {
    inner: Arc<Inner>,
    rt: Weak<Shared>,
}

impl BlockingPool {
    pub fn new(rt: Weak<Shared>) -> Self {
        Self {
            inner: Arc::default(),
            rt,
        }
    }

    pub fn threads(&self) -> usize {
        self.inner.threads.load(Ordering::Relaxed)
    }

    /// Runs `func()` on a pool thread and completes `slot` with its result.
    pub fn submit(&self, func: Py<PyAny>, slot: Arc<WaitSlot>) -> std::io::Result<()> {
        let mut queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.push_back(Job { func, slot });
        if self.inner.idle.load(Ordering::Acquire) > queue.len() - 1 {
            drop(queue);
            self.inner.cvar.notify_one();
            return Ok(());
        }
        drop(queue);
        self.inner.threads.fetch_add(1, Ordering::AcqRel);
        let inner = self.inner.clone();
        let rt = self.rt.clone();
        std::thread::Builder::new()
            .name("manyio-blocking".into())
            .spawn(move || Python::attach(|py| pool_thread(py, &inner, rt)))
            .map(drop)
            .inspect_err(|_| {
                self.inner.threads.fetch_sub(1, Ordering::AcqRel);
            })
    }

    pub fn shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::Release);
        self.inner.cvar.notify_all();
    }
}

fn pool_thread(py: Python<'_>, inner: &Inner, rt: Weak<Shared>) {
    worker::set_blocking_runtime(rt.upgrade());
    while let Some(job) = py.detach(|| next_job(inner)) {
        let result = job.func.call0(py);
        complete_slot(py, &job.slot, Some(Outcome::from_result(py, result)));
    }
    worker::set_blocking_runtime(None);
    inner.threads.fetch_sub(1, Ordering::AcqRel);
}

fn next_job(inner: &Inner) -> Option<Job> {
    let mut queue = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if let Some(job) = queue.pop_front() {
            return Some(job);
        }
        if inner.shutdown.load(Ordering::Acquire) {
            return None;
        }
        inner.idle.fetch_add(1, Ordering::AcqRel);
        let (q, timeout) = inner
            .cvar
            .wait_timeout(queue, IDLE_TTL)
            .unwrap_or_else(|p| p.into_inner());
        inner.idle.fetch_sub(1, Ordering::AcqRel);
        queue = q;
        if timeout.timed_out() && queue.is_empty() {
            return None;
        }
    }
}
