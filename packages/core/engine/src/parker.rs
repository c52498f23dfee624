//! How one worker sleeps and is woken.
//!
//! A worker either sleeps on a condition variable or inside the I/O driver (blocked in
//! `epoll_wait`). `unpark` must know which, so the state records it; an unpark that arrives
//! before the worker sleeps leaves NOTIFIED behind and the next park returns at once.

use crate::loom::{
    lock,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Condvar, Mutex,
    },
};

const EMPTY: usize = 0;
const PARKED_CONDVAR: usize = 1;
const PARKED_DRIVER: usize = 2;
const NOTIFIED: usize = 3;

/// Interrupts a worker blocked in the driver (for mio, its `Waker`).
pub trait Unblock {
    fn unblock(&self);
}

#[derive(Debug)]
pub struct Parker {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
}

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl Parker {
    pub fn new() -> Self {
        Self {
            state: AtomicUsize::new(EMPTY),
            lock: Mutex::new(()),
            cvar: Condvar::new(),
        }
    }

    /// Sleeps until `unpark`, or returns at once if an unpark is pending.
    pub fn park(&self) {
        if self
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        let mut guard = lock(&self.lock);
        if self
            .state
            .compare_exchange(EMPTY, PARKED_CONDVAR, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Only NOTIFIED can be there: consume it.
            self.state.store(EMPTY, Ordering::Release);
            return;
        }
        loop {
            guard = match self.cvar.wait(guard) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if self
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Sleeps by calling `block` (the driver's poll), unless an unpark is pending. `block` must
    /// return when the matching [`Unblock`] is triggered; it may also return early (timeouts).
    pub fn park_in(&self, block: impl FnOnce()) {
        if self
            .state
            .compare_exchange(EMPTY, PARKED_DRIVER, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.state.store(EMPTY, Ordering::Release);
            return;
        }
        block();
        self.state.store(EMPTY, Ordering::Release);
    }

    /// Wakes the worker, wherever it sleeps. Cheap when it is not sleeping.
    pub fn unpark(&self, driver: &impl Unblock) {
        match self.state.swap(NOTIFIED, Ordering::AcqRel) {
            PARKED_CONDVAR => {
                // Taking the lock orders us after the sleeper's check-then-wait.
                drop(lock(&self.lock));
                self.cvar.notify_one();
            }
            PARKED_DRIVER => driver.unblock(),
            _ => {}
        }
    }
}
