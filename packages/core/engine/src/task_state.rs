//! A task's run state, one atomic word.
//!
//! A task is idle (parked), scheduled (in a run queue), running, or done. A wake-up that arrives
//! while the task runs sets NOTIFIED, and the worker reschedules the task when the step ends
//! instead of parking it: that is how a wake-up racing a step is never lost. Only the thread
//! that moved a task to SCHEDULED may enqueue it, so a task is never in two queues at once.

use crate::loom::sync::atomic::{AtomicUsize, Ordering};

const SCHEDULED: usize = 1;
const RUNNING: usize = 2;
const NOTIFIED: usize = 4;
const DONE: usize = 8;

/// How a step ended, from [`TaskState::end_step`].
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RunEnd {
    /// The task is parked; a later wake-up will schedule it.
    Parked,
    /// A wake-up arrived during the step: the task is SCHEDULED again and the caller enqueues it.
    Reschedule,
}

#[derive(Debug)]
pub struct TaskState(AtomicUsize);

impl Default for TaskState {
    fn default() -> Self {
        Self::new_scheduled()
    }
}

impl TaskState {
    /// New tasks start scheduled: the spawner enqueues them.
    pub fn new_scheduled() -> Self {
        Self(AtomicUsize::new(SCHEDULED))
    }

    /// Asks for the task to run. True means the caller moved it to SCHEDULED and must enqueue it.
    pub fn wake(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let next = if cur & DONE != 0 || cur & SCHEDULED != 0 {
                return false;
            } else if cur & RUNNING != 0 {
                if cur & NOTIFIED != 0 {
                    return false;
                }
                cur | NOTIFIED
            } else {
                SCHEDULED
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == SCHEDULED,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Called by the worker that dequeued the task.
    pub fn start_step(&self) {
        let prev = self.0.swap(RUNNING, Ordering::AcqRel);
        debug_assert_eq!(prev, SCHEDULED, "a task ran without being scheduled");
    }

    /// Called when a step parked the task.
    pub fn end_step(&self) -> RunEnd {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (next, end) = if cur & NOTIFIED != 0 {
                (SCHEDULED, RunEnd::Reschedule)
            } else {
                (0, RunEnd::Parked)
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return end,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Called when the step finished the task (returned or raised).
    pub fn finish(&self) {
        self.0.store(DONE, Ordering::Release);
    }

    /// Parked: not queued, not running, not finished (it waits for a wake-up).
    pub fn is_parked(&self) -> bool {
        self.0.load(Ordering::Acquire) == 0
    }

    pub fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire) & DONE != 0
    }

    /// In the middle of a step on some thread.
    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::Acquire) & RUNNING != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn wake_while_running_reschedules() {
        let s = TaskState::new_scheduled();
        assert!(!s.wake(), "already scheduled");
        assert!(!s.is_running());
        s.start_step();
        assert!(s.is_running());
        assert!(!s.wake(), "running: only marks notified");
        assert!(s.is_running());
        assert_eq!(s.end_step(), RunEnd::Reschedule);
        assert!(!s.is_running(), "rescheduled, not running");
        s.start_step();
        assert_eq!(s.end_step(), RunEnd::Parked);
        assert!(s.wake(), "parked: the waker enqueues");
        assert!(!s.wake());
        s.start_step();
        s.finish();
        assert!(!s.wake(), "done tasks never run again");
        assert!(s.is_done());
    }
}
