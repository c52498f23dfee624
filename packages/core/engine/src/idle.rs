//! The set of sleeping workers, so that new work wakes one of them and only when needed.
//!
//! The protocol is the classic store-then-load on both sides: a worker announces itself, then
//! looks at the queues one last time; a producer pushes, then reads the sleeper count. With
//! both fences sequentially consistent, at least one of them sees the other, so work is never
//! stranded while every worker sleeps.

use crate::loom::{
    lock,
    sync::{
        atomic::{fence, AtomicUsize, Ordering},
        Mutex,
    },
};

#[derive(Debug, Default)]
pub struct Idle {
    sleepers: Mutex<Vec<usize>>,
    count: AtomicUsize,
}

impl Idle {
    pub fn new() -> Self {
        Self::default()
    }

    /// A worker is about to sleep. It must look for work again after this returns.
    pub fn announce(&self, worker: usize) {
        let mut s = lock(&self.sleepers);
        if !s.contains(&worker) {
            s.push(worker);
            self.count.fetch_add(1, Ordering::SeqCst);
        }
        drop(s);
        fence(Ordering::SeqCst);
    }

    /// The worker found work (or woke) and is no longer a candidate. True if it was listed.
    pub fn retract(&self, worker: usize) -> bool {
        let mut s = lock(&self.sleepers);
        if let Some(i) = s.iter().position(|&w| w == worker) {
            s.swap_remove(i);
            self.count.fetch_sub(1, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// Called after publishing work: takes one sleeper to wake, if any.
    pub fn pop_sleeper(&self) -> Option<usize> {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let mut s = lock(&self.sleepers);
        let w = s.pop()?;
        self.count.fetch_sub(1, Ordering::SeqCst);
        Some(w)
    }

    pub fn sleeping(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}
