//! A FIFO of parked waiters: the building block of events, locks, semaphores and channels.
//!
//! Each waiter is a [`Completion`]. Handing a value to the queue pops waiters in order until
//! one accepts it; a waiter that was cancelled in the meantime refuses it, so a permit or an
//! item is never lost to a task that no longer waits. Cancelled waiters also remove themselves
//! by id, so abandoned waits do not pile up.

use std::collections::BTreeMap;

use crate::completion::Completion;
use crate::loom::{lock, sync::Arc, sync::Mutex};

pub type Slot<T, W> = Arc<Completion<T, W>>;

struct Inner<T, W> {
    next_id: u64,
    waiters: BTreeMap<u64, Slot<T, W>>,
}

pub struct WaitQueue<T, W> {
    inner: Mutex<Inner<T, W>>,
}

impl<T, W> Default for WaitQueue<T, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, W> WaitQueue<T, W> {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                next_id: 0,
                waiters: BTreeMap::new(),
            }),
        }
    }

    /// Adds a waiter at the back. The id lets a cancelled waiter remove itself.
    pub fn push(&self) -> (u64, Slot<T, W>) {
        let slot = Arc::new(Completion::new());
        let mut inner = lock(&self.inner);
        let id = inner.next_id;
        inner.next_id += 1;
        inner.waiters.insert(id, slot.clone());
        (id, slot)
    }

    pub fn remove(&self, id: u64) {
        lock(&self.inner).waiters.remove(&id);
    }

    /// Hands `value` to the longest waiting live waiter. Returns its waker, or the value back
    /// when nobody waits.
    pub fn hand_one(&self, mut value: T) -> Result<Option<W>, T> {
        loop {
            let slot = {
                let mut inner = lock(&self.inner);
                match inner.waiters.pop_first() {
                    Some((_, slot)) => slot,
                    None => return Err(value),
                }
            };
            match slot.complete(value) {
                Ok(waker) => return Ok(waker),
                Err(v) => value = v,
            }
        }
    }

    /// Completes every current waiter with a value made by `make`; returns their wakers.
    pub fn hand_all(&self, mut make: impl FnMut() -> T) -> Vec<W> {
        let waiters = std::mem::take(&mut lock(&self.inner).waiters);
        waiters
            .into_values()
            .filter_map(|slot| slot.complete(make()).ok().flatten())
            .collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_skips_aborted() {
        let q: WaitQueue<u32, u8> = WaitQueue::new();
        let (_, a) = q.push();
        let (_, b) = q.push();
        a.register(1);
        b.register(2);
        assert!(a.try_abort());
        assert_eq!(q.hand_one(10), Ok(Some(2)));
        assert_eq!(b.take(), Some(10));
        assert_eq!(q.hand_one(11), Err(11));
    }

    #[test]
    fn removed_waiters_are_gone() {
        let q: WaitQueue<(), ()> = WaitQueue::new();
        let (id, _) = q.push();
        q.remove(id);
        assert!(q.is_empty());
    }
}
