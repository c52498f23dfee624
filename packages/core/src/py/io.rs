//! `wait_readable`, `wait_writable`, `notify_closing`: readiness of any file descriptor.

use std::os::fd::RawFd;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::errors;
use crate::io::reactor::{Direction, WaitError};
use crate::outcome::Outcome;
use crate::runtime::worker;
use crate::sync::waiter::Waiter;

/// An int, or an object with `fileno()` (a socket, a file).
fn as_fd(obj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    if let Ok(fd) = obj.extract::<RawFd>() {
        return Ok(fd);
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
