//! Commands in RESP, byte for byte what redis-py's `pack_command` sends.
//!
//! Only the argument types redis-py's `Encoder` handles without calling back into Python are
//! packed here (exact `bytes`, `str`, `int` and `float`); for anything else the caller gets
//! `None` and uses redis-py's own code, so subclasses and errors behave as they always did.

use std::ffi::CString;
use std::io::Write;

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

/// What `bytes.split()` splits on.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn words(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|&b| is_space(b)).filter(|w| !w.is_empty())
}

/// One encoded argument: borrowed from a `bytes`/`str` it came from, or made here.
enum Arg<'py> {
    Object(Bound<'py, PyAny>, &'py [u8]),
    Owned(Vec<u8>),
}

impl Arg<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Arg::Object(_, b) => b,
            Arg::Owned(v) => v,
        }
    }
}

pub enum Codec {
    /// UTF-8 with errors="strict": what nearly every client uses, done without a codec lookup.
    Utf8Strict,
    /// Any other codec, by the names `str.encode` takes (made once per command).
    Named { encoding: CString, errors: CString },
}

impl Codec {
    /// None for names no codec can have (a NUL inside): redis-py's encoder reports those.
    pub fn new(encoding: &str, errors: &str) -> Option<Self> {
        let utf8 = ["utf-8", "utf8", "utf_8"]
            .iter()
            .any(|name| encoding.eq_ignore_ascii_case(name));
        Some(if utf8 && errors == "strict" {
            Codec::Utf8Strict
        } else {
            Codec::Named {
                encoding: CString::new(encoding).ok()?,
                errors: CString::new(errors).ok()?,
            }
        })
    }
}

/// A `str` encoded as `str.encode(encoding, errors)` would.
fn encode_str<'py>(s: &Bound<'py, PyString>, codec: &Codec) -> PyResult<Arg<'py>> {
    let (encoding, errors) = match codec {
        Codec::Named { encoding, errors } => (encoding, errors),
        Codec::Utf8Strict => {
            let mut len: isize = 0;
            // SAFETY: `s` is a str; the returned UTF-8 buffer lives as long as `s` (kept in Arg).
            let p = unsafe { pyo3::ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut len) };
            if p.is_null() {
                return Err(PyErr::fetch(s.py()));
            }
            // SAFETY: as above; `s` is immutable and owned by the Arg for 'py.
            let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) };
            return Ok(Arg::Object(s.clone().into_any(), bytes));
        }
    };
    // SAFETY: `s` is a str; the codec names are NUL-terminated.
    let encoded = unsafe {
        let b =
            pyo3::ffi::PyUnicode_AsEncodedString(s.as_ptr(), encoding.as_ptr(), errors.as_ptr());
        Bound::from_owned_ptr_or_err(s.py(), b)?
    };
    let encoded = encoded.cast_into::<PyBytes>()?;
    Ok(bytes_arg(encoded))
}

fn bytes_arg<'py>(b: Bound<'py, PyBytes>) -> Arg<'py> {
    // SAFETY: bytes are immutable; the Arg keeps the object alive for 'py.
    let data: &'py [u8] =
        unsafe { std::slice::from_raw_parts(b.as_bytes().as_ptr(), b.as_bytes().len()) };
    Arg::Object(b.into_any(), data)
}

/// The encoded argument, or None when redis-py's own encoder must handle it.
fn encode<'py>(value: &Bound<'py, PyAny>, codec: &Codec) -> PyResult<Option<Arg<'py>>> {
    if let Ok(b) = value.cast_exact::<PyBytes>() {
        return Ok(Some(bytes_arg(b.clone())));
    }
    if let Ok(s) = value.cast_exact::<PyString>() {
        return encode_str(s, codec).map(Some);
    }
    if value.is_exact_instance_of::<PyInt>() {
        return Ok(Some(Arg::Owned(match value.extract::<i64>() {
            Ok(n) => n.to_string().into_bytes(),
            Err(_) => value.repr()?.to_str()?.as_bytes().to_vec(),
        })));
    }
    if value.is_exact_instance_of::<PyFloat>() {
        return Ok(Some(Arg::Owned(
            value.repr()?.to_str()?.as_bytes().to_vec(),
        )));
    }
    Ok(None)
}

/// `pack_command(*args)` for a connection whose encoder is redis-py's `Encoder`; `cutoff` is
/// its `_buffer_cutoff`.
pub fn pack<'py>(
    py: Python<'py>,
    args: &Bound<'py, PyTuple>,
    codec: &Codec,
    cutoff: usize,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let first = args
        .get_item(0)
        .map_err(|_| PyIndexError::new_err("tuple index out of range"))?;
    // A command name with spaces ("CONFIG GET") goes out as separate arguments.
    let mut encoded: Vec<Arg<'py>> = Vec::with_capacity(args.len() + 2);
    if let Ok(s) = first.cast_exact::<PyString>() {
        let utf8 = s.to_str()?.as_bytes();
        encoded.extend(words(utf8).map(|w| Arg::Owned(w.to_vec())));
    } else if let Ok(b) = first.cast_exact::<PyBytes>() {
        if b.as_bytes().contains(&b' ') {
            encoded.extend(words(b.as_bytes()).map(|w| Arg::Owned(w.to_vec())));
        } else {
            encoded.push(bytes_arg(b.clone()));
        }
    } else {
        return Ok(None);
    }
    for value in args.iter().skip(1) {
        match encode(&value, codec)? {
            Some(arg) => encoded.push(arg),
            None => return Ok(None),
        }
    }

    let output = PyList::empty(py);
    let mut buff = Vec::with_capacity(64);
    write!(buff, "*{}\r\n", encoded.len())?;
    for arg in &encoded {
        let data = arg.bytes();
        if buff.len() > cutoff || data.len() > cutoff {
            // Large values travel as their own object rather than being copied into one.
            write!(buff, "${}\r\n", data.len())?;
            output.append(PyBytes::new(py, &buff))?;
            match arg {
                Arg::Object(obj, _) if obj.is_exact_instance_of::<PyBytes>() => {
                    output.append(obj)?
                }
                _ => output.append(PyBytes::new(py, data))?,
            }
            buff.clear();
            buff.extend_from_slice(b"\r\n");
        } else {
            write!(buff, "${}\r\n", data.len())?;
            buff.extend_from_slice(data);
            buff.extend_from_slice(b"\r\n");
        }
    }
    output.append(PyBytes::new(py, &buff))?;
    Ok(Some(output))
}
