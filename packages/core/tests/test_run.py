"""Entry points: ``manyio.run``, ``@manyio.main`` and ``manyio.Runtime``."""

from __future__ import annotations

import gc
import inspect
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import manyio
import pytest
from manyio import _introspect

pytestmark = pytest.mark.timeout(60)

THREADS = 2


# --- manyio.run ----------------------------------------------------------------------------


def test_run_accepts_a_coroutine_and_returns_its_result() -> None:
    async def main() -> int:
        await manyio.checkpoint()
        return 42

    assert manyio.run(main(), threads=THREADS) == 42


def test_run_accepts_an_async_function() -> None:
    async def main() -> str:
        await manyio.sleep(0)
        return "called"

    assert manyio.run(main, threads=THREADS) == "called"


def test_run_propagates_the_exception_of_main() -> None:
    class Boom(Exception):
        pass

    async def main() -> None:
        await manyio.checkpoint()
        raise Boom("from main")

    with pytest.raises(Boom, match="from main"):
        manyio.run(main, threads=THREADS)


def test_run_rejects_things_that_are_not_coroutines() -> None:
    with pytest.raises(TypeError, match=r"manyio\.run\(\)"):
        manyio.run(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="returning 7"):
        manyio.run(lambda: 7)  # type: ignore[arg-type, return-value]


def test_run_rejects_invalid_thread_counts_and_closes_the_coroutine() -> None:
    async def main() -> None:
        pass

    for bad in (0, 1025):
        coro = main()
        with pytest.raises(ValueError, match="threads"):
            manyio.run(coro, threads=bad)
        # Closed, so Python does not warn "coroutine was never awaited".
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_run_starts_the_requested_number_of_workers(threads: int) -> None:
    async def main() -> int:
        return manyio.stats()["workers"]

    assert manyio.run(main, threads=threads) == threads


def test_tasks_run_at_the_same_time_on_different_worker_threads() -> None:
    # A threading.Barrier can only be passed if both tasks block on it simultaneously,
    # which proves they run in parallel on two different OS threads.
    barrier = threading.Barrier(2, timeout=10)
    idents: list[int] = []

    async def part() -> None:
        idents.append(threading.get_ident())
        barrier.wait()

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            tg.start_soon(part)
            tg.start_soon(part)

    manyio.run(main, threads=2)
    assert len(set(idents)) == 2
    assert threading.get_ident() not in idents


def test_several_runtimes_one_after_another() -> None:
    async def main(n: int) -> int:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(double(i)) for i in range(n)]
        return sum(t.result() for t in tasks)

    async def double(i: int) -> int:
        await manyio.sleep(0)
        return 2 * i

    for n in range(1, 8):
        assert manyio.run(main(n), threads=THREADS) == n * (n - 1)


def test_two_runtimes_at_the_same_time_in_different_threads() -> None:
    results: dict[str, object] = {}

    async def main(tag: str) -> str:
        for _ in range(50):
            await manyio.sleep(0.001)
        return tag

    def runner(tag: str) -> None:
        try:
            results[tag] = manyio.run(main(tag), threads=THREADS)
        except BaseException as e:  # pragma: no cover - reported below
            results[tag] = e

    ts = [threading.Thread(target=runner, args=(tag,)) for tag in ("a", "b")]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert results == {"a": "a", "b": "b"}


def test_when_run_returns_unfinished_tasks_were_cancelled_and_their_finally_ran() -> None:
    log: list[str] = []

    async def background(started: manyio.Event) -> None:
        try:
            started.set()
            await manyio.sleep(100)
            log.append("slept")  # pragma: no cover - must not happen
        except manyio.Cancelled:
            log.append("cancelled")
            raise
        finally:
            # A finally block may still await, in a shielded scope.
            with manyio.CancelScope(shield=True):
                await manyio.sleep(0.01)
            log.append("finally")

    async def main() -> str:
        started = manyio.Event()
        for _ in range(3):
            manyio.spawn(background(started))
        await started.wait()
        return "main done"

    t0 = time.monotonic()
    assert manyio.run(main, threads=THREADS) == "main done"
    assert time.monotonic() - t0 < 10
    assert log.count("finally") == 3
    assert log.count("cancelled") == 3
    assert "slept" not in log


def test_ctrl_c_cancels_main_runs_finally_blocks_and_raises_keyboard_interrupt() -> None:
    # In a child process, so the signal cannot reach pytest itself.
    code = textwrap.dedent(
        """
        import os, signal, threading, time
        import manyio

        log = []

        async def background():
            try:
                await manyio.sleep(100)
            finally:
                log.append("background finally")

        async def main():
            manyio.spawn(background())
            try:
                await manyio.sleep(100)
            finally:
                with manyio.CancelScope(shield=True):
                    await manyio.sleep(0.01)
                log.append("main finally")

        def interrupt():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt, daemon=True).start()
        t0 = time.monotonic()
        try:
            manyio.run(main, threads=2)
        except KeyboardInterrupt:
            print("KeyboardInterrupt", sorted(log), time.monotonic() - t0 < 10)
        else:
            print("returned normally")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "KeyboardInterrupt ['background finally', 'main finally'] True", proc.stderr


def test_ctrl_c_at_any_moment_of_start_up_raises_keyboard_interrupt_and_leaks_no_worker() -> None:
    # A SIGINT sent as run() starts lands anywhere: in Runtime.__init__ between creating the
    # core runtime and registering its finalizer, in the main-thread check, or in the task.
    # Each time run() must raise KeyboardInterrupt (not hang, not lose it), and the workers
    # must be gone afterwards (not left to attach to a finalizing interpreter).
    code = textwrap.dedent(
        """
        import os, signal, sys, threading, time
        import manyio

        def threads():
            # A joined thread can stay listed for a moment while the kernel reaps it; a
            # leaked worker stays for good.
            deadline = time.monotonic() + 5
            while (n := len(os.listdir("/proc/self/task"))) != baseline and time.monotonic() < deadline:
                time.sleep(0.01)
            return n

        async def main():
            await manyio.sleep(100)

        # One signalling thread for all rounds, started by a byte on a pipe: a Timer started
        # per round could deliver its SIGINT inside Thread.start(), where CPython's own
        # Condition.wait fails with "release unlocked lock" instead of raising it.
        delays = [0.0] * 20 + [0.0005 * i for i in range(20)]
        go_r, go_w = os.pipe()

        def signaller():
            for delay in delays:
                os.read(go_r, 1)
                time.sleep(delay)
                os.kill(os.getpid(), signal.SIGINT)
            os.read(go_r, 1)  # stays (a daemon) so the thread count keeps its baseline

        threading.Thread(target=signaller, daemon=True).start()
        baseline = len(os.listdir("/proc/self/task"))
        interrupted = 0
        for delay in delays:
            try:
                os.write(go_w, b"x")
                manyio.run(main, threads=2)
            except KeyboardInterrupt:
                interrupted += 1
            assert (n := threads()) == baseline, (delay, n, baseline)
        print(interrupted)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "40", proc.stdout + proc.stderr
    assert "panicked" not in proc.stderr and "SystemError" not in proc.stderr, proc.stderr


def test_run_takes_no_python_lock_on_the_calling_thread() -> None:
    # A Ctrl-C that lands just as `with lock:` has acquired its lock, before the block starts,
    # leaves the lock held for good (CPython gh-148874, fixed in 3.15). A lock taken by run()'s
    # own start-up or teardown would then hang the next run(): the stress test above caught one,
    # once in about 100 processes. This checks the cause directly.
    lock_types = (type(threading.Lock()), type(threading.RLock()))
    taken: list[tuple[str, str, int]] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and isinstance(getattr(arg, "__self__", None), lock_types):
            taken.append((arg.__name__, frame.f_code.co_filename, frame.f_lineno))

    async def main() -> int:
        await manyio.sleep(0)
        return 1

    assert manyio.run(main, threads=2) == 1  # imports and first-use set-up are done
    # No collection meanwhile: it could run some other test's leftover finalizer here.
    gc.collect()
    gc.disable()
    sys.setprofile(profile)  # this thread only
    try:
        assert manyio.run(main, threads=2) == 1
        with manyio.Runtime(threads=1) as rt:
            assert rt.block_on(main()) == 1
    finally:
        sys.setprofile(None)
        gc.enable()
    assert taken == []


# --- @manyio.main --------------------------------------------------------------------------


def test_main_decorator_with_threads() -> None:
    @manyio.main(threads=3)
    async def app(a: int, *, b: int) -> tuple[int, int]:
        """App docstring."""
        await manyio.checkpoint()
        return a + b, manyio.stats()["workers"]

    assert app(1, b=2) == (3, 3)
    assert app.__name__ == "app"
    assert app.__doc__ == "App docstring."
    # A plain function now; every call gets a new runtime.
    assert not inspect.iscoroutinefunction(app)
    assert app(10, b=20) == (30, 3)


def test_main_decorator_without_arguments() -> None:
    @manyio.main
    async def app() -> str:
        await manyio.sleep(0)
        return "bare"

    assert app() == "bare"


# --- manyio.Runtime ------------------------------------------------------------------------


def test_runtime_context_manager_block_on_and_close() -> None:
    async def compute(x: int) -> int:
        await manyio.sleep(0.001)
        return x * x

    with manyio.Runtime(threads=2) as rt:
        assert rt.threads == 2
        assert not rt.closed
        assert rt.block_on(compute(7)) == 49
        assert rt.block_on(lambda: compute(8)) == 64
        stats = rt.stats()
        assert stats["workers"] == 2
    assert rt.closed


def test_closed_runtime_refuses_new_work_and_closes_the_coroutine() -> None:
    rt = manyio.Runtime(threads=1)
    rt.close()
    rt.close()  # idempotent

    async def job() -> None:
        pass

    coro = job()
    with pytest.raises(RuntimeError, match="closed"):
        rt.spawn(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    with pytest.raises(RuntimeError, match="closed"):
        rt.block_on(job())


def test_runtime_block_on_propagates_exceptions() -> None:
    async def fail() -> None:
        await manyio.checkpoint()
        raise KeyError("missing")

    with manyio.Runtime(threads=2) as rt:
        with pytest.raises(KeyError, match="missing"):
            rt.block_on(fail())
        # The runtime is still usable afterwards.
        assert rt.block_on(_identity(5)) == 5


async def _identity(x: int) -> int:
    await manyio.checkpoint()
    return x


def test_runtime_spawn_from_foreign_threads() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    async def job(i: int) -> int:
        await manyio.sleep(0)
        with lock:
            seen.append(i)
        return i

    with manyio.Runtime(threads=2) as rt:
        tasks: list[manyio.Task] = []
        tasks_lock = threading.Lock()

        def spawner(base: int) -> None:
            for i in range(base, base + 25):
                t = rt.spawn(job(i), name=f"job-{i}")
                with tasks_lock:
                    tasks.append(t)

        threads = [threading.Thread(target=spawner, args=(k * 25,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)

        async def collect() -> list[int]:
            return [await t for t in tasks]

        results = rt.block_on(collect())
    assert sorted(results) == list(range(100))
    assert sorted(seen) == list(range(100))
    assert {t.name for t in tasks} == {f"job-{i}" for i in range(100)}


def test_runtime_block_on_from_several_threads_at_once() -> None:
    out: dict[int, object] = {}

    async def work(i: int) -> int:
        for _ in range(20):
            await manyio.sleep(0.0005)
        return i * 10

    with manyio.Runtime(threads=2) as rt:

        def caller(i: int) -> None:
            out[i] = rt.block_on(work(i))

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert out == {i: i * 10 for i in range(4)}


def test_block_on_and_close_from_a_task_of_the_same_runtime_raise() -> None:
    with manyio.Runtime(threads=2) as rt:

        async def inner() -> None:
            pass

        async def misuse() -> tuple[str, str]:
            coro = inner()
            with pytest.raises(RuntimeError, match="await") as e1:
                rt.block_on(coro)
            coro.close()
            with pytest.raises(RuntimeError) as e2:
                rt.close()
            return str(e1.value), str(e2.value)

        m1, _ = rt.block_on(misuse())
        assert "block_on" in m1
        assert not rt.closed
        # The refused close changed nothing: `python -m manyio ps` still lists it.
        assert any(listed is rt for _, listed in _introspect.live_runtimes())
    assert not any(listed is rt for _, listed in _introspect.live_runtimes())


@pytest.mark.parametrize("closers", [1, 2], ids=["one-closer", "two-threads-at-once"])
def test_runtime_close_cancels_tasks_spawned_from_outside_and_returns_once_they_are_done(
    closers: int, wait_until
) -> None:
    log: list[str] = []

    async def slow_to_cancel() -> None:
        try:
            await manyio.sleep(1000)
        finally:
            with manyio.CancelScope(shield=True):
                await manyio.sleep(0.2)
            log.append("finally")

    rt = manyio.Runtime(threads=2)
    task = rt.spawn(slow_to_cancel())

    async def started() -> None:
        await wait_until(lambda: rt.stats()["timers"] == 1)

    rt.block_on(started())
    seen: list[tuple[list[str], bool]] = []
    errors: list[BaseException] = []

    def close() -> None:
        try:
            rt.close()
            seen.append((list(log), rt.closed))
        except BaseException as exc:
            errors.append(exc)

    if closers == 1:
        close()
    else:
        threads = [threading.Thread(target=close) for _ in range(closers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert errors == []
    assert seen == [(["finally"], True)] * closers
    assert task.done()
    assert task.cancelled()


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_closing_runtimes_leaves_no_threads_behind() -> None:
    before = _os_threads()

    async def main() -> None:
        await manyio.to_thread(time.sleep, 0.001)
        async with manyio.TaskGroup() as tg:
            for _ in range(3):
                tg.start_soon(manyio.to_thread, time.sleep, 0.001)

    for _ in range(5):
        manyio.run(main, threads=3)
    deadline = time.monotonic() + 5
    while _os_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _os_threads() <= before


def test_a_task_can_be_cancelled_from_a_foreign_thread() -> None:
    log: list[str] = []

    async def sleeper() -> None:
        try:
            await manyio.sleep(100)
        finally:
            log.append("finally")

    with manyio.Runtime(threads=2) as rt:
        task = rt.spawn(sleeper())
        time.sleep(0.02)
        t0 = time.monotonic()
        task.cancel()  # from the main thread, which is not a worker

        async def wait() -> None:
            with pytest.raises(manyio.Cancelled):
                await task

        rt.block_on(wait())
        assert time.monotonic() - t0 < 2
    assert log == ["finally"]
    assert task.cancelled()


def test_a_scope_can_be_cancelled_from_a_foreign_thread() -> None:
    async def main() -> bool:
        scope = manyio.CancelScope()
        timer = threading.Timer(0.02, scope.cancel)
        timer.start()
        with scope:
            await manyio.sleep(100)
        timer.join()
        return scope.cancelled_caught

    assert manyio.run(main, threads=THREADS) is True


# --- unretrieved exceptions ---------------------------------------------------------------


def test_exception_in_an_unawaited_task_reaches_the_exception_handler(wait_until) -> None:
    contexts: list[dict[str, object]] = []

    class Lost(Exception):
        pass

    async def failing() -> None:
        await manyio.checkpoint()
        raise Lost("nobody awaits me")

    async def main() -> None:
        manyio.spawn(failing(), name="the-failing-task")
        await wait_until(lambda: contexts)

    manyio.run(main, threads=THREADS, exception_handler=contexts.append)
    assert len(contexts) == 1
    ctx = contexts[0]
    assert isinstance(ctx["exception"], Lost)
    assert str(ctx["exception"]) == "nobody awaits me"
    assert "the-failing-task" in str(ctx["message"])


def test_default_exception_handler_logs_with_traceback(caplog: pytest.LogCaptureFixture, wait_until) -> None:
    class Lost(Exception):
        pass

    async def failing() -> None:
        await manyio.checkpoint()
        raise Lost("logged")

    async def main() -> None:
        manyio.spawn(failing(), name="logger-test")
        await wait_until(lambda: any(r.name == "manyio" for r in caplog.records))

    with caplog.at_level(logging.ERROR, logger="manyio"):
        manyio.run(main, threads=THREADS)
    records = [r for r in caplog.records if r.name == "manyio"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert "logger-test" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], Lost)
    assert record.exc_info[2] is not None  # the traceback
    assert "failing" in caplog.text  # the frame shows up in the formatted traceback


def test_an_error_is_still_reported_when_the_only_awaiter_gave_up(wait_until) -> None:
    # Starting to await a task is not retrieving its outcome: if the awaiter is cancelled
    # before the task ends, nobody sees the exception, so the handler must get it.
    contexts: list[dict[str, object]] = []

    async def fails_later() -> None:
        await manyio.sleep(0.05)
        raise ValueError("nobody saw me")

    async def main() -> None:
        task = manyio.spawn(fails_later())
        with manyio.move_on_after(0.01):
            await task
        del task
        await wait_until(lambda: contexts, timeout=2)

    manyio.run(main, threads=THREADS, exception_handler=contexts.append)
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ValueError)


def test_retrieved_or_cancelled_task_errors_are_not_reported(wait_until) -> None:
    contexts: list[dict[str, object]] = []

    async def failing() -> None:
        await manyio.checkpoint()
        raise ValueError("seen")

    async def sleeper() -> None:
        await manyio.sleep(100)

    async def main() -> None:
        awaited = manyio.spawn(failing())
        with pytest.raises(ValueError):
            await awaited
        inspected = manyio.spawn(failing())
        await wait_until(inspected.done)
        assert isinstance(inspected.exception(), ValueError)
        resulted = manyio.spawn(failing())
        await wait_until(resulted.done)
        with pytest.raises(ValueError):
            resulted.result()
        cancelled = manyio.spawn(sleeper())
        await manyio.sleep(0.01)
        cancelled.cancel()
        await wait_until(cancelled.done)
        del awaited, inspected, resulted, cancelled

    manyio.run(main, threads=THREADS, exception_handler=contexts.append)
    assert contexts == []


def test_run_inside_a_task_is_refused() -> None:
    async def inner() -> int:
        return 1

    async def main() -> None:
        with pytest.raises(RuntimeError, match="cannot be called from a running manyio task"):
            manyio.run(inner())

    manyio.run(main, threads=THREADS)


def test_an_unclosed_runtime_stops_its_threads_when_collected() -> None:
    import gc

    def worker_threads() -> int:
        return sum(
            1 for t in Path("/proc/self/task").iterdir() if "manyio-worker" in (t / "comm").read_text()
        )

    def settle(expected: int) -> int:
        # A new thread names itself once it starts running: give it a moment.
        deadline = time.monotonic() + 5
        while (n := worker_threads()) != expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return n

    before = worker_threads()
    rt = manyio.Runtime(2)
    assert rt.block_on(_answer()) == 42
    assert settle(before + 2) == before + 2
    del rt
    gc.collect()
    # <=: a runtime left by another test may be collected here too; ours must be gone.
    assert settle(before) <= before


async def _answer() -> int:
    await manyio.checkpoint()
    return 42
