//! The cancel tree.
//!
//! Every task has a root node (its parent: the node it was spawned under) and every entered
//! `CancelScope` adds a node under the task's current one. A task is cancelled when walking up
//! from its current node reaches a node whose cancel was called before it reaches a shielded
//! node. That walk reads only atomics, so each resume can afford it: cancellation is
//! level-triggered because the scheduler asks at every resume, not because anyone remembers
//! to deliver it.
//!
//! Cancelling a node pokes the owners of it and of every node below it (stopping at shields),
//! so parked tasks wake up, see they are cancelled and abandon their waits. A poke is only a
//! wake-up: a task that turns out not to be cancelled (a shield went up meanwhile) parks again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use pyo3::prelude::*;

use crate::runtime::registry::RegKey;
use crate::runtime::Shared;
use crate::task::Task;

const NO_SLOT: usize = usize::MAX;

/// The reason recorded when a scope's deadline cancels it.
pub const DEADLINE_EXCEEDED: &str = "deadline exceeded";

pub struct CancelNode {
    parent: Option<Arc<CancelNode>>,
    /// Registry key of the task that entered this node (the only one that can stand in it).
    owner: RegKey,
    rt: Weak<Shared>,
    cancel_called: AtomicBool,
    /// Why it was cancelled, when the canceller said (shown in the `Cancelled` raised).
    reason: OnceLock<Box<str>>,
    shield: AtomicBool,
    /// f64 bits of the deadline on the `time.monotonic()` scale; +inf for none.
    deadline: AtomicU64,
    children: Mutex<Children>,
    slot_in_parent: AtomicUsize,
}

/// A small slab: O(1) insert and remove, so a group with a million children stays cheap.
#[derive(Default)]
struct Children {
    nodes: Vec<Option<Weak<CancelNode>>>,
    free: Vec<usize>,
}

impl Children {
    fn insert(&mut self, node: Weak<CancelNode>) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(entry) = self.nodes.get_mut(i) {
            if entry.take().is_some() {
                self.free.push(i);
            }
        }
    }

    fn live(&self) -> impl Iterator<Item = Arc<CancelNode>> + '_ {
        self.nodes.iter().flatten().filter_map(Weak::upgrade)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CancelNode {
    /// The runtime's root: every task is below it, so cancelling it cancels everything.
    pub fn new_root(rt: Weak<Shared>) -> Arc<Self> {
        Arc::new(Self::make(None, RegKey::MAX, rt))
    }

    fn make(parent: Option<Arc<CancelNode>>, owner: RegKey, rt: Weak<Shared>) -> Self {
        Self {
            parent,
            owner,
            rt,
            cancel_called: AtomicBool::new(false),
            reason: OnceLock::new(),
            shield: AtomicBool::new(false),
            deadline: AtomicU64::new(f64::INFINITY.to_bits()),
            children: Mutex::new(Children::default()),
            slot_in_parent: AtomicUsize::new(NO_SLOT),
        }
    }

    /// A node under `parent`, owned by task `owner`, registered so cancels reach it.
    ///
    /// Children of the runtime's root are not listed: cancelling the root reaches every task
    /// through the registry instead, which spares each spawn a global lock.
    pub fn new_child(parent: &Arc<CancelNode>, owner: RegKey) -> Arc<Self> {
        let node = Arc::new(Self::make(Some(parent.clone()), owner, parent.rt.clone()));
        if !parent.is_root() {
            let slot = lock(&parent.children).insert(Arc::downgrade(&node));
            node.slot_in_parent.store(slot, Ordering::Release);
        }
        node
    }

    fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    pub fn parent(&self) -> Option<&Arc<CancelNode>> {
        self.parent.as_ref()
    }

    /// Unregisters from the parent; called when the scope exits or the task ends.
    pub fn detach(&self) {
        let slot = self.slot_in_parent.swap(NO_SLOT, Ordering::AcqRel);
        if let (Some(parent), true) = (&self.parent, slot != NO_SLOT) {
            lock(&parent.children).remove(slot);
        }
    }

    pub fn cancel_called(&self) -> bool {
        self.cancel_called.load(Ordering::Acquire)
    }

    pub fn shielded(&self) -> bool {
        self.shield.load(Ordering::Acquire)
    }

    /// Is a task standing at this node cancelled?
    pub fn is_cancelled(&self) -> bool {
        let mut node = self;
        loop {
            if node.cancel_called() {
                return true;
            }
            if node.shielded() {
                return false;
            }
            match &node.parent {
                Some(p) => node = p,
                None => return false,
            }
        }
    }

    /// Would a cancellation from above this node reach it? (trio's
    /// `parent_cancellation_is_visible_to_us`)
    pub fn parent_cancel_visible(&self) -> bool {
        !self.shielded() && self.parent.as_ref().is_some_and(|p| p.is_cancelled())
    }

    /// Cancels, recording `reason` for the `Cancelled` it raises (the first reason given wins).
    pub fn cancel_because(self: &Arc<Self>, py: Python<'_>, reason: Option<&str>) {
        if let Some(reason) = reason {
            let _ = self.reason.set(reason.into());
        }
        self.cancel(py);
    }

    /// The reason of the cancelled scope that reaches a task standing here, if one was given.
    pub fn cancel_reason(&self) -> Option<String> {
        let mut node = self;
        loop {
            if node.cancel_called() {
                return node.reason.get().map(|r| r.to_string());
            }
            if node.shielded() {
                return None;
            }
            match &node.parent {
                Some(p) => node = p,
                None => return None,
            }
        }
    }

    pub fn cancel(self: &Arc<Self>, py: Python<'_>) {
        if !self.cancel_called.swap(true, Ordering::AcqRel) {
            self.poke_subtree(py);
        }
    }

    pub fn set_shield(self: &Arc<Self>, py: Python<'_>, shield: bool) {
        let was = self.shield.swap(shield, Ordering::AcqRel);
        if was && !shield {
            // Dropping a shield can expose a cancellation from above.
            self.poke_subtree(py);
        }
    }

    pub fn deadline(&self) -> f64 {
        f64::from_bits(self.deadline.load(Ordering::Acquire))
    }

    pub fn set_deadline(&self, deadline: f64) {
        self.deadline.store(deadline.to_bits(), Ordering::Release);
    }

    /// The earliest deadline that applies here; -inf if already cancelled.
    pub fn effective_deadline(&self) -> f64 {
        let mut best = f64::INFINITY;
        let mut node = self;
        loop {
            if node.cancel_called() {
                return f64::NEG_INFINITY;
            }
            best = best.min(node.deadline());
            if node.shielded() {
                return best;
            }
            match &node.parent {
                Some(p) => node = p,
                None => return best,
            }
        }
    }

    /// Wakes the owners of this node and of every node below it, not crossing shields.
    fn poke_subtree(self: &Arc<Self>, py: Python<'_>) {
        let Some(rt) = self.rt.upgrade() else { return };
        if self.is_root() {
            // Everything is below the root; a woken task works out for itself whether a
            // shield keeps the cancellation out.
            for task in rt.registry.all(py) {
                Task::wake_cancelled(py, task);
            }
            return;
        }
        let mut stack = vec![self.clone()];
        let mut owners = Vec::new();
        while let Some(node) = stack.pop() {
            owners.push(node.owner);
            stack.extend(lock(&node.children).live().filter(|c| !c.shielded()));
        }
        owners.sort_unstable();
        owners.dedup();
        for id in owners {
            if let Some(task) = rt.registry.get(py, id) {
                Task::wake_cancelled(py, task);
            }
        }
    }
}
