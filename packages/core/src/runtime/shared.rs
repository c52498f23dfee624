//! State shared by a runtime's workers and by every thread that schedules onto it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use manyio_engine::{Idle, Parker, Unblock};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::clock;
use crate::io::reactor::Reactor;
use crate::runtime::blocking::BlockingPool;
use crate::runtime::driver::{Driver, DriverWaker};
use crate::runtime::main_thread::MainThreadQueue;
use crate::runtime::registry::Registry;
use crate::runtime::worker;
use crate::task::cancel::CancelNode;
use crate::task::Task;
use crate::time::{TimerAction, TimerKey, Timers};

/// Every runtime still alive, for calls made outside any runtime (`notify_closing` from a
/// plain thread must reach whichever reactor watches the fd).
pub fn live_runtimes() -> std::sync::MutexGuard<'static, Vec<std::sync::Weak<Shared>>> {
    static LIVE: Mutex<Vec<std::sync::Weak<Shared>>> = Mutex::new(Vec::new());
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|w| w.strong_count() > 0);
    live
}

/// A worker's own run queue; the worker thread owns it, others steal through a `Stealer`.
pub type LocalQueue = Worker<Py<Task>>;

/// Counters for `manyio.stats()`. Relaxed: they are statistics, not synchronisation.
#[derive(Default)]
pub struct WorkerStats {
    pub polls: AtomicU64,
    pub steals: AtomicU64,
    pub parks: AtomicU64,
}

pub struct Shared {
    pub main_thread: MainThreadQueue,
    pub registry: Registry,
    pub reactor: Arc<Reactor>,
    pub timers: Timers,
    pub root: Arc<CancelNode>,
    pub blocking: BlockingPool,
    pub stats: Vec<WorkerStats>,
    injector: Injector<Py<Task>>,
    stealers: Vec<Stealer<Py<Task>>>,
    parkers: Vec<Parker>,
    idle: Idle,
    driver: Mutex<Option<Driver>>,
    waker: mio::Waker,
    poller_wakeups: AtomicU64,
    next_id: AtomicU64,
    closed: AtomicBool,
    shutdown: AtomicBool,
    exception_handler: Mutex<Option<Py<PyAny>>>,
    /// Runtime-wide storage for libraries layered on manyio (e.g. AnyIO's run variables).
    pub locals: Py<PyDict>,
}

impl Shared {
    /// Builds the shared state and the local queues the worker threads will own.
    pub fn new(
        threads: usize,
        exception_handler: Option<Py<PyAny>>,
    ) -> std::io::Result<(Arc<Self>, Vec<LocalQueue>)> {
        let locals: Vec<LocalQueue> = (0..threads).map(|_| Worker::new_fifo()).collect();
        let stealers = locals.iter().map(Worker::stealer).collect();
        let (driver, waker, registry) = Driver::new()?;
        let shared = Arc::new_cyclic(|weak| Shared {
            main_thread: MainThreadQueue::default(),
            registry: Registry::new(threads),
            reactor: Arc::new(Reactor::new(registry)),
            timers: Timers::default(),
            root: CancelNode::new_root(weak.clone()),
            blocking: BlockingPool::new(weak.clone()),
            stats: (0..threads).map(|_| WorkerStats::default()).collect(),
            injector: Injector::new(),
            stealers,
            parkers: (0..threads).map(|_| Parker::new()).collect(),
            idle: Idle::new(),
            locals: Python::attach(|py| PyDict::new(py).unbind()),
            driver: Mutex::new(Some(driver)),
            waker,
            poller_wakeups: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            exception_handler: Mutex::new(exception_handler),
        });
        live_runtimes().push(Arc::downgrade(&shared));
        Ok((shared, locals))
    }

    pub fn threads(&self) -> usize {
        self.parkers.len()
    }

    pub fn next_task_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Puts a SCHEDULED task in a run queue (the local one when called on one of our workers),
    /// or, for a task whose strand is busy, in the strand's queue.
    pub fn schedule(self: &Arc<Self>, task: Py<Task>) {
        let strand = task.get().strand.clone();
        let task = match strand {
            Some(strand) => match strand.admit(task) {
                Some(t) => t,
                None => return,
            },
            None => task,
        };
        self.enqueue(task);
    }

    /// Puts a task in a run queue, bypassing strand admission (it holds its strand already).
    pub fn enqueue(self: &Arc<Self>, task: Py<Task>) {
        match worker::push_local(self, task) {
            // With one worker, the one pushing onto its own queue is awake: nobody to wake.
            Ok(()) if self.threads() == 1 => return,
            Ok(()) => {}
            Err(task) => self.injector.push(task),
        }
        self.notify_one();
    }

    /// A task that yielded at a checkpoint goes behind everything already queued.
    pub fn schedule_yielded(self: &Arc<Self>, task: Py<Task>) {
        self.schedule(task);
    }

    fn driver_waker(&self) -> DriverWaker<'_> {
        DriverWaker {
            waker: &self.waker,
            count: &self.poller_wakeups,
        }
    }

    fn notify_one(&self) {
        if let Some(w) = self.idle.pop_sleeper() {
            self.parkers[w].unpark(&self.driver_waker());
        }
    }

    pub fn unpark_all(&self) {
        for p in &self.parkers {
            p.unpark(&self.driver_waker());
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.unpark_all();
        self.blocking.shutdown();
    }

    /// Takes a task from the global queue or another worker, moving a batch into `local`.
    pub fn steal(&self, index: usize, local: &Worker<Py<Task>>) -> Option<Py<Task>> {
        loop {
            let mut retry = false;
            match self.injector.steal_batch_and_pop(local) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = self.stealers.len();
            for k in 1..n {
                let victim = (index + k) % n;
                match self.stealers[victim].steal_batch_and_pop(local) {
                    Steal::Success(t) => {
                        self.stats[index].steals.fetch_add(1, Ordering::Relaxed);
                        return Some(t);
                    }
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Takes one task from the global queue (fairness: busy workers look there now and then).
    pub fn pop_global(&self) -> Option<Py<Task>> {
        loop {
            match self.injector.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    pub fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Adds a timer and wakes the poller if the earliest deadline moved before its sleep.
    pub fn add_timer(&self, deadline_ns: u64, action: TimerAction) -> TimerKey {
        let (key, wake) = self.timers.insert(deadline_ns, action);
        if wake {
            self.driver_waker().unblock();
        }
        key
    }

    /// Called by a worker with nothing to run: sleep in the driver if it is free, else on the
    /// worker's own parker.
    pub fn park(&self, py: Python<'_>, index: usize) {
        self.idle.announce(index);
        if self.has_work() || self.is_shutdown() {
            self.idle.retract(index);
            return;
        }
        self.stats[index].parks.fetch_add(1, Ordering::Relaxed);
        let driver = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        match driver {
            Some(mut driver) => {
                let until = self.timers.begin_poll();
                let timeout = (until != u64::MAX).then(|| clock::until(until));
                let seq = self.reactor.begin_poll();
                let parker = &self.parkers[index];
                driver = py.detach(move || {
                    parker.park_in(|| driver.poll(timeout));
                    driver
                });
                self.timers.end_poll();
                let ready = driver.take_ready();
                *self.driver.lock().unwrap_or_else(|p| p.into_inner()) = Some(driver);
                self.idle.retract(index);
                self.dispatch(py, seq, ready);
                self.timers.fire_due(py);
                // We leave the driver to run work: let another sleeper take it over.
                if self.idle.sleeping() > 0 && self.has_work() {
                    self.notify_one();
                }
            }
            None => {
                let parker = &self.parkers[index];
                py.detach(|| parker.park());
                self.idle.retract(index);
            }
        }
    }

    fn dispatch(&self, py: Python<'_>, seq: u64, ready: Vec<crate::runtime::driver::Ready>) {
        for (token, readable, writable) in ready {
            self.reactor.dispatch(py, seq, token, readable, writable);
        }
    }

    /// Periodic work for busy workers: timers must fire and I/O must be noticed even when
    /// nobody sleeps in the driver.
    pub fn maintenance(&self, py: Python<'_>) {
        if self.timers.is_due(clock::now_ns()) {
            self.timers.fire_due(py);
        }
        let driver = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut driver) = driver {
            let seq = self.reactor.begin_poll();
            driver.poll(Some(std::time::Duration::ZERO));
            let ready = driver.take_ready();
            *self.driver.lock().unwrap_or_else(|p| p.into_inner()) = Some(driver);
            self.dispatch(py, seq, ready);
        }
    }

    pub fn report_unretrieved(&self, py: Python<'_>, exc: &Bound<'_, PyAny>, task_name: &str) {
        let handler = self
            .exception_handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|h| h.clone_ref(py));
        let context = PyDict::new(py);
        let filled = context
            .set_item(
                "message",
                format!("Task {task_name} raised an exception that was never retrieved"),
            )
            .and_then(|_| context.set_item("exception", exc))
            .and_then(|_| context.set_item("task_name", task_name));
        let result = match (handler, filled) {
            (Some(h), Ok(())) => h.call1(py, (context,)).map(drop),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Err(PyErr::from_value(exc.clone())),
        };
        if let Err(e) = result {
            e.write_unraisable(py, None);
        }
    }

    pub fn stats_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let sum = |f: fn(&WorkerStats) -> &AtomicU64| -> u64 {
            self.stats
                .iter()
                .map(|s| f(s).load(Ordering::Relaxed))
                .sum()
        };
        d.set_item("workers", self.threads())?;
        d.set_item(
            "run_queue_depths",
            self.stealers.iter().map(Stealer::len).collect::<Vec<_>>(),
        )?;
        d.set_item("global_queue_depth", self.injector.len())?;
        d.set_item("polls", sum(|s| &s.polls))?;
        d.set_item("steals", sum(|s| &s.steals))?;
        d.set_item("parks", sum(|s| &s.parks))?;
        d.set_item(
            "poller_wakeups",
            self.poller_wakeups.load(Ordering::Relaxed),
        )?;
        d.set_item("sleeping_workers", self.idle.sleeping())?;
        d.set_item("live_tasks", self.registry.len())?;
        d.set_item("timers", self.timers.len())?;
        d.set_item("blocking_threads", self.blocking.threads())?;
        Ok(d)
    }
}
