"""manyio-anyio: an AnyIO backend on manyio.

Importing this package registers the backend, so ``anyio.run(main, backend="manyio")``
runs ``main`` on a manyio runtime::

    import anyio
    import manyio_anyio  # noqa: F401  (or: manyio.compat.patch_all())

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0.1)

    anyio.run(main, backend="manyio", backend_options={"threads": 2})

By default the tasks of one ``anyio.run`` share a strand (one runs at a time, on any worker),
which keeps AnyIO's single-threaded pieces correct; ``backend_options={"parallel": True}``
spreads them over every worker. AnyIO code running in plain ``manyio.run`` tasks works too,
in parallel. AnyIO's pytest plugin accepts ``anyio_backend = "manyio"`` (or
``("manyio", {"threads": 2})``).
"""

from ._backend import ManyioBackend
from ._register import BACKEND_NAME, register

__all__ = ["BACKEND_NAME", "ManyioBackend", "patch", "register"]

register()


def patch() -> str:
    """The ``manyio.compat`` hook: registers the backend (already done on import)."""
    register()
    return BACKEND_NAME
