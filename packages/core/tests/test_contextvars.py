"""Context variables: every task runs in a copy of the context it was spawned from."""

from __future__ import annotations

import contextvars
import threading

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_child_sees_values_set_before_spawn() -> None:
    async def child() -> str:
        await manyio.checkpoint()
        return var.get()

    async def main() -> None:
        var.set("parent value")
        assert await manyio.spawn(child()) == "parent value"

    run(main)


def test_child_changes_are_not_seen_by_the_parent() -> None:
    async def child() -> str:
        var.set("child value")
        await manyio.checkpoint()
        return var.get()

    async def main() -> None:
        var.set("parent value")
        assert await manyio.spawn(child()) == "child value"
        assert var.get() == "parent value"

    run(main)


def test_parent_changes_after_spawn_are_not_seen_by_the_child() -> None:
    async def child(gate: manyio.Event) -> str:
        await gate.wait()
        return var.get()

    async def main() -> None:
        var.set("before spawn")
        gate = manyio.Event()
        task = manyio.spawn(child(gate))
        var.set("after spawn")
        gate.set()
        assert await task == "before spawn"

    run(main)


def test_siblings_are_isolated_from_each_other() -> None:
    async def child(tag: str) -> list[str]:
        seen = []
        var.set(tag)
        for _ in range(20):
            await manyio.sleep(0)
            seen.append(var.get())
        return seen

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(child(f"t{i}")) for i in range(10)]
        for i, t in enumerate(tasks):
            assert t.result() == [f"t{i}"] * 20
        assert var.get() == "default"

    run(main)


def test_value_survives_migration_between_worker_threads() -> None:
    idents: set[int] = set()

    async def hopper(tag: str) -> bool:
        var.set(tag)
        ok = True
        for _ in range(200):
            idents.add(threading.get_ident())
            await manyio.checkpoint()
            ok = ok and var.get() == tag
        return ok

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(hopper(f"h{i}")) for i in range(8)]
        assert all(t.result() for t in tasks)

    run(main)


def test_task_group_children_and_start_copy_the_context() -> None:
    async def server(*, task_status: manyio.TaskStatus[str]) -> None:
        task_status.started(var.get())
        var.set("changed by the started task")

    async def child(out: list[str]) -> None:
        out.append(var.get())
        var.set("changed by the child")

    async def main() -> None:
        var.set("host")
        out: list[str] = []
        async with manyio.TaskGroup() as tg:
            tg.start_soon(child, out)
            assert await tg.start(server) == "host"
        assert out == ["host"]
        assert var.get() == "host"

    run(main)


def test_to_thread_sees_the_task_context() -> None:
    def read() -> str:
        value = var.get()
        var.set("set in the thread")
        return value

    async def main() -> None:
        var.set("task value")
        assert await manyio.to_thread(read) == "task value"
        assert var.get() == "task value"

    run(main)


def test_block_on_copies_the_calling_thread_context() -> None:
    async def read() -> str:
        return var.get()

    token = var.set("from the calling thread")
    try:
        with manyio.Runtime(threads=THREADS) as rt:
            assert rt.block_on(read()) == "from the calling thread"
    finally:
        var.reset(token)


def test_main_task_changes_do_not_leak_to_the_caller() -> None:
    async def main() -> None:
        var.set("inside the runtime")

    run(main)
    assert var.get() == "default"
