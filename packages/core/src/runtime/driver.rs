//! The driver: the `mio::Poll` that a sleeping worker blocks in, so that timers (and, with the
//! I/O layer, readiness events) wake the runtime without a dedicated thread.
//!
//! Only one worker at a time holds the driver; it is moved out of its slot while held, which is
//! what lets a worker release the interpreter while blocked in it.

use std::io;
use std::time::Duration;

use manyio_engine::Unblock;
use mio::{Events, Poll, Token, Waker};

pub const WAKER_TOKEN: Token = Token(usize::MAX);

pub struct Driver {
    poll: Poll,
    events: Events,
}

impl Driver {
    pub fn new() -> io::Result<(Self, Waker)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok((
            Self {
                poll,
                events: Events::with_capacity(256),
            },
            waker,
        ))
    }

    /// Blocks until an event, a wake-up, or the timeout.
    pub fn poll(&mut self, timeout: Option<Duration>) {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => eprintln!("manyio: poll failed: {e}"),
        }
    }
}

/// Interrupts the worker blocked in the driver.
pub struct DriverWaker<'a>(pub &'a Waker);

impl Unblock for DriverWaker<'_> {
    fn unblock(&self) {
        if let Err(e) = self.0.wake() {
            eprintln!("manyio: could not wake the poller: {e}");
        }
    }
}
