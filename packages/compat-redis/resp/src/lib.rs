//! `manyio_redis._resp`: RESP replies and commands for redis-py, in Rust.
//!
//! redis-py without hiredis (which turns the GIL back on) parses every reply and packs every
//! command in Python, a dozen calls per command. This module does both for the adapter's
//! parsers and `pack_command`, returning exactly the objects redis-py's Python code would.
//! Nothing here keeps state between calls except a parser's settings, so any thread may call
//! in at any time.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyByteArrayMethods, PyList, PyTuple};

mod build;
mod pack;
mod scan;

use build::{Builder, Built, Decoding};
use scan::Scan;

/// Returned by [`ReplyParser::parse`] while the buffer holds less than one reply.
#[pyclass(frozen, module = "manyio_redis._resp")]
struct Incomplete;

#[pymethods]
impl Incomplete {
    fn __repr__(&self) -> &'static str {
        "INCOMPLETE"
    }
}

fn incomplete(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static CELL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CELL.get_or_try_init(py, || Ok::<_, PyErr>(Py::new(py, Incomplete)?.into_any()))
        .map(|p| p.clone_ref(py))
}

/// A RESP3 push message (`>`): redis-py hands these to its push handlers.
#[pyclass(frozen, module = "manyio_redis._resp")]
struct Push {
    #[pyo3(get)]
    data: Py<PyList>,
}

/// One connection's reply parser settings: protocol, codec, and how error replies become
/// redis-py's exception objects.
#[pyclass(frozen, module = "manyio_redis._resp")]
struct ReplyParser {
    resp3: bool,
    decoding: Option<Decoding>,
    on_error: Py<PyAny>,
    raise_class: Py<PyAny>,
    invalid_class: Py<PyAny>,
}

#[pymethods]
impl ReplyParser {
    #[new]
    #[pyo3(signature = (*, resp3, encoding, errors, on_error, raise_class, invalid_class))]
    fn new(
        resp3: bool,
        encoding: Option<&str>,
        errors: &str,
        on_error: Py<PyAny>,
        raise_class: Py<PyAny>,
        invalid_class: Py<PyAny>,
    ) -> PyResult<Self> {
        let decoding = match encoding {
            Some(e) => Some(Decoding {
                encoding: CString::new(e)?,
                errors: CString::new(errors)?,
            }),
            None => None,
        };
        Ok(Self {
            resp3,
            decoding,
            on_error,
            raise_class,
            invalid_class,
        })
    }

    /// Takes the first complete reply off the front of `buf` and returns it as redis-py would
    /// (`decode`: strings as `str` when the parser has an encoding); a `Push` for a RESP3 push
    /// message; `INCOMPLETE` (leaving `buf` alone) while the reply has not fully arrived.
    fn parse<'py>(
        &self,
        py: Python<'py>,
        buf: &Bound<'py, PyByteArray>,
        decode: bool,
    ) -> PyResult<Py<PyAny>> {
        // The scan and the copy run inside the bytearray's critical section, so no other
        // thread resizes it under us; building objects (which may run Python) happens after.
        let scanned = pyo3::sync::critical_section::with_critical_section(buf.as_any(), || {
            // SAFETY: the critical section excludes every other access to the bytearray, and
            // nothing in this closure calls into Python.
            let bytes = unsafe { buf.as_bytes() };
            match scan::scan(bytes, self.resp3) {
                Scan::Complete(end) => Ok(Some(bytes[..end].to_vec())),
                Scan::Incomplete => Ok(None),
                Scan::Invalid(why, raw) => Err((why, raw)),
            }
        });
        let reply = match scanned {
            Ok(Some(reply)) => reply,
            Ok(None) => return incomplete(py),
            Err((why, raw)) => {
                let raw = pyo3::types::PyBytes::new(py, raw.as_slice()).repr()?;
                // redis-py's own wording, plus the reason when it is not a bad type byte.
                let message = match why {
                    "" => format!("Protocol Error: {raw}"),
                    _ => format!("Protocol Error: {raw} ({why})"),
                };
                return Err(PyErr::from_value(
                    self.invalid_class.bind(py).call1((message,))?,
                ));
            }
        };
        // SAFETY: `buf` is a bytearray and the range lies within it.
        if unsafe { pyo3::ffi::PySequence_DelSlice(buf.as_ptr(), 0, reply.len() as isize) } < 0 {
            return Err(PyErr::fetch(py));
        }
        let mut builder = Builder {
            py,
            buf: &reply,
            pos: 0,
            decoding: if decode { self.decoding.as_ref() } else { None },
            on_error: self.on_error.bind(py),
            raise_class: self.raise_class.bind(py),
        };
        Ok(match builder.reply()? {
            Built::Value(v) => v.unbind(),
            Built::Push(list) => Py::new(
                py,
                Push {
                    data: list.unbind(),
                },
            )?
            .into_any(),
        })
    }
}

/// redis-py's `pack_command(*args)` for an `Encoder(encoding, errors)`, cutting at `cutoff`;
/// None when redis-py's own encoder must do it (an argument other than exact bytes, str, int
/// and float, or codec names with a NUL in them).
#[pyfunction]
fn pack_command<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    encoding: &str,
    errors: &str,
    cutoff: usize,
) -> PyResult<Option<Bound<'py, PyList>>> {
    match pack::Codec::new(encoding, errors) {
        Some(codec) => pack::pack(py, args, &codec, cutoff),
        None => Ok(None),
    }
}

#[pymodule(gil_used = false)]
mod _resp {
    use super::*;

    #[pymodule_export]
    use super::{pack_command, Incomplete, Push, ReplyParser};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("INCOMPLETE", incomplete(m.py())?)?;
        m.add("MAX_DEPTH", scan::MAX_DEPTH)
    }
}
