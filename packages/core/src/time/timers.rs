//! The timer table: an ordered map from (deadline, sequence) to what to do then.
//!
//! A B-tree rather than a wheel: timers here are few per task and most are removed early (a
//! wait that ended, a scope that exited), and removal by key is O(log n). The earliest deadline
//! is mirrored in an atomic so busy workers can check "is anything due?" without locking, and
//! so an insert wakes the poller only when it moves the earliest deadline before the one the
//! poller sleeps until.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use pyo3::prelude::*;

use crate::clock;
use crate::sync::waiter::WaitSlot;
use crate::task::cancel::{CancelNode, DEADLINE_EXCEEDED};

pub type TimerKey = (u64, u64);

/// `polling_until` while nobody sleeps in the poller: no deadline is earlier, so an insert
/// wakes nobody (the next poller reads the earliest deadline itself).
const NOT_POLLING: u64 = 0;

pub enum TimerAction {
    /// Complete a sleep with `None`.
    Complete(Arc<WaitSlot>),
    /// A cancel scope's deadline passed.
    Cancel(Weak<CancelNode>),
}

pub struct Timers {
    map: Mutex<BTreeMap<TimerKey, TimerAction>>,
    seq: AtomicU64,
    earliest: AtomicU64,
    /// The deadline the poller sleeps until (`u64::MAX`: no deadline), or [`NOT_POLLING`].
    polling_until: AtomicU64,
    count: AtomicUsize,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            map: Mutex::new(BTreeMap::new()),
            seq: AtomicU64::new(0),
            earliest: AtomicU64::new(u64::MAX),
            polling_until: AtomicU64::new(NOT_POLLING),
            count: AtomicUsize::new(0),
        }
    }
}

impl Timers {
    /// Adds a timer. Returns its key and whether the poller must be woken to see it.
    pub fn insert(&self, deadline_ns: u64, action: TimerAction) -> (TimerKey, bool) {
        let key = (deadline_ns, self.seq.fetch_add(1, Ordering::Relaxed));
        let mut map = lock(&self.map);
        map.insert(key, action);
        self.count.store(map.len(), Ordering::Relaxed);
        let moved = deadline_ns < self.earliest.load(Ordering::SeqCst);
        if moved {
            self.earliest.store(deadline_ns, Ordering::SeqCst);
        }
        drop(map);
        // Paired with begin_poll: one of us sees the other's store.
        let wake = moved && deadline_ns < self.polling_until.load(Ordering::SeqCst);
        (key, wake)
    }

    pub fn remove(&self, key: TimerKey) -> Option<TimerAction> {
        let mut map = lock(&self.map);
        let action = map.remove(&key);
        if action.is_some() {
            self.count.store(map.len(), Ordering::Relaxed);
            if key.0 <= self.earliest.load(Ordering::Relaxed) {
                let next = map.keys().next().map_or(u64::MAX, |k| k.0);
                self.earliest.store(next, Ordering::SeqCst);
            }
        }
        action
    }

    pub fn earliest(&self) -> u64 {
        self.earliest.load(Ordering::SeqCst)
    }

    /// The poller is about to sleep: returns the deadline to sleep until. An insert racing
    /// this either sees `polling_until` and wakes the poller, or is seen here.
    pub fn begin_poll(&self) -> u64 {
        loop {
            let e = self.earliest();
            self.polling_until.store(e, Ordering::SeqCst);
            if self.earliest() == e {
                return e;
            }
        }
    }

    pub fn end_poll(&self) {
        self.polling_until.store(NOT_POLLING, Ordering::SeqCst);
    }

    pub fn is_due(&self, now_ns: u64) -> bool {
        self.earliest() <= now_ns
    }

    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Runs every timer whose deadline has passed. Actions run outside the lock.
    pub fn fire_due(&self, py: Python<'_>) {
        let now = clock::now_ns();
        if !self.is_due(now) {
            return;
        }
        let due: Vec<TimerAction> = {
            let mut map = lock(&self.map);
            let later = map.split_off(&(now.saturating_add(1), 0));
            let due = std::mem::replace(&mut *map, later);
            self.count.store(map.len(), Ordering::Relaxed);
            let next = map.keys().next().map_or(u64::MAX, |k| k.0);
            self.earliest.store(next, Ordering::SeqCst);
            due.into_values().collect()
        };
        for action in due {
            match action {
                TimerAction::Complete(slot) => {
                    crate::sync::waiter::complete_slot(py, &slot, None);
                }
                TimerAction::Cancel(node) => {
                    if let Some(node) = node.upgrade() {
                        node.cancel_because(py, Some(DEADLINE_EXCEEDED));
                    }
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
