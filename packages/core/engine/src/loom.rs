//! One place that picks real or model-checked primitives; engine code never imports `std::sync`.

#[cfg(not(loom))]
pub mod sync {
    pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub mod atomic {
        pub use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
    }
}

#[cfg(loom)]
pub mod sync {
    pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub mod atomic {
        pub use loom::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
    }
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the data consistent
/// before anything that could panic, so a poisoned lock still guards valid state.
pub fn lock<T>(m: &sync::Mutex<T>) -> sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
