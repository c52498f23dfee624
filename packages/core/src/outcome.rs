//! What a task or a wait ended with.

use pyo3::prelude::*;

pub enum Outcome {
    Value(Py<PyAny>),
    /// An exception instance.
    Error(Py<PyAny>),
}

impl Outcome {
    pub fn none(py: Python<'_>) -> Self {
        Outcome::Value(py.None())
    }

    pub fn from_result(py: Python<'_>, r: PyResult<Py<PyAny>>) -> Self {
        match r {
            Ok(v) => Outcome::Value(v),
            Err(e) => Outcome::Error(e.into_value(py).into_any()),
        }
    }

    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Outcome::Value(v) => Outcome::Value(v.clone_ref(py)),
            Outcome::Error(e) => Outcome::Error(e.clone_ref(py)),
        }
    }

    /// Returns the value or raises the exception.
    pub fn into_result(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Outcome::Value(v) => Ok(v),
            Outcome::Error(e) => Err(PyErr::from_value(e.into_bound(py))),
        }
    }
}
