"""Structured concurrency on manyio: task groups, cancel scopes, deadlines and shields.

Shows, in order:

1. a TaskGroup waits for all its children and collects their results;
2. a failing child cancels its siblings, and the errors come out as an ExceptionGroup;
3. ``move_on_after`` stops a slow body quietly, ``fail_after`` raises TimeoutError;
4. cancelling a scope cancels every task in it, and every ``finally`` still runs (and may
   await, inside a shielded scope);
5. ``TaskGroup.start`` waits until a child says it is ready.

    python examples/structured_concurrency.py
"""

from __future__ import annotations

import manyio


async def square(n: int) -> int:
    await manyio.sleep(0.01 * n)
    return n * n


async def fails_after(delay: float) -> None:
    await manyio.sleep(delay)
    raise ValueError("boom")


async def worker(name: str, log: list[str]) -> None:
    try:
        await manyio.sleep(10)
    finally:
        # Cancellation is level-triggered: an unshielded await here would raise again.
        with manyio.CancelScope(shield=True):
            await manyio.sleep(0.01)  # e.g. tell a server goodbye
        log.append(f"{name} cleaned up")


async def server(task_status: manyio.TaskStatus[int]) -> None:
    port = 8080  # pretend we bound a socket
    task_status.started(port)
    await manyio.sleep(10)


async def main() -> None:
    # 1. Results: the block ends when every child has ended.
    async with manyio.TaskGroup() as tg:
        tasks = [tg.spawn(square(n)) for n in range(5)]
    print("squares:", [t.result() for t in tasks])

    # 2. Errors: the first failure cancels the rest of the group.
    try:
        async with manyio.TaskGroup() as tg:
            slow = tg.spawn(manyio.sleep(10))
            tg.start_soon(fails_after, 0.05)
    except* ValueError as group:
        print("group raised:", [str(e) for e in group.exceptions], "sibling cancelled:", slow.cancelled())

    # 3. Deadlines.
    with manyio.move_on_after(0.05) as scope:
        await manyio.sleep(10)
    print("move_on_after caught:", scope.cancelled_caught)
    try:
        with manyio.fail_after(0.05):
            await manyio.sleep(10)
    except TimeoutError:
        print("fail_after raised TimeoutError")

    # 4. Cancelling a scope cancels everything inside it; every finally runs.
    log: list[str] = []
    async with manyio.TaskGroup() as tg:
        for name in ("a", "b", "c"):
            tg.start_soon(worker, name, log)
        await manyio.sleep(0.05)
        tg.cancel_scope.cancel()
    print("cleanup:", sorted(log))

    # 5. start(): wait until the child is ready, get a value back.
    async with manyio.TaskGroup() as tg:
        port = await tg.start(server)
        print("server ready on port", port)
        tg.cancel_scope.cancel()


if __name__ == "__main__":
    manyio.run(main, threads=2)
