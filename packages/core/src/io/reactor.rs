//! Readiness waits on file descriptors, on top of the mio poller the driver blocks in.
//!
//! mio is edge-triggered: an fd reports "became readable" once. A wait therefore registers its
//! waiter first and then asks the kernel (`poll(2)`, zero timeout) whether the fd is ready
//! already; an edge that fired before the waiter existed is caught by that check, and one that
//! fires after it completes the waiter. No readiness state is cached, so a stale "readable"
//! can never let a wait through early.
//!
//! One waiter per fd and direction: a second task waiting to read the same fd gets
//! `BusyResourceError` rather than silently never waking. `notify_closing` wakes both waiters
//! with `ClosedResourceError` and forgets the fd before the caller closes it.
//!
//! The fd is registered with epoll on first use and stays registered until it is closed (the
//! kernel drops a closed fd's registration). `notify_closing` marks the fd as closing: a wait
//! that starts afterwards (even one racing the notification on another worker) finds the mark
//! and fails with `ClosedResourceError` instead of sleeping on an fd about to close. When the
//! number is reused by a new file, registering it succeeds afresh (rather than EEXIST), and
//! that clears the mark.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use manyio_engine::Completion;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use pyo3::prelude::*;

use crate::outcome::Outcome;
use crate::sync::waiter::{complete_slot, WaitSlot, Waiter};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    Read,
    Write,
}

/// A parked waiter and the poll sequence number current when it registered.
type Parked = (Arc<WaitSlot>, u64);

#[derive(Default)]
struct FdWaiters {
    read: Option<Parked>,
    write: Option<Parked>,
    closing: bool,
}

impl FdWaiters {
    fn slot(&mut self, dir: Direction) -> &mut Option<Parked> {
        match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }
}

pub enum WaitError {
    Busy,
    Closed,
    Os(io::Error),
}

enum Registration {
    /// Newly added to epoll: a new file, whatever the number was used for before.
    Fresh,
    /// Already registered: the same file as before.
    Existing,
    /// Cannot be polled (regular files): always ready.
    Unpollable,
}

pub struct Reactor {
    registry: Registry,
    fds: Mutex<HashMap<RawFd, FdWaiters>>,
    /// Bumped as each poll starts. Events are dispatched after the poll returns, possibly
    /// after another task consumed the data and parked again; a waiter that registered after
    /// the poll began is only woken if `poll(2)` confirms the fd is ready (no stale wake-ups).
    poll_seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Asks the kernel whether `fd` is ready for `dir` right now (errors and hang-ups count: the
/// operation will not block, it will fail).
fn ready_now(fd: RawFd, dir: Direction) -> bool {
    let events = match dir {
        Direction::Read => libc::POLLIN,
        Direction::Write => libc::POLLOUT,
    };
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (events | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
}

impl Reactor {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            fds: Mutex::new(HashMap::new()),
            poll_seq: AtomicU64::new(0),
        }
    }

    fn ensure_registered(&self, fd: RawFd) -> io::Result<Registration> {
        let token = Token(fd as usize);
        match self.registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            Ok(()) => Ok(Registration::Fresh),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(Registration::Existing),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(Registration::Unpollable),
            Err(e) => Err(e),
        }
    }

    /// A waiter that completes when `fd` is ready for `dir`.
    pub fn wait(
        self: &Arc<Self>,
        py: Python<'_>,
        fd: RawFd,
        dir: Direction,
    ) -> Result<Waiter, WaitError> {
        if fd < 0 {
            return Err(WaitError::Os(io::Error::from_raw_os_error(libc::EBADF)));
        }
        let registration = self.ensure_registered(fd).map_err(WaitError::Os)?;
        if let Registration::Unpollable = registration {
            return Ok(Waiter::ready(py, None));
        }
        let slot: Arc<WaitSlot> = Arc::new(Completion::new());
        {
            let mut fds = lock(&self.fds);
            let waiters = fds.entry(fd).or_default();
            match registration {
                Registration::Fresh => waiters.closing = false,
                _ if waiters.closing => return Err(WaitError::Closed),
                _ => {}
            }
            let entry = waiters.slot(dir);
            if entry.as_ref().is_some_and(|(s, _)| s.is_pending()) {
                return Err(WaitError::Busy);
            }
            *entry = Some((slot.clone(), self.poll_seq.load(Ordering::Acquire)));
        }
        if ready_now(fd, dir) {
            self.take_and_complete(py, fd, dir, None);
        }
        let weak: Weak<Reactor> = Arc::downgrade(self);
        let mine = Arc::downgrade(&slot);
        Ok(Waiter::new(
            slot,
            Some(Box::new(move || {
                if let Some(r) = weak.upgrade() {
                    r.forget_waiter(fd, dir, &mine);
                }
            })),
        ))
    }

    /// Called by the driver as a poll starts; returns that poll's sequence number.
    pub fn begin_poll(&self) -> u64 {
        self.poll_seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Called for each event of the poll numbered `seq`, with the interpreter attached.
    pub fn dispatch(&self, py: Python<'_>, seq: u64, token: Token, readable: bool, writable: bool) {
        let fd = token.0 as RawFd;
        for (ready, dir) in [(readable, Direction::Read), (writable, Direction::Write)] {
            if !ready {
                continue;
            }
            let slot = {
                let mut fds = lock(&self.fds);
                let Some(entry) = fds.get_mut(&fd).map(|w| w.slot(dir)) else {
                    continue;
                };
                match entry {
                    // Registered after this poll began: the event may be for data another
                    // task already consumed. Wake only if the fd really is ready.
                    Some((_, registered)) if *registered >= seq && !ready_now(fd, dir) => None,
                    _ => entry.take(),
                }
            };
            if let Some((slot, _)) = slot {
                complete_slot(py, &slot, None);
            }
        }
    }

    fn take_and_complete(
        &self,
        py: Python<'_>,
        fd: RawFd,
        dir: Direction,
        outcome: Option<Outcome>,
    ) {
        let slot = lock(&self.fds)
            .get_mut(&fd)
            .and_then(|w| w.slot(dir).take());
        if let Some((slot, _)) = slot {
            complete_slot(py, &slot, outcome);
        }
    }

    fn forget_waiter(&self, fd: RawFd, dir: Direction, mine: &Weak<WaitSlot>) {
        let mut fds = lock(&self.fds);
        if let Some(w) = fds.get_mut(&fd) {
            let entry = w.slot(dir);
            if entry
                .as_ref()
                .is_some_and(|(s, _)| Weak::ptr_eq(&Arc::downgrade(s), mine))
            {
                *entry = None;
            }
        }
    }

    /// The fd is about to be closed: wake its waiters with `closed`, and make waits that
    /// start from now on fail the same way (until the number is reused by a new file).
    pub fn notify_closing(&self, py: Python<'_>, fd: RawFd, closed: impl Fn() -> Outcome) {
        // Registered now if it was not yet, so that a later wait finds it "existing" (and
        // closing) rather than "fresh" (a new file that reused the number).
        let _ = self.ensure_registered(fd);
        let slots = {
            let mut fds = lock(&self.fds);
            let w = fds.entry(fd).or_default();
            w.closing = true;
            [w.read.take(), w.write.take()]
        };
        for (slot, _) in slots.into_iter().flatten() {
            complete_slot(py, &slot, Some(closed()));
        }
    }
}
