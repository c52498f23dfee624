//! `wait_readable`, `wait_writable`, `notify_closing`: readiness of any file descriptor.

use std::cell::RefCell;
use std::os::fd::RawFd;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};

use crate::errors;
use crate::io::reactor::{Direction, WaitError};
use crate::outcome::Outcome;
use crate::runtime::worker;
use crate::sync::waiter::Waiter;

/// An int, or an object with `fileno()` (a socket, a file).
fn as_fd(obj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    // A type check first: a failed `extract` builds a Python TypeError, and most callers
    // pass a socket (redis-py's reads made one per system call).
    if obj.is_instance_of::<PyInt>() {
        return obj.extract();
    }
    obj.call_method0("fileno")?.extract()
}

fn wait(py: Python<'_>, obj: &Bound<'_, PyAny>, dir: Direction, what: &str) -> PyResult<Waiter> {
    let rt = worker::current_runtime(py, what)?;
    let fd = as_fd(obj)?;
    rt.reactor.wait(py, fd, dir).map_err(|e| match e {
        WaitError::Busy => errors::busy(match dir {
            Direction::Read => "another task is already waiting to read from this file descriptor",
            Direction::Write => "another task is already waiting to write to this file descriptor",
        }),
        WaitError::Closed => match errors::closed_resource(py) {
            Ok(e) => PyErr::from_value(e),
            Err(e) => e,
        },
        WaitError::Os(e) => PyOSError::new_err((e.raw_os_error().unwrap_or(0), e.to_string())),
    })
}

/// Waits until `fd` (an int or an object with `fileno()`) is readable.
#[pyfunction]
pub fn wait_readable(py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<Waiter> {
    wait(py, fd, Direction::Read, "manyio.wait_readable()")
}

/// Waits until `fd` (an int or an object with `fileno()`) is writable.
#[pyfunction]
pub fn wait_writable(py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<Waiter> {
    wait(py, fd, Direction::Write, "manyio.wait_writable()")
}

/// Receives up to `max_bytes` (at most 64 KiB a call) from a socket without waiting: the
/// bytes (``b""`` at end of stream), or None when nothing has arrived. Other errors raise
/// ``OSError``.
///
/// What ``sock.recv`` does on a non-blocking socket, minus the ``BlockingIOError``. Readers
/// that look before they wait (``manyio.sockets.recv``, ``SocketStream.receive_nowait``, the
/// redis adapter) mostly find nothing, and each miss built, raised and caught an exception
/// whose message goes through ``strerror``.
#[pyfunction]
pub fn try_recv<'py>(
    py: Python<'py>,
    sock: &Bound<'py, PyAny>,
    max_bytes: usize,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    const CHUNK: usize = 64 * 1024;
    thread_local! {
        static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
    }
    let fd = as_fd(sock)?;
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let want = max_bytes.min(CHUNK);
        // SAFETY: `buf` holds at least `want` writable bytes; MSG_DONTWAIT never blocks.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), want, libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(Some(PyBytes::new(py, &buf[..n as usize])));
        }
        match std::io::Error::last_os_error().raw_os_error() {
            // EINTR too: the caller waits for readiness, which returns at once if data is there.
            Some(libc::EAGAIN | libc::EINTR) => Ok(None),
            _ => {
                // errno is still recv's: the same OSError subclass and message as sock.recv.
                // SAFETY: sets the error indicator, which fetch takes at once.
                unsafe { pyo3::ffi::PyErr_SetFromErrno(pyo3::ffi::PyExc_OSError) };
                Err(PyErr::fetch(py))
            }
        }
    })
}

/// Call before closing `fd`: tasks waiting on it raise `ClosedResourceError`, and so do waits
/// that start afterwards (until the number is reused by a new file). Callable from any
/// thread: outside a runtime it reaches every live runtime.
#[pyfunction]
pub fn notify_closing(py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<()> {
    let fd = as_fd(fd)?;
    let runtimes = match worker::worker_runtime() {
        Some(rt) => vec![rt],
        None => crate::runtime::live_runtimes()
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect(),
    };
    for rt in runtimes {
        rt.reactor
            .notify_closing(py, fd, || match errors::closed_resource(py) {
                Ok(e) => Outcome::Error(e.unbind()),
                Err(e) => Outcome::Error(e.into_value(py).into_any()),
            });
    }
    Ok(())
}
