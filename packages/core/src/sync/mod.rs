//! What tasks wait on: the [`waiter::Waiter`] awaitable, and the primitives built from it.
pub mod event;
pub mod foreign;
pub mod lock;
pub mod lot;
pub mod serial;
pub mod serial_callbacks;
pub mod waiter;
