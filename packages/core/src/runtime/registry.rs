//! Every live task, by id: for `all_tasks()`, for cancel pokes (nodes name their owner by id),
//! and so `close()` can wait until none is left. Sharded so spawning from several workers does
//! not serialise on one lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use crate::task::Task;

const SHARDS: usize = 32;

/// Task ids are sequential, so they hash to themselves.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Shard = Mutex<HashMap<u64, Py<Task>, BuildHasherDefault<IdHasher>>>;

pub struct Registry {
    shards: Vec<Shard>,
    live: AtomicUsize,
    empty_lock: Mutex<()>,
    empty: Condvar,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            live: AtomicUsize::new(0),
            empty_lock: Mutex::new(()),
            empty: Condvar::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    fn shard(&self, id: u64) -> &Shard {
        &self.shards[(id as usize) % SHARDS]
    }

    pub fn insert(&self, id: u64, task: Py<Task>) {
        self.live.fetch_add(1, Ordering::AcqRel);
        lock(self.shard(id)).insert(id, task);
    }

    pub fn remove(&self, id: u64) {
        let removed = lock(self.shard(id)).remove(&id);
        drop(removed);
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            drop(lock(&self.empty_lock));
            self.empty.notify_all();
        }
    }

    pub fn get(&self, py: Python<'_>, id: u64) -> Option<Py<Task>> {
        lock(self.shard(id)).get(&id).map(|t| t.clone_ref(py))
    }

    pub fn all(&self, py: Python<'_>) -> Vec<Py<Task>> {
        let mut tasks: Vec<Py<Task>> = Vec::new();
        for shard in &self.shards {
            tasks.extend(lock(shard).values().map(|t| t.clone_ref(py)));
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
