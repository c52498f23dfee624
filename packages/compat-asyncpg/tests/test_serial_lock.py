"""A SerialLoop: its lock (steps are exclusive, a task waiting for it does not block its worker)
and its timers."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import manyio
import pytest
from manyio._core import SerialCallbacks, SerialLock
from manyio_asyncpg import SerialLoop


@pytest.mark.manyio(threads=2)
async def test_steps_of_many_tasks_never_overlap() -> None:
    loop = SerialLoop(locked_tasks=True)
    inside = 0
    overlaps = 0
    steps = 0

    def enter() -> None:
        nonlocal inside, overlaps, steps
        inside += 1
        overlaps += inside > 1
        steps += 1

    async def operation() -> None:
        nonlocal inside
        for _ in range(20):
            enter()
            for _ in range(50):  # long enough for the other worker to try the lock meanwhile
                pass
            inside -= 1
            await manyio.checkpoint()

    async def callback_user() -> None:
        nonlocal inside
        for _ in range(200):
            with loop.lock:  # a transport callback's way in: blocking, and reentrant
                with loop.lock:
                    enter()
                    inside -= 1
            await manyio.checkpoint()

    async with manyio.TaskGroup() as tg:
        for _ in range(100):
            tg.start_soon(loop.run, operation())
        tg.start_soon(callback_user)
    assert overlaps == 0
    assert steps == 100 * 20 + 200


@pytest.mark.manyio(threads=1)
async def test_a_task_waiting_for_the_lock_leaves_its_worker_free() -> None:
    loop = SerialLoop()
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with loop.lock:
            held.set()
            release.wait(10)

    async def operation() -> str:
        return "ran"

    thread = threading.Thread(target=holder)
    thread.start()
    await manyio.to_thread(held.wait, 10)
    waiting = manyio.spawn(loop.run(operation()))
    ticks = 0
    for _ in range(20):  # the only worker keeps running tasks while `waiting` waits
        await manyio.sleep(0.005)
        ticks += 1
    assert not waiting.done()
    release.set()
    assert await waiting == "ran"
    await manyio.to_thread(thread.join)
    assert ticks == 20


@pytest.mark.manyio(threads=2)
async def test_cancelled_while_waiting_the_operation_hears_it_under_the_lock() -> None:
    loop = SerialLoop()
    started = manyio.Event()
    go = manyio.Event()
    held = threading.Event()
    let_go = False
    seen: list[bool] = []

    def holder() -> None:
        nonlocal let_go
        with loop.lock:
            held.set()
            time.sleep(0.5)  # past the deadline below
            let_go = True

    async def operation() -> None:
        started.set()
        try:
            await go.wait()
        except manyio.Cancelled:
            seen.append(let_go)
            raise

    async def take_the_lock_then_wake_it() -> None:
        await started.wait()
        thread.start()
        await manyio.to_thread(held.wait, 10)
        go.set()  # the operation now wants its next step, and the lock is taken

    thread = threading.Thread(target=holder)
    async with manyio.TaskGroup() as tg:
        tg.start_soon(take_the_lock_then_wake_it)
        with manyio.move_on_after(0.2) as scope:
            await loop.run(operation())
    await manyio.to_thread(thread.join)
    assert scope.cancelled_caught
    # The operation heard the cancellation once, and only after the holder had let go.
    assert seen == [True]


async def test_an_operation_called_in_a_cancelled_scope_runs_until_its_first_await() -> None:
    # asyncio code calls an operation from the cleanup of a cancelled task (asyncpg's acquire
    # context releases the connection in __aexit__) and asyncio runs it up to its first await.
    # Waiting for the lock must not cancel it before it starts: that leaked pool connections.
    loop = SerialLoop()
    held = threading.Event()
    ran: list[str] = []

    def holder() -> None:
        with loop.lock:
            held.set()
            time.sleep(0.2)

    async def operation() -> None:
        ran.append("first step")
        await manyio.checkpoint()
        ran.append("after its first await")

    thread = threading.Thread(target=holder)
    thread.start()
    await manyio.to_thread(held.wait, 10)
    with manyio.CancelScope() as scope:
        scope.cancel()
        await loop.run(operation())
    await manyio.to_thread(thread.join)
    assert scope.cancelled_caught
    assert ran == ["first step"]


async def test_loop_timers_fire_in_deadline_order_and_cancelled_ones_never() -> None:
    loop = SerialLoop()
    fired: list[str] = []
    lock_held: list[bool] = []

    def record(name: str) -> None:
        fired.append(name)
        lock_held.append(loop.lock.locked())

    now = loop.time()
    loop.call_at(now + 0.06, record, "c")
    loop.call_at(now + 0.02, record, "a")
    loop.call_at(now + 0.02, record, "a2")  # same deadline: in the order they were set
    dropped = loop.call_later(0.01, record, "never")
    loop.call_later(0.04, record, "b")
    dropped.cancel()
    assert dropped.cancelled() and isinstance(dropped, asyncio.TimerHandle)
    with manyio.fail_after(5):
        while len(fired) < 4:
            await manyio.sleep(0.01)
    assert fired == ["a", "a2", "b", "c"]
    assert all(lock_held)


async def test_loop_drops_cancelled_timers_from_its_heap() -> None:
    loop = SerialLoop()
    keep = loop.call_later(60, print)
    for _ in range(1000):
        loop.call_later(30, print).cancel()
    # Cancelled entries are dropped once they are most of the heap, not kept for 30 s.
    assert len(loop._timers) < 300
    assert not keep.cancelled() and any(entry[2] is keep for entry in loop._timers)
    keep.cancel()


class _Parent:
    """A loop handed to asyncpg: errors in callbacks are reported to its handler."""

    def __init__(self) -> None:
        self.reports: list[dict[str, object]] = []

    def call_exception_handler(self, context: dict[str, object]) -> None:
        self.reports.append(context)


async def test_callbacks_run_in_order_holding_the_lock_and_in_their_context() -> None:
    parent = _Parent()
    loop = SerialLoop(parent=parent)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    ran: list[tuple[str, str, bool]] = []
    done = manyio.Event()

    def record(name: str) -> None:
        ran.append((name, var.get(), loop.lock.locked()))

    def fail() -> None:
        raise ValueError("callback failed")

    var.set("copied at call_soon")
    loop.call_soon(record, "first")
    skipped = loop.call_soon(record, "cancelled")
    given = contextvars.Context()
    given.run(var.set, "given")
    loop.call_soon(record, "in a given context", context=given)
    loop.call_soon(fail)
    loop.call_soon(record, "after the failure")
    loop.call_soon(done.set)
    skipped.cancel()
    var.set("changed later")
    assert skipped.cancelled()
    with manyio.fail_after(5):
        await done.wait()  # a drain task ran them: nobody was delivering
    assert ran == [
        ("first", "copied at call_soon", True),
        ("in a given context", "given", True),
        ("after the failure", "copied at call_soon", True),
    ]
    [report] = parent.reports
    assert isinstance(report["exception"], ValueError)
    assert "fail" in str(report["message"])


@pytest.mark.manyio(threads=2)
async def test_deliver_runs_the_callbacks_it_queued_before_it_returns() -> None:
    loop = SerialLoop()
    order: list[str] = []

    def received(data: bytes) -> str:
        assert loop.lock.locked()
        order.append(f"received {data!r}")
        loop.call_soon(order.append, "its callback")
        return "returned"

    results: list[str] = []

    async def deliver(i: int) -> None:
        results.append(loop.deliver(received, b"%d" % i))

    for _ in range(3):  # deliveries from tasks on both workers, each complete on return
        async with manyio.TaskGroup() as tg:
            for i in range(50):
                tg.start_soon(deliver, i)
        assert results == ["returned"] * 50
        assert len(order) == 100
        assert all(order[k + 1] == "its callback" for k in range(0, 100, 2))
        order.clear()
        results.clear()
    assert len(loop._callbacks) == 0


async def test_callbacks_queued_from_a_plain_thread_run() -> None:
    loop = SerialLoop()
    done = manyio.Event()
    ran: list[bool] = []

    def from_thread() -> None:
        loop.call_soon_threadsafe(ran.append, True)
        loop.call_soon_threadsafe(done.set)

    await manyio.to_thread(from_thread)
    with manyio.fail_after(5):
        await done.wait()
    assert ran == [True]


def test_a_failed_drain_start_leaves_the_next_call_soon_to_try_again() -> None:
    lock = SerialLock()
    starts: list[int] = []
    reports: list[dict[str, object]] = []
    ran: list[str] = []

    def start_drain() -> None:
        starts.append(1)
        if len(starts) == 1:
            raise RuntimeError("no runtime to spawn the drain on")

    class Unprintable:
        def __repr__(self) -> str:
            raise ValueError("no repr either")

        def __call__(self) -> None:
            raise KeyError("raised by the callback")

    callbacks = SerialCallbacks(lock, start_drain, reports.append)
    with pytest.raises(RuntimeError):
        callbacks.call_soon(ran.append, "queued before the failure")
    callbacks.call_soon(Unprintable())
    callbacks.call_soon(ran.append, "queued after it")
    assert len(starts) == 2 and len(callbacks) == 3
    with lock:
        callbacks.run_ready()
    assert ran == ["queued before the failure", "queued after it"]
    [report] = reports
    assert isinstance(report["exception"], KeyError)
    assert report["message"] == "Exception in callback ?"
