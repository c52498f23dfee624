//! Every live task: for `all_tasks()`, for cancel pokes (a cancel node names its owner by
//! registry key), to keep parked tasks alive, and so `close()` can cancel and wait for all.
//!
//! Slabs, not a hash map: a task remembers its key, so removal is O(1) with no hashing, and
//! freed slots are reused, which keeps a million-task run in fewer cache lines. A worker
//! inserts into its own shard, so spawning on several workers does not share a lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use crate::task::Task;

/// Shard in the high 32 bits, slot in the low 32.
pub type RegKey = u64;

#[derive(Default)]
struct Slab {
    slots: Vec<Option<Py<Task>>>,
    free: Vec<u32>,
}

pub struct Registry {
    shards: Vec<Mutex<Slab>>,
    live: AtomicUsize,
    empty_lock: Mutex<()>,
    empty: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn split(key: RegKey) -> (usize, usize) {
    ((key >> 32) as usize, (key & 0xFFFF_FFFF) as usize)
}

impl Registry {
    /// One shard per worker plus one for foreign threads.
    pub fn new(workers: usize) -> Self {
        Self {
            shards: (0..=workers).map(|_| Mutex::default()).collect(),
            live: AtomicUsize::new(0),
            empty_lock: Mutex::new(()),
            empty: Condvar::new(),
        }
    }

    /// Reserves a slot in `shard` (clamped to the foreign-thread shard); fill it with `fill`.
    pub fn reserve(&self, shard: usize) -> RegKey {
        let shard = shard.min(self.shards.len() - 1);
        let mut slab = lock(&self.shards[shard]);
        let slot = match slab.free.pop() {
            Some(i) => i as usize,
            None => {
                slab.slots.push(None);
                slab.slots.len() - 1
            }
        };
        self.live.fetch_add(1, Ordering::AcqRel);
        ((shard as u64) << 32) | slot as u64
    }

    pub fn fill(&self, key: RegKey, task: Py<Task>) {
        let (shard, slot) = split(key);
        lock(&self.shards[shard]).slots[slot] = Some(task);
    }

    pub fn remove(&self, key: RegKey) {
        let (shard, slot) = split(key);
        let removed = {
            let mut slab = lock(&self.shards[shard]);
            let removed = slab.slots.get_mut(slot).and_then(Option::take);
            if removed.is_some() {
                slab.free.push(slot as u32);
            }
            removed
        };
        if removed.is_none() {
            return;
        }
        drop(removed);
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            drop(lock(&self.empty_lock));
            self.empty.notify_all();
        }
    }

    /// The task at `key`; after it ended the slot may hold a newer task, which a caller that
    /// only wakes tasks tolerates (a spurious wake-up re-checks and parks again).
    pub fn get(&self, py: Python<'_>, key: RegKey) -> Option<Py<Task>> {
        let (shard, slot) = split(key);
        let slab = lock(self.shards.get(shard)?);
        slab.slots.get(slot)?.as_ref().map(|t| t.clone_ref(py))
    }

    pub fn all(&self, py: Python<'_>) -> Vec<Py<Task>> {
        let mut tasks: Vec<Py<Task>> = Vec::new();
        for shard in &self.shards {
            tasks.extend(lock(shard).slots.iter().flatten().map(|t| t.clone_ref(py)));
        }
        tasks.sort_by_key(|t| t.get().id);
        tasks
    }

    pub fn len(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` for the registry to empty; true if it is empty.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        let guard = lock(&self.empty_lock);
        if self.len() == 0 {
            return true;
        }
        let _ = self.empty.wait_timeout(guard, timeout);
        self.len() == 0
    }
}
