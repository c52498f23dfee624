//! Running native code inside a `contextvars.Context`, as `Context.run` does for Python
//! callables, without building its argument tuple: a task's steps and a serial loop's
//! callbacks each run in a context of their own.

use pyo3::ffi;
use pyo3::prelude::*;

/// Calls `f` with `context` entered (exited again whatever `f` did). Fails without calling
/// `f` when the context cannot be entered (it is already entered somewhere).
pub fn run_in<R>(py: Python<'_>, context: &Py<PyAny>, f: impl FnOnce() -> R) -> PyResult<R> {
    // SAFETY: `context` is a live object we hold a reference to; on success it is exited
    // below, after `f`, which fetches any error of its own.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let out = f();
    // SAFETY: entered above.
    unsafe { ffi::PyContext_Exit(context.as_ptr()) };
    Ok(out)
}
