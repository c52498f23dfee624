//! The driver: the `mio::Poll` that a sleeping worker blocks in, so that timers (and, with the
//! I/O layer, readiness events) wake the runtime without a dedicated thread.
//!
//! Only one worker at a time holds the driver; it is moved out of its slot while held, which is
//! what lets a worker release the interpreter while blocked in it.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use manyio_engine::Unblock;
use mio::{Events, Poll, Registry, Token, Waker};

pub const WAKER_TOKEN: Token = Token(usize::MAX);

/// One readiness event: (token, readable, writable). Errors and hang-ups count as both, so
/// the waiting operation runs and reports the error itself.
pub type Ready = (Token, bool, bool);

pub struct Driver {
    poll: Poll,
    events: Events,
    ready: Vec<Ready>,
}

impl Driver {
    /// The driver, the waker that interrupts it, and a registry handle for the reactor.
    pub fn new() -> io::Result<(Self, Waker, Registry)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let registry = poll.registry().try_clone()?;
        Ok((
            Self {
                poll,
                events: Events::with_capacity(256),
                ready: Vec::new(),
            },
            waker,
            registry,
        ))
    }

    /// Blocks until an event, a wake-up, or the timeout; keeps the readiness events for
    /// [`Driver::take_ready`] (dispatching them needs the interpreter, polling must not hold it).
    pub fn poll(&mut self, timeout: Option<Duration>) {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => eprintln!("manyio: poll failed: {e}"),
        }
        for ev in self.events.iter() {
            if ev.token() == WAKER_TOKEN {
                continue;
            }
            let broken = ev.is_error() || ev.is_read_closed() && ev.is_write_closed();
            self.ready.push((
                ev.token(),
                ev.is_readable() || ev.is_read_closed() || broken,
                ev.is_writable() || ev.is_write_closed() || broken,
            ));
        }
    }

    pub fn take_ready(&mut self) -> Vec<Ready> {
        std::mem::take(&mut self.ready)
    }
}

/// Interrupts the worker blocked in the driver, counting how often (`manyio.stats()`).
pub struct DriverWaker<'a> {
    pub waker: &'a Waker,
    pub count: &'a AtomicU64,
}

impl Unblock for DriverWaker<'_> {
    fn unblock(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.waker.wake() {
            eprintln!("manyio: could not wake the poller: {e}");
        }
    }
}
