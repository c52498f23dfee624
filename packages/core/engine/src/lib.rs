//! The concurrency state machines under manyio's scheduler.
//!
//! Nothing here knows about Python: each piece is generic over the value it carries and the
//! waker it hands back, so that it can be model-checked with `loom`
//! (`RUSTFLAGS="--cfg loom" cargo test -p manyio-engine --release`).
//!
//! - [`Completion`]: a one-shot cell a task parks on; completed by whoever produces the value,
//!   or aborted by the task itself when it is cancelled. Exactly one of the two wins.
//! - [`TaskState`]: a task's run state. Wake-ups that arrive while the task runs are never lost.
//! - [`WaitQueue`] and [`EventCore`]: FIFO waiters that never lose a value to a cancelled waiter.
//! - [`Parker`] and [`Idle`]: how idle workers sleep and how new work wakes exactly one of them.

mod completion;
mod event;
mod idle;
pub mod loom;
mod parker;
mod task_state;
mod wait_queue;

pub use completion::{Completion, Registered};
pub use event::{EventCore, Wait};
pub use idle::Idle;
pub use parker::{Parker, Unblock};
pub use task_state::{RunEnd, TaskState};
pub use wait_queue::{Slot, WaitQueue};
