//! Exception classes defined in Python (`manyio._exceptions`) and raised from Rust.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static CANCELLED: PyOnceLock<Py<PyType>> = PyOnceLock::new();

pub fn cancelled_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    CANCELLED.import(py, "manyio._exceptions", "Cancelled")
}

/// A fresh `manyio.Cancelled` instance.
pub fn new_cancelled(py: Python<'_>, reason: Option<String>) -> PyResult<Bound<'_, PyAny>> {
    match reason {
        Some(reason) => cancelled_type(py)?.call1((reason,)),
        None => cancelled_type(py)?.call0(),
    }
}

pub fn is_cancelled(py: Python<'_>, exc: &Bound<'_, PyAny>) -> bool {
    match cancelled_type(py) {
        Ok(t) => exc.is_instance(t).unwrap_or(false),
        Err(_) => false,
    }
}

pyo3::create_exception!(manyio, NoRuntimeError, pyo3::exceptions::PyRuntimeError);

pub fn no_runtime(what: &str) -> PyErr {
    NoRuntimeError::new_err(format!(
        "{what} must be called from a task running on a manyio runtime \
         (start one with manyio.run(main()))"
    ))
}

fn manyio_exception<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("manyio._exceptions")?.getattr(name)
}

/// `manyio.BusyResourceError(msg)`.
pub fn busy(msg: &str) -> PyErr {
    Python::attach(|py| match manyio_exception(py, "BusyResourceError") {
        Ok(cls) => match cls.call1((msg,)) {
            Ok(e) => PyErr::from_value(e),
            Err(e) => e,
        },
        Err(e) => e,
    })
}

/// A fresh `manyio.ClosedResourceError`, for waiters on an fd being closed.
pub fn closed_resource(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    manyio_exception(py, "ClosedResourceError")?
        .call1(("the resource was closed while a task was waiting on it",))
}
