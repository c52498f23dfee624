//! A level-triggered event: once set, every wait returns at once until it is cleared.
//!
//! The flag and the waiter list change under one lock. With two locks (or an atomic flag and
//! a separate queue) a `set()` whose flag write was seen, and already undone by `clear()`,
//! could still complete a waiter that parked after the clear: a wake-up from the past.
//! The atomic mirror of the flag only serves lock-free reads (`is_set`, the fast path).

use std::collections::BTreeMap;

use crate::completion::Completion;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::{lock, sync::Arc, sync::Mutex};
use crate::wait_queue::Slot;

pub enum Wait<T, W> {
    /// The event is set.
    Ready,
    /// Park on the slot; `id` removes it if the wait is abandoned.
    Park(u64, Slot<T, W>),
}

struct Inner<T, W> {
    set: bool,
    next_id: u64,
    waiters: BTreeMap<u64, Slot<T, W>>,
}

pub struct EventCore<T, W> {
    flag: AtomicBool,
    inner: Mutex<Inner<T, W>>,
}

impl<T, W> Default for EventCore<T, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, W> EventCore<T, W> {
    pub fn new() -> Self {
        Self {
            flag: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                set: false,
                next_id: 0,
                waiters: BTreeMap::new(),
            }),
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    pub fn wait(&self) -> Wait<T, W> {
        if self.is_set() {
            return Wait::Ready;
        }
        let mut inner = lock(&self.inner);
        if inner.set {
            return Wait::Ready;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let slot = Arc::new(Completion::new());
        inner.waiters.insert(id, slot.clone());
        Wait::Park(id, slot)
    }

    /// Sets the flag, completes every waiter with a value from `make`, returns their wakers.
    pub fn set(&self, mut make: impl FnMut() -> T) -> Vec<W> {
        let waiters = {
            let mut inner = lock(&self.inner);
            if inner.set {
                return Vec::new();
            }
            inner.set = true;
            self.flag.store(true, Ordering::Release);
            std::mem::take(&mut inner.waiters)
        };
        waiters
            .into_values()
            .filter_map(|slot| slot.complete(make()).ok().flatten())
            .collect()
    }

    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        inner.set = false;
        self.flag.store(false, Ordering::Release);
    }

    pub fn forget(&self, id: u64) {
        lock(&self.inner).waiters.remove(&id);
    }

    pub fn waiting(&self) -> usize {
        lock(&self.inner).waiters.len()
    }
}
