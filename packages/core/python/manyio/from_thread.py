"""Calls from :func:`manyio.to_thread` threads back into the runtime.

Example::

    def blocking_work():
        manyio.from_thread.run(notify, "half way")

    await manyio.to_thread(blocking_work)
"""

from ._threads import from_thread_run as run
from ._threads import from_thread_run_sync as run_sync

__all__ = ["run", "run_sync"]
