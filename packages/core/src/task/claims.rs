//! Which coroutines belong to a live task.
//!
//! Two tasks stepping one coroutine on two threads at once crashes free-threaded CPython
//! (generators are not safe to resume concurrently). Spawning the same coroutine twice is an
//! easy mistake, so every task claims its coroutine and a second claim raises instead.
//! Process-wide (a coroutine could be handed to two runtimes), sharded by address.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, OnceLock};

const SHARDS: usize = 16;

type AddrSet = HashSet<usize, BuildHasherDefault<AddrHasher>>;

fn shards() -> &'static [Mutex<AddrSet>] {
    static SHARDS_CELL: OnceLock<Vec<Mutex<AddrSet>>> = OnceLock::new();
    SHARDS_CELL.get_or_init(|| (0..SHARDS).map(|_| Mutex::default()).collect())
}

fn shard(addr: usize) -> &'static Mutex<AddrSet> {
    // By memory page: a thread allocates from pages of its own, so workers spawning at once
    // mostly take different locks.
    &shards()[(addr >> 12) % SHARDS]
}

/// Hashes an object address to itself (objects are 16-byte aligned, so without the low
/// bits), with mixed bits only at the top, where hashbrown takes its per-bucket tag. The
/// bucket index comes from the low bits, so coroutines allocated one after another sit in
/// neighbouring buckets: a million live claims stay cheap to add and remove, where a random
/// hash would miss the cache on every call. (It was 10% of a spawn with SipHash.)
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only usize keys are hashed here; anything else still gets a valid (FNV-1a) hash.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_usize(&mut self, addr: usize) {
        let key = (addr >> 4) as u64;
        self.0 = key ^ (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0xFE00_0000_0000_0000);
    }

    fn finish(&self) -> u64 {
        self.0
    }
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
