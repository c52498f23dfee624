//! `manyio._core`: the Rust half of manyio.
//!
//! Rust owns the scheduler: worker threads pull tasks from work-stealing queues and step their
//! coroutines with `PyIter_Send`/`throw`. A coroutine talks to the scheduler only by what it
//! yields: `None` (a checkpoint: run me again later) or a [`sync::waiter::Waiter`] (park me
//! until it completes). Cancellation is decided here, at every resume, from the task's cancel
//! scopes ([`task::cancel`]): that is what makes it level-triggered.
//!
//! Layout: `runtime/` (workers, parking, the driver, the blocking pool), `task/` (tasks, the
//! cancel tree, task groups), `time/` (timers), `sync/` (waiters and primitives), `py/` (the
//! functions and classes Python sees).

use pyo3::prelude::*;

mod clock;
mod errors;
mod io;
mod outcome;
mod py;
mod runtime;
mod sync;
mod task;
mod time;

#[pymodule(gil_used = false)]
mod _core {
    #[pymodule_export]
    use crate::py::scope::{current_cancel_status, CancelScope, CancelStatus};
    #[pymodule_export]
    use crate::runtime::Runtime;
    #[pymodule_export]
    use crate::sync::event::Event;
    #[pymodule_export]
    use crate::sync::foreign::FutureDone;
    #[pymodule_export]
    use crate::sync::lock::{Acquire, Lock};
    #[pymodule_export]
    use crate::sync::lot::ParkingLot;
    #[pymodule_export]
    use crate::sync::serial::{SerialLock, Serialized};
    #[pymodule_export]
    use crate::sync::serial_callbacks::{Callback, SerialCallbacks};
    #[pymodule_export]
    use crate::sync::waiter::Waiter;
    #[pymodule_export]
    use crate::task::group::TaskGroupCore;
    #[pymodule_export]
    use crate::task::strand::Strand;
    #[pymodule_export]
    use crate::task::Task;

    #[pymodule_export]
    use crate::py::functions::Checkpoint;
    #[pymodule_export]
    use crate::py::functions::{
        all_tasks, call_on_main_thread, cancel_shielded_checkpoint, check_cancelled, checkpoint,
        current_effective_deadline, current_runtime, current_task, current_time,
        from_thread_runtime, on_manyio, sleep, sleep_until, spawn, to_thread_raw,
    };
    #[pymodule_export]
    use crate::py::io::{notify_closing, try_recv, wait_readable, wait_writable};
}
