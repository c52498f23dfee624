"""Signals: ``manyio.open_signal_receiver``.

Tests that install handlers or send signals run in a child interpreter, so a handler left
behind (or a stray SIGINT) can never reach pytest itself. Each script prints one result line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

RunScript = Callable[[str], str]

PRELUDE = """\
import os, signal, sys, threading, time
import manyio

def kill_self(signum):
    os.kill(os.getpid(), signum)

async def next_signal(signals, timeout=5.0):
    with manyio.fail_after(timeout):
        async for signum in signals:
            return signum
"""


@pytest.fixture
def run_script() -> RunScript:
    """Runs ``PRELUDE + script`` in a fresh interpreter and returns its stripped stdout."""

    def run(script: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc.stdout.strip()

    return run


def test_one_signal_is_delivered(run_script: RunScript) -> None:
    out = run_script(
        """
        async def main():
            with manyio.open_signal_receiver(signal.SIGUSR1) as signals:
                kill_self(signal.SIGUSR1)
                return await next_signal(signals)

        print(manyio.run(main, threads=2) == signal.SIGUSR1)
        """
    )
    assert out == "True"


def test_several_signals_are_delivered(run_script: RunScript) -> None:
    out = run_script(
        """
        async def main():
            got = []
            with manyio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP) as signals:
                for s in (signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR1):
                    kill_self(s)
                for _ in range(3):
                    got.append(await next_signal(signals))
                # One at a time, too, from the receiving loop itself.
                for s in (signal.SIGHUP, signal.SIGUSR1):
                    kill_self(s)
                    got.append(await next_signal(signals))
            return got

        got = manyio.run(main, threads=2)
        print(sorted(got[:3]) == sorted([signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP]),
              got[3:] == [signal.SIGHUP, signal.SIGUSR1],
              all(isinstance(s, int) for s in got))
        """
    )
    assert out == "True True True"


def test_repeated_pending_signal_is_coalesced(run_script: RunScript) -> None:
    out = run_script(
        """
        async def main():
            with manyio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2) as signals:
                # Nobody is receiving yet; the main thread runs the handler between kills.
                for _ in range(3):
                    kill_self(signal.SIGUSR1)
                    await manyio.sleep(0.1)
                kill_self(signal.SIGUSR2)
                await manyio.sleep(0.1)
                kill_self(signal.SIGUSR1)  # already pending: still one
                await manyio.sleep(0.1)
                got = [await next_signal(signals), await next_signal(signals)]
                with manyio.move_on_after(0.3) as scope:
                    got.append(await next_signal(signals))
                return got, scope.cancelled_caught

        got, nothing_more = manyio.run(main, threads=2)
        print(got == [signal.SIGUSR1, signal.SIGUSR2], nothing_more)
        """
    )
    assert out == "True True"


def test_previous_handlers_are_restored(run_script: RunScript) -> None:
    out = run_script(
        """
        calls = []

        def mine(signum, frame):
            calls.append(signum)

        signal.signal(signal.SIGUSR1, mine)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # nohup would have it ignored

        async def main():
            results = []
            with manyio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP) as signals:
                results.append(signal.getsignal(signal.SIGUSR1) is not mine)
                results.append(signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL)
                kill_self(signal.SIGUSR1)
                results.append(await next_signal(signals) == signal.SIGUSR1)
            results.append(signal.getsignal(signal.SIGUSR1) is mine)
            results.append(signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN)
            results.append(signal.getsignal(signal.SIGHUP) is signal.SIG_DFL)
            # Restored even when the block fails.
            try:
                with manyio.open_signal_receiver(signal.SIGUSR1):
                    raise LookupError("boom")
            except LookupError:
                pass
            results.append(signal.getsignal(signal.SIGUSR1) is mine)
            # And when it is cancelled.
            with manyio.move_on_after(0.1):
                with manyio.open_signal_receiver(signal.SIGUSR1) as signals:
                    async for _ in signals:
                        pass
            results.append(signal.getsignal(signal.SIGUSR1) is mine)
            return results

        results = manyio.run(main, threads=2)
        # The restored handler works again.
        kill_self(signal.SIGUSR1)
        time.sleep(0.05)
        print(results, calls == [signal.SIGUSR1])
        """
    )
    assert out == "[True, True, True, True, True, True, True, True] True"


def test_nested_receivers_for_the_same_signal(run_script: RunScript) -> None:
    out = run_script(
        """
        async def main():
            with manyio.open_signal_receiver(signal.SIGUSR1) as outer:
                with manyio.open_signal_receiver(signal.SIGUSR1) as inner:
                    kill_self(signal.SIGUSR1)
                    first = await next_signal(inner)
                # The inner block gave the signal back to the outer receiver.
                kill_self(signal.SIGUSR1)
                second = await next_signal(outer)
            return first, second

        print(manyio.run(main, threads=2) == (signal.SIGUSR1, signal.SIGUSR1))
        """
    )
    assert out == "True"


def test_failed_install_rolls_back(run_script: RunScript) -> None:
    out = run_script(
        """
        async def main():
            before = signal.getsignal(signal.SIGUSR1)
            try:
                # SIGKILL cannot be caught: installing fails after SIGUSR1 was done.
                with manyio.open_signal_receiver(signal.SIGUSR1, signal.SIGKILL):
                    return "entered"
            except (OSError, ValueError, RuntimeError):
                pass
            try:
                with manyio.open_signal_receiver():
                    return "entered"
            except TypeError:
                pass
            return signal.getsignal(signal.SIGUSR1) is before

        print(manyio.run(main, threads=2))
        """
    )
    assert out == "True"


def test_sigint_goes_to_the_receiver_not_keyboard_interrupt(run_script: RunScript) -> None:
    out = run_script(
        """
        async def main():
            with manyio.open_signal_receiver(signal.SIGINT) as signals:
                kill_self(signal.SIGINT)
                got = await next_signal(signals)
                # A second Ctrl-C while the first is handled: still ours.
                kill_self(signal.SIGINT)
                got2 = await next_signal(signals)
            return got == got2 == signal.SIGINT

        try:
            result = manyio.run(main, threads=2)
        except KeyboardInterrupt:
            result = "KeyboardInterrupt"
        # Outside the receiver, Ctrl-C is a KeyboardInterrupt again.
        restored = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        print(result, restored)
        """
    )
    assert out == "True True"


def test_receiver_in_tasks_on_worker_threads(run_script: RunScript) -> None:
    # Every task runs on a worker while the main thread waits in manyio.run; handlers are still
    # installed and restored on the main thread. Two tasks each own a receiver at once.
    out = run_script(
        """
        main_ident = threading.get_ident()

        async def listen(signum, ready, results):
            on_worker = threading.get_ident() != main_ident
            with manyio.open_signal_receiver(signum) as signals:
                ready.set()
                results[signum] = (on_worker, await next_signal(signals))

        async def main():
            results = {}
            ready1, ready2 = manyio.Event(), manyio.Event()
            async with manyio.TaskGroup() as tg:
                tg.start_soon(listen, signal.SIGUSR1, ready1, results)
                tg.start_soon(listen, signal.SIGUSR2, ready2, results)
                await ready1.wait()
                await ready2.wait()
                # From a plain thread, too: the kernel picks any thread to interrupt.
                t = threading.Thread(target=kill_self, args=(signal.SIGUSR2,))
                t.start()
                t.join()
                kill_self(signal.SIGUSR1)
            return results

        results = manyio.run(main, threads=2)
        print(results == {signal.SIGUSR1: (True, signal.SIGUSR1), signal.SIGUSR2: (True, signal.SIGUSR2)},
              signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL,
              signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL)
        """
    )
    assert out == "True True True"


def test_many_signals_to_a_busy_runtime(run_script: RunScript) -> None:
    # A stream of signals while other tasks keep both workers busy: each is received (coalescing
    # only merges signals nobody received yet, so we wait for each before sending the next).
    out = run_script(
        """
        async def spin(stop):
            while not stop.is_set():
                await manyio.checkpoint()

        async def main():
            stop = manyio.Event()
            received = 0
            async with manyio.TaskGroup() as tg:
                for _ in range(4):
                    tg.start_soon(spin, stop)
                with manyio.open_signal_receiver(signal.SIGUSR1) as signals:
                    for _ in range(50):
                        kill_self(signal.SIGUSR1)
                        await next_signal(signals)
                        received += 1
                stop.set()
            return received

        print(manyio.run(main, threads=2))
        """
    )
    assert out == "50"


def test_handlers_restored_when_runtime_shutdown_cancels_the_receiver(run_script: RunScript) -> None:
    # A background task still holds a receiver when main returns: manyio.run cancels it, and its
    # with block must still put the previous handlers back, or Ctrl-C would be swallowed for
    # the rest of the program.
    out = run_script(
        """
        async def background(ready):
            with manyio.open_signal_receiver(signal.SIGINT, signal.SIGUSR1) as signals:
                ready.set()
                async for _ in signals:
                    pass

        async def main():
            ready = manyio.Event()
            manyio.spawn(background(ready))
            await ready.wait()

        manyio.run(main, threads=2)
        print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,
              signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL)
        """
    )
    assert out == "True True"


def test_runtime_driven_from_a_non_main_thread_gives_a_clear_error() -> None:
    # No handler can be installed (the main thread is not in block_on): a clear RuntimeError,
    # not a hang or a ValueError from the signal module. Nothing is installed, so this is safe
    # to run in the pytest process.
    import signal

    before = signal.getsignal(signal.SIGUSR1)
    outcome: list[BaseException | str] = []

    async def main() -> None:
        with manyio.open_signal_receiver(signal.SIGUSR1):
            outcome.append("entered")

    def drive() -> None:
        with manyio.Runtime(threads=2) as rt:
            try:
                rt.block_on(main)
            except BaseException as e:
                outcome.append(e)

    thread = threading.Thread(target=drive)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert len(outcome) == 1
    error = outcome[0]
    assert isinstance(error, RuntimeError), repr(error)
    assert "main thread" in str(error)
    assert "manyio.run" in str(error)
    assert signal.getsignal(signal.SIGUSR1) is before


def test_outside_a_runtime_on_the_main_thread(run_script: RunScript) -> None:
    # open_signal_receiver is a plain context manager: on the main thread it works without a
    # runtime (installing directly), and restores on exit.
    out = run_script(
        """
        with manyio.open_signal_receiver(signal.SIGUSR1) as signals:
            installed = signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL
        print(installed, signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL)
        """
    )
    assert out == "True True"
