//! What resuming a coroutine once gave back: shared by the scheduler and by `Serialized`.

use std::ptr;

use pyo3::exceptions::PyStopIteration;
use pyo3::ffi;
use pyo3::prelude::*;

pub enum Stepped {
    Yielded(Py<PyAny>),
    Returned(Py<PyAny>),
    Raised(PyErr),
}

impl Stepped {
    /// `coro.send(value)`, through `PyIter_Send`: a return costs no StopIteration object.
    pub fn send(py: Python<'_>, coro: &Py<PyAny>, value: &Py<PyAny>) -> Self {
        let mut out: *mut ffi::PyObject = ptr::null_mut();
        // SAFETY: coro and value are live references; PyIter_Send stores a new reference in
        // `out` for RETURN and NEXT, and sets an exception for ERROR.
        let r = unsafe { ffi::PyIter_Send(coro.as_ptr(), value.as_ptr(), &mut out) };
        if r == ffi::PySendResult::PYGEN_ERROR {
            return Self::Raised(PyErr::fetch(py));
        }
        // SAFETY: see above: `out` is a new, non-null reference here.
        let v = unsafe { Bound::from_owned_ptr(py, out) }.unbind();
        if r == ffi::PySendResult::PYGEN_RETURN {
            Self::Returned(v)
        } else {
            Self::Yielded(v)
        }
    }

    /// What a call of `coro.throw(...)` returned (a yield) or raised (StopIteration: a return).
    pub fn of_throw(py: Python<'_>, result: PyResult<Bound<'_, PyAny>>) -> Self {
        match result {
            Ok(v) => Self::Yielded(v.unbind()),
            Err(e) if e.is_instance_of::<PyStopIteration>(py) => {
                let value = e
                    .value(py)
                    .getattr("value")
                    .map(Bound::unbind)
                    .unwrap_or_else(|_| py.None());
                Self::Returned(value)
            }
            Err(e) => Self::Raised(e),
        }
    }
}
