"""manyio: Python coroutines in parallel on every core, on free-threaded CPython.

Example::

    import manyio

    async def main():
        async with manyio.TaskGroup() as tg:
            for n in range(4):
                tg.start_soon(manyio.sleep, 0.1)

    manyio.run(main())
"""

from . import compat as compat
from . import from_thread as from_thread
from . import net as net
from . import sockets as sockets
from ._channel import ReceiveChannel as ReceiveChannel
from ._channel import SendChannel as SendChannel
from ._channel import channel as channel
from ._core import CancelScope as CancelScope
from ._core import Event as Event
from ._core import Task as Task
from ._core import all_tasks as all_tasks
from ._core import checkpoint as checkpoint
from ._core import current_effective_deadline as current_effective_deadline
from ._core import current_task as current_task
from ._core import current_time as current_time
from ._core import notify_closing as notify_closing
from ._core import sleep as sleep
from ._core import sleep_until as sleep_until
from ._core import spawn as spawn
from ._core import wait_readable as wait_readable
from ._core import wait_writable as wait_writable
from ._exceptions import BrokenResourceError as BrokenResourceError
from ._exceptions import BusyResourceError as BusyResourceError
from ._exceptions import Cancelled as Cancelled
from ._exceptions import ClosedResourceError as ClosedResourceError
from ._exceptions import EndOfChannel as EndOfChannel
from ._exceptions import WouldBlock as WouldBlock
from ._files import AsyncFile as AsyncFile
from ._files import Path as Path
from ._files import open_file as open_file
from ._files import wrap_file as wrap_file
from ._queue import LifoQueue as LifoQueue
from ._queue import Queue as Queue
from ._run import Runtime as Runtime
from ._run import main as main
from ._run import run as run
from ._signals import SignalReceiver as SignalReceiver
from ._signals import open_signal_receiver as open_signal_receiver
from ._stats import stats as stats
from ._strand import Strand as Strand
from ._subprocess import Process as Process
from ._subprocess import open_process as open_process
from ._subprocess import run_process as run_process
from ._sync import Barrier as Barrier
from ._sync import BoundedSemaphore as BoundedSemaphore
from ._sync import CapacityLimiter as CapacityLimiter
from ._sync import Condition as Condition
from ._sync import Lock as Lock
from ._sync import Semaphore as Semaphore
from ._taskgroup import TaskGroup as TaskGroup
from ._taskgroup import TaskStatus as TaskStatus
from ._threads import current_default_thread_limiter as current_default_thread_limiter
from ._threads import to_thread as to_thread
from ._timeouts import fail_after as fail_after
from ._timeouts import fail_at as fail_at
from ._timeouts import move_on_after as move_on_after
from ._timeouts import move_on_at as move_on_at
from ._tls import TLSStream as TLSStream

yield_now = checkpoint
"""Alias of :func:`checkpoint`."""

__version__ = "0.1.0"

__all__ = [
    "AsyncFile",
    "Barrier",
    "BoundedSemaphore",
    "BrokenResourceError",
    "BusyResourceError",
    "CancelScope",
    "Cancelled",
    "CapacityLimiter",
    "ClosedResourceError",
    "Condition",
    "EndOfChannel",
    "Event",
    "LifoQueue",
    "Lock",
    "Path",
    "Process",
    "Queue",
    "ReceiveChannel",
    "Runtime",
    "Semaphore",
    "SignalReceiver",
    "Strand",
    "SendChannel",
    "Task",
    "TaskGroup",
    "TaskStatus",
    "TLSStream",
    "WouldBlock",
    "all_tasks",
    "channel",
    "checkpoint",
    "compat",
    "current_default_thread_limiter",
    "current_effective_deadline",
    "current_task",
    "current_time",
    "fail_after",
    "fail_at",
    "from_thread",
    "main",
    "move_on_after",
    "move_on_at",
    "net",
    "notify_closing",
    "open_file",
    "open_process",
    "open_signal_receiver",
    "run",
    "run_process",
    "sleep",
    "sleep_until",
    "sockets",
    "spawn",
    "stats",
    "to_thread",
    "wait_readable",
    "wait_writable",
    "wrap_file",
    "yield_now",
]
