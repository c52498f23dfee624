//! Finds where one complete reply ends, touching no Python object.
//!
//! Replies arrive in pieces; this pass answers "is a whole reply buffered, and how long is
//! it?" so that the Python objects are built once, from bytes that will not change, and only
//! for complete replies. It walks nested aggregates with an explicit stack: a hostile depth
//! cannot overflow the thread's stack.

/// Aggregates nested deeper than this are refused (redis-py's parser would hit Python's
/// recursion limit at about the same depth).
pub const MAX_DEPTH: usize = 1000;

pub enum Scan {
    /// The first reply is the `usize` bytes at the front of the buffer.
    Complete(usize),
    /// More bytes are needed.
    Incomplete,
    /// Not RESP: why (empty for an unknown type byte, RESP3 ones on RESP2 included), and the
    /// offending line.
    Invalid(&'static str, Vec<u8>),
}

/// The line starting at `pos`: (end of its content, start of the next line), or None when its
/// `\r\n` has not arrived yet. A `\n` without `\r` before it ends the line as well and is
/// reported by the caller as invalid.
pub fn line(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let nl = pos + buf[pos..].iter().position(|&b| b == b'\n')?;
    Some((nl.saturating_sub(1).max(pos), nl + 1))
}

/// A length or count: ASCII digits with an optional leading `-`.
pub fn length(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if negative { -n } else { n })
}

pub fn is_resp3_only(kind: u8) -> bool {
    matches!(
        kind,
        b'_' | b',' | b'#' | b'(' | b'!' | b'=' | b'~' | b'%' | b'>'
    )
}

/// Scans the reply at the front of `buf`.
pub fn scan(buf: &[u8], resp3: bool) -> Scan {
    // Elements still expected by each open aggregate, innermost last.
    let mut open: Vec<u64> = Vec::new();
    let mut pos = 0;
    loop {
        if pos >= buf.len() {
            return Scan::Incomplete;
        }
        let Some((end, next)) = line(buf, pos) else {
            return Scan::Incomplete;
        };
        let start = pos;
        let raw = || buf[start..end].to_vec();
        if end + 2 != next || buf[end] != b'\r' {
            return Scan::Invalid("a line must end with \\r\\n", buf[pos..next - 1].to_vec());
        }
        let kind = buf[pos];
        if !resp3 && is_resp3_only(kind) {
            return Scan::Invalid("", raw()); // as redis-py's RESP2 parser: a bad type byte
        }
        let body = &buf[pos + 1..end];
        pos = next;
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'!' | b'=' => match length(body) {
                Some(-1) if kind == b'$' => {}
                Some(n) if n >= 0 => {
                    pos += n as usize + 2;
                    if pos > buf.len() {
                        return Scan::Incomplete;
                    }
                }
                _ => return Scan::Invalid("bad length", raw()),
            },
            b'*' | b'~' | b'%' | b'>' => match length(body) {
                Some(-1) if kind == b'*' => {}
                Some(0) => {}
                Some(n) if n > 0 => {
                    if open.len() == MAX_DEPTH {
                        return Scan::Invalid("aggregates nested too deep", raw());
                    }
                    open.push(if kind == b'%' { 2 * n as u64 } else { n as u64 });
                    continue; // not complete until its elements are
                }
                _ => return Scan::Invalid("bad length", raw()),
            },
            _ => return Scan::Invalid("", raw()),
        }
        // One element is complete: count it against the aggregates it closes.
        loop {
            match open.last_mut() {
                None => return Scan::Complete(pos),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}
