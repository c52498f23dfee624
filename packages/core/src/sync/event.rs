//! `Event`, in Rust because it is the hottest primitive (ping-pong between tasks).
//! `set()` may be called from any thread, inside a runtime or not.

use std::sync::Arc;

use manyio_engine::{EventCore, Wait};
use pyo3::prelude::*;

use crate::outcome::Outcome;
use crate::sync::waiter::{wake_all, Waiter};
use crate::task::Task;

/// A flag tasks can wait for: ``await event.wait()`` returns once ``event.set()`` was called.
/// ``set()`` is safe from any thread, inside a runtime or not.
#[pyclass(frozen, module = "manyio")]
pub struct Event {
    core: Arc<EventCore<Outcome, Py<Task>>>,
}

#[pymethods]
impl Event {
    #[new]
    fn new() -> Self {
        Self {
            core: Arc::new(EventCore::new()),
        }
    }

    /// Waits until the event is set. A checkpoint even when it is set already.
    fn wait(&self, py: Python<'_>) -> Waiter {
        match self.core.wait() {
            Wait::Ready => Waiter::ready(py, None),
            Wait::Park(id, slot) => {
                let core = Arc::downgrade(&self.core);
                Waiter::new(
                    slot,
                    Some(Box::new(move || {
                        if let Some(core) = core.upgrade() {
                            core.forget(id);
                        }
                    })),
                )
            }
        }
    }

    /// Sets the event and wakes every waiter. Safe from any thread.
    fn set(&self, py: Python<'_>) {
        wake_all(self.core.set(|| Outcome::none(py)));
    }

    fn is_set(&self) -> bool {
        self.core.is_set()
    }

    /// Resets the flag (not in trio's Event; asyncio's has it).
    fn clear(&self) {
        self.core.clear();
    }

    /// Number of tasks waiting.
    fn statistics(&self) -> usize {
        self.core.waiting()
    }

    fn __repr__(&self) -> String {
        format!(
            "<manyio.Event {} waiters={}>",
            if self.core.is_set() { "set" } else { "unset" },
            self.core.waiting()
        )
    }
}
