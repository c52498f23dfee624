//! One monotonic clock for deadlines, expressed as seconds like `time.monotonic()`.
//!
//! Internally times are nanoseconds since a process-wide anchor (cheap to compare and to store
//! in atomics); Python sees float seconds on the same scale as `time.monotonic()`, so deadlines
//! computed with either agree.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Anchor {
    instant: Instant,
    monotonic: f64,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let mut ts = std::mem::MaybeUninit::<Timespec>::uninit();
        // SAFETY: clock_gettime writes a timespec; CLOCK_MONOTONIC always exists on Linux.
        let ts = unsafe {
            clock_gettime(CLOCK_MONOTONIC, ts.as_mut_ptr());
            ts.assume_init()
        };
        Anchor {
            instant: Instant::now(),
            monotonic: ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9,
        }
    })
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
const CLOCK_MONOTONIC: i32 = 1;
extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}

/// Nanoseconds since the anchor.
pub fn now_ns() -> u64 {
    anchor().instant.elapsed().as_nanos() as u64
}

pub fn now_secs() -> f64 {
    to_secs(now_ns())
}

pub fn to_secs(ns: u64) -> f64 {
    anchor().monotonic + ns as f64 * 1e-9
}

/// Seconds on the `time.monotonic()` scale to anchor nanoseconds, saturating: the past maps to
/// 0 and infinity (no deadline) to `u64::MAX`.
pub fn from_secs(secs: f64) -> u64 {
    let rel = secs - anchor().monotonic;
    if rel.is_nan() || rel <= 0.0 {
        0
    } else if rel >= u64::MAX as f64 * 1e-9 {
        u64::MAX
    } else {
        (rel * 1e9) as u64
    }
}

/// How long until `deadline_ns`, for a poll timeout.
pub fn until(deadline_ns: u64) -> Duration {
    Duration::from_nanos(deadline_ns.saturating_sub(now_ns()))
}
