//! Timers: sleeps and cancel-scope deadlines.
mod timers;

pub use timers::{TimerAction, TimerKey, Timers};
