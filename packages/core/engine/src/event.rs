//! A level-triggered event: once set, every wait returns at once until it is cleared.

use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::wait_queue::{Slot, WaitQueue};

pub enum Wait<T, W> {
    /// The event is set.
    Ready,
    /// Park on the slot; `id` removes it if the wait is abandoned.
    Park(u64, Slot<T, W>),
}

pub struct EventCore<T, W> {
    flag: AtomicBool,
    waiters: WaitQueue<T, W>,
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
            waiters: WaitQueue::new(),
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    pub fn wait(&self) -> Wait<T, W> {
        if self.is_set() {
            return Wait::Ready;
        }
        let (id, slot) = self.waiters.push();
        // set() may have run between the check and the push: look again, or we sleep forever.
        if self.is_set() {
            self.waiters.remove(id);
            return Wait::Ready;
        }
        Wait::Park(id, slot)
    }

    /// Sets the flag, completes every waiter with a value from `make`, returns their wakers.
    pub fn set(&self, make: impl FnMut() -> T) -> Vec<W> {
        if self.flag.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        self.waiters.hand_all(make)
    }

    pub fn clear(&self) {
        self.flag.store(false, Ordering::Release);
    }

    pub fn forget(&self, id: u64) {
        self.waiters.remove(id);
    }

    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }
}
