//! Turns the bytes of one complete, already scanned reply into the Python objects redis-py's
//! own parsers return for it.

use std::ffi::CString;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList};

use crate::scan::{length, line};

/// How bulk and simple strings come out: `bytes`, or `str` through a codec.
pub struct Decoding {
    pub encoding: CString,
    pub errors: CString,
}

pub struct Builder<'a, 'py> {
    pub py: Python<'py>,
    pub buf: &'a [u8],
    pub pos: usize,
    /// Some when this reply's strings are decoded.
    pub decoding: Option<&'a Decoding>,
    /// `parse_error(message)`: the error object an error reply stands for.
    pub on_error: &'a Bound<'py, PyAny>,
    /// Error objects of this class are raised rather than returned (redis-py raises its
    /// `ConnectionError`s at once, even inside an aggregate).
    pub raise_class: &'a Bound<'py, PyAny>,
}

/// A reply as built: a push (RESP3 `>`) is handed to redis-py's push handlers, not returned.
pub enum Built<'py> {
    Value(Bound<'py, PyAny>),
    Push(Bound<'py, PyList>),
}

impl<'a, 'py> Builder<'a, 'py> {
    /// The next line's type byte and body; the scan has vouched for its shape.
    fn header(&mut self) -> (u8, &'a [u8]) {
        let buf: &'a [u8] = self.buf;
        let (end, next) = line(buf, self.pos).expect("scanned");
        let (kind, body) = (buf[self.pos], &buf[self.pos + 1..end]);
        self.pos = next;
        (kind, body)
    }

    fn bulk(&mut self, body: &[u8]) -> &'a [u8] {
        let n = length(body).expect("scanned") as usize;
        let buf: &'a [u8] = self.buf;
        let data = &buf[self.pos..self.pos + n];
        self.pos += n + 2;
        data
    }

    fn string(&self, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let Some(d) = self.decoding else {
            return Ok(PyBytes::new(self.py, data).into_any());
        };
        // SAFETY: a valid pointer and length; the codec names are NUL-terminated.
        unsafe {
            let s = pyo3::ffi::PyUnicode_Decode(
                data.as_ptr().cast(),
                data.len() as isize,
                d.encoding.as_ptr(),
                d.errors.as_ptr(),
            );
            Bound::from_owned_ptr_or_err(self.py, s)
        }
    }

    fn error(&self, message: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: a valid pointer and length; "replace" is NUL-terminated.
        let message = unsafe {
            let s = pyo3::ffi::PyUnicode_DecodeUTF8(
                message.as_ptr().cast(),
                message.len() as isize,
                c"replace".as_ptr(),
            );
            Bound::from_owned_ptr_or_err(self.py, s)?
        };
        let error = self.on_error.call1((message,))?;
        if error.is_instance(self.raise_class)? {
            return Err(PyErr::from_value(error));
        }
        Ok(error)
    }

    /// `int(body)` as Python computes it (big numbers and odd spellings included).
    fn int(&self, body: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        match std::str::from_utf8(body)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(n) => Ok(n.into_pyobject(self.py)?.into_any()),
            None => self
                .py
                .get_type::<PyInt>()
                .call1((PyBytes::new(self.py, body),)),
        }
    }

    fn elements(&mut self, body: &[u8]) -> PyResult<Option<Bound<'py, PyList>>> {
        let n = length(body).expect("scanned");
        if n < 0 {
            return Ok(None);
        }
        let list = PyList::empty(self.py);
        for _ in 0..n {
            list.append(self.nested()?)?;
        }
        Ok(Some(list))
    }

    /// An element inside an aggregate: a push there is kept as a plain list (Redis only sends
    /// pushes at the top level).
    fn nested(&mut self) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.reply()? {
            Built::Value(v) => v,
            Built::Push(list) => list.into_any(),
        })
    }

    pub fn reply(&mut self) -> PyResult<Built<'py>> {
        let py = self.py;
        let (kind, body) = self.header();
        let value = match kind {
            b'+' => self.string(body)?,
            b'-' => self.error(body)?,
            b':' | b'(' => self.int(body)?,
            b'_' => py.None().into_bound(py),
            b',' => py.get_type::<PyFloat>().call1((PyBytes::new(py, body),))?,
            b'#' => (body == b"t").into_pyobject(py)?.to_owned().into_any(),
            b'$' if body == b"-1" => py.None().into_bound(py),
            b'$' => {
                let data = self.bulk(body);
                self.string(data)?
            }
            b'=' => {
                // "txt:" or "mkd:" and then the text; redis-py drops the format.
                let data = self.bulk(body);
                self.string(data.get(4..).unwrap_or_default())?
            }
            b'!' => {
                let data = self.bulk(body);
                self.error(data)?
            }
            b'*' | b'~' => match self.elements(body)? {
                Some(list) => list.into_any(),
                None => py.None().into_bound(py),
            },
            b'>' => {
                let list = self.elements(body)?.unwrap_or_else(|| PyList::empty(py));
                return Ok(Built::Push(list));
            }
            b'%' => {
                let n = length(body).expect("scanned");
                let dict = PyDict::new(py);
                for _ in 0..n {
                    let key = self.nested()?;
                    let value = self.nested()?;
                    dict.set_item(key, value)?;
                }
                dict.into_any()
            }
            _ => return Err(PyValueError::new_err("unscanned reply type")),
        };
        Ok(Built::Value(value))
    }
}
