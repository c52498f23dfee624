//! Which coroutines belong to a live task.
//!
//! Two tasks stepping one coroutine on two threads at once crashes free-threaded CPython
//! (generators are not safe to resume concurrently). Spawning the same coroutine twice is an
//! easy mistake, so every task claims its coroutine and a second claim raises instead.
//! Process-wide (a coroutine could be handed to two runtimes), sharded by address.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

const SHARDS: usize = 16;

fn shards() -> &'static [Mutex<HashSet<usize>>] {
    static SHARDS_CELL: OnceLock<Vec<Mutex<HashSet<usize>>>> = OnceLock::new();
    SHARDS_CELL.get_or_init(|| (0..SHARDS).map(|_| Mutex::default()).collect())
}

fn shard(addr: usize) -> &'static Mutex<HashSet<usize>> {
    // Objects are 16-byte aligned: drop the low bits before picking a shard.
    &shards()[(addr >> 4) % SHARDS]
}

/// Claims the object at `addr`; false if a live task already owns it.
pub fn claim(addr: usize) -> bool {
    shard(addr)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(addr)
}

pub fn release(addr: usize) {
    shard(addr)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&addr);
}
