//! A one-shot cell that a parked task waits on.
//!
//! A producer (an event being set, a timer firing, a lock being handed over) calls
//! [`Completion::complete`]; the waiting task, when it is cancelled, calls
//! [`Completion::try_abort`]. The mutex makes the two mutually exclusive, so a value handed to
//! an aborted waiter comes back to the producer (which then gives it to the next waiter) and a
//! waiter that got its value never also raises `Cancelled`.

use crate::loom::{lock, sync::Mutex};

enum State<T> {
    Pending,
    Done(T),
    Taken,
    Aborted,
}

struct Inner<T, W> {
    state: State<T>,
    waker: Option<W>,
}

/// What [`Completion::register`] found.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Registered {
    /// Still pending: the waker was stored and will be returned by `complete`.
    Waiting,
    /// Already completed or aborted: the caller should not sleep.
    Ready,
}

pub struct Completion<T, W> {
    inner: Mutex<Inner<T, W>>,
}

impl<T, W> Default for Completion<T, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, W> Completion<T, W> {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: State::Pending,
                waker: None,
            }),
        }
    }

    /// A cell that is complete from the start.
    pub fn ready(value: T) -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: State::Done(value),
                waker: None,
            }),
        }
    }

    /// Stores `value` if the cell is still pending and returns the waker to wake.
    /// If the waiter already aborted (or another producer won), the value is handed back.
    pub fn complete(&self, value: T) -> Result<Option<W>, T> {
        let mut inner = lock(&self.inner);
        match inner.state {
            State::Pending => {
                inner.state = State::Done(value);
                Ok(inner.waker.take())
            }
            _ => Err(value),
        }
    }

    /// Records who to wake. Replaces an earlier waker (a task re-parking on the same cell).
    pub fn register(&self, waker: W) -> Registered {
        let mut inner = lock(&self.inner);
        match inner.state {
            State::Pending => {
                inner.waker = Some(waker);
                Registered::Waiting
            }
            _ => Registered::Ready,
        }
    }

    /// Gives up waiting. True if the cell was still pending (it is now aborted, and no value
    /// will ever be stored); false if a value arrived first.
    pub fn try_abort(&self) -> bool {
        let mut inner = lock(&self.inner);
        match inner.state {
            State::Pending => {
                inner.state = State::Aborted;
                inner.waker = None;
                true
            }
            _ => false,
        }
    }

    /// Takes the stored value, once.
    pub fn take(&self) -> Option<T> {
        let mut inner = lock(&self.inner);
        match std::mem::replace(&mut inner.state, State::Taken) {
            State::Done(v) => Some(v),
            other => {
                inner.state = other;
                None
            }
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(lock(&self.inner).state, State::Pending)
    }

    pub fn is_done(&self) -> bool {
        matches!(lock(&self.inner).state, State::Done(_))
    }

    pub fn is_aborted(&self) -> bool {
        matches!(lock(&self.inner).state, State::Aborted)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn complete_then_take() {
        let c: Completion<u32, &str> = Completion::new();
        assert_eq!(c.register("t"), Registered::Waiting);
        assert_eq!(c.complete(7), Ok(Some("t")));
        assert!(c.is_done());
        assert!(!c.try_abort());
        assert_eq!(c.take(), Some(7));
        assert_eq!(c.take(), None);
    }

    #[test]
    fn abort_returns_value_to_producer() {
        let c: Completion<u32, ()> = Completion::new();
        assert!(c.try_abort());
        assert_eq!(c.complete(1), Err(1));
        assert_eq!(c.register(()), Registered::Ready);
        assert!(c.is_aborted());
    }

    #[test]
    fn ready_cell_does_not_wait() {
        let c: Completion<u32, ()> = Completion::ready(3);
        assert_eq!(c.register(()), Registered::Ready);
        assert_eq!(c.take(), Some(3));
    }
}
