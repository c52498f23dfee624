//! `ParkingLot`: a FIFO of parked tasks, for primitives written in Python.
//!
//! The Python primitive keeps its own state under a `threading.Lock` and calls `park()` while
//! holding it; it awaits the returned waiter after releasing it. A value handed to a waiter
//! that was cancelled in between is handed to the next one instead (see the engine's
//! `WaitQueue`), so a permit or an item is never lost.

use std::sync::Arc;

use manyio_engine::WaitQueue;
use pyo3::prelude::*;

use crate::outcome::Outcome;
use crate::sync::waiter::{wake_all, Waiter};
use crate::task::Task;

pub type TaskQueue = WaitQueue<Outcome, Py<Task>>;

/// Parks a new waiter on `queue`; a cancelled wait removes itself.
pub fn park_on(queue: &Arc<TaskQueue>) -> Waiter {
    let (id, slot) = queue.push();
    let queue = Arc::downgrade(queue);
    Waiter::new(
        slot,
        Some(Box::new(move || {
            if let Some(q) = queue.upgrade() {
                q.remove(id);
            }
        })),
    )
}

#[pyclass(frozen, module = "manyio._core")]
#[derive(Default)]
pub struct ParkingLot {
    queue: Arc<TaskQueue>,
}

#[pymethods]
impl ParkingLot {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// A waiter at the back of the queue; await it to sleep until `unpark` reaches it.
    fn park(&self) -> Waiter {
        park_on(&self.queue)
    }

    /// Wakes the longest waiting task, which receives `value`. False if nobody waits.
    #[pyo3(signature = (value=None))]
    fn unpark(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> bool {
        let value = value.unwrap_or_else(|| py.None());
        match self.queue.hand_one(Outcome::Value(value)) {
            Ok(Some(task)) => {
                Task::wake(task);
                true
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Wakes every waiting task; returns how many.
    fn unpark_all(&self, py: Python<'_>) -> usize {
        let wakers = self.queue.hand_all(|| Outcome::none(py));
        let n = wakers.len();
        wake_all(wakers);
        n
    }

    fn __len__(&self) -> usize {
        self.queue.len()
    }
}
