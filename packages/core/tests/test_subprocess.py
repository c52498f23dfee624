"""Subprocesses: ``manyio.open_process`` and ``manyio.run_process``."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def assert_reaped(pid: int) -> None:
    """``pid`` is neither running nor a zombie: our child was waited for."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not os.path.exists(f"/proc/{pid}")


async def read_all(stream: Any) -> bytes:
    assert stream is not None
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
    return b"".join(chunks)


# --- run_process ---


def test_run_process_collects_output() -> None:
    async def main() -> None:
        result = await manyio.run_process(["echo", "hello"])
        assert isinstance(result, subprocess.CompletedProcess)
        assert result.args == ["echo", "hello"]
        assert result.returncode == 0
        assert result.stdout == b"hello\n"
        assert result.stderr == b""

    run(main)


def test_run_process_feeds_and_returns_large_data() -> None:
    data = os.urandom(8 * 1024 * 1024)

    async def main() -> None:
        with manyio.fail_after(20):
            result = await manyio.run_process(["cat"], input=data)
        assert len(result.stdout) == len(data)
        assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(data).digest()

    run(main)


def test_stdout_and_stderr_are_separate_or_merged() -> None:
    script = "import sys; sys.stdout.write('out' * 50000); sys.stderr.write('err' * 50000)"

    async def main() -> None:
        result = await manyio.run_process([sys.executable, "-c", script])
        assert result.stdout == b"out" * 50000
        assert result.stderr == b"err" * 50000

        merged = await manyio.run_process(["sh", "-c", "echo one; echo two >&2"], stderr=subprocess.STDOUT)
        assert merged.stdout == b"one\ntwo\n"
        assert merged.stderr is None

        quiet = await manyio.run_process(
            ["sh", "-c", "echo one; echo two >&2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert quiet.stdout is None
        assert quiet.stderr == b"two\n"

    run(main)


def test_exit_codes_and_check() -> None:
    async def main() -> None:
        ok = await manyio.run_process(["sh", "-c", "exit 3"], check=False)
        assert ok.returncode == 3

        with pytest.raises(subprocess.CalledProcessError) as info:
            await manyio.run_process(["sh", "-c", "echo some output; echo oops >&2; exit 7"])
        err = info.value
        assert err.returncode == 7
        assert err.cmd == ["sh", "-c", "echo some output; echo oops >&2; exit 7"]
        assert err.stdout == err.output == b"some output\n"
        assert err.stderr == b"oops\n"

        # Death by a signal is a failure too, with a negative return code.
        with pytest.raises(subprocess.CalledProcessError) as info:
            await manyio.run_process(["sh", "-c", "kill -TERM $$"])
        assert info.value.returncode == -signal.SIGTERM

    run(main)


def test_env_and_cwd(tmp_path: Path) -> None:
    async def main() -> None:
        env = {"PATH": os.environ["PATH"], "MANYIO_TEST_VAR": "hello from env"}
        result = await manyio.run_process(
            ["sh", "-c", 'echo "$MANYIO_TEST_VAR"; pwd; echo "${HOME-unset}"'], env=env, cwd=tmp_path
        )
        var, cwd, home = result.stdout.decode().splitlines()
        assert var == "hello from env"
        assert os.path.samefile(cwd, tmp_path)
        assert home == "unset"  # only what we passed

        async with await manyio.open_process(["pwd"], cwd=str(tmp_path), stdin=subprocess.DEVNULL) as proc:
            assert proc.stdin is None
            out = await read_all(proc.stdout)
        assert os.path.samefile(out.decode().strip(), tmp_path)

    run(main)


def test_shell_string_command(tmp_path: Path) -> None:
    async def main() -> None:
        result = await manyio.run_process("echo hello | tr a-z A-Z; echo $((6 * 7))")
        assert result.stdout == b"HELLO\n42\n"
        assert result.args == "echo hello | tr a-z A-Z; echo $((6 * 7))"

        # A sequence is not run through the shell: no expansion.
        literal = await manyio.run_process(["echo", "$HOME", "*"], cwd=tmp_path)
        assert literal.stdout == b"$HOME *\n"

        async with await manyio.open_process("exit 5") as proc:
            assert await proc.wait() == 5

    run(main)


def test_missing_program_raises() -> None:
    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await manyio.run_process(["/nonexistent/definitely-not-a-program"])
        with pytest.raises(FileNotFoundError):
            await manyio.open_process(["/nonexistent/definitely-not-a-program"])

    run(main)


# --- open_process ---


def test_pipes_both_ways_with_large_data() -> None:
    # Write several MB to cat while another task reads them back: neither direction may stall.
    data = os.urandom(6 * 1024 * 1024 + 123)

    async def main() -> None:
        async with await manyio.open_process(["cat"]) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            received = bytearray()

            async def writer() -> None:
                assert proc.stdin is not None
                view = memoryview(data)
                for offset in range(0, len(view), 1 << 20):
                    await proc.stdin.send_all(view[offset : offset + (1 << 20)])
                await proc.stdin.aclose()  # cat sees EOF and exits

            async def reader() -> None:
                assert proc.stdout is not None
                async for chunk in proc.stdout:
                    received.extend(chunk)

            with manyio.fail_after(20):
                async with manyio.TaskGroup() as tg:
                    tg.start_soon(writer)
                    tg.start_soon(reader)
                assert await proc.wait() == 0
            assert proc.returncode == 0
        assert len(received) == len(data)
        assert bytes(received) == data

    run(main)


def test_process_attributes_and_line_protocol() -> None:
    script = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)\n"

    async def main() -> None:
        proc = await manyio.open_process([sys.executable, "-u", "-c", script])
        try:
            assert proc.pid > 0
            assert proc.args[0] == sys.executable
            assert proc.returncode is None and proc.poll() is None
            assert f"pid={proc.pid}" in repr(proc)
            assert proc.stdin is not None and proc.stdout is not None
            for word in (b"alpha", b"beta", b"gamma"):
                await proc.stdin.send_all(word + b"\n")
                line = b""
                with manyio.fail_after(10):
                    while not line.endswith(b"\n"):
                        line += await proc.stdout.receive()
                assert line == word.upper() + b"\n"
            await proc.stdin.aclose()
            with manyio.fail_after(10):
                assert await proc.stdout.receive() == b""
                assert await proc.wait() == 0
            with pytest.raises(manyio.ClosedResourceError):
                await proc.stdin.send_all(b"closed")
        finally:
            await proc.aclose()
        assert proc.returncode == 0
        assert_reaped(proc.pid)

    run(main)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("kill", -signal.SIGKILL),
        ("terminate", -signal.SIGTERM),
        ("send_signal", -signal.SIGUSR1),
    ],
)
def test_kill_terminate_send_signal(method: str, expected: int) -> None:
    async def main() -> None:
        proc = await manyio.open_process(["sleep", "30"], stdin=subprocess.DEVNULL)
        start = time.monotonic()
        if method == "send_signal":
            proc.send_signal(signal.SIGUSR1)
        else:
            getattr(proc, method)()
        with manyio.fail_after(5):
            assert await proc.wait() == expected
        assert time.monotonic() - start < 5
        assert proc.returncode == expected
        # Waiting again returns at once.
        assert await proc.wait() == expected
        await proc.aclose()
        assert_reaped(proc.pid)

    run(main)


def test_writing_to_an_exited_process_is_broken() -> None:
    async def main() -> None:
        async with await manyio.open_process(["true"]) as proc:
            assert await proc.wait() == 0
            assert proc.stdin is not None
            with pytest.raises(manyio.BrokenResourceError):
                await proc.stdin.send_all(b"x" * (1 << 20))

    run(main)


def test_aclose_on_cancellation_kills_the_process() -> None:
    async def main() -> None:
        start = time.monotonic()
        with manyio.move_on_after(0.2) as scope:
            async with await manyio.open_process(["sleep", "30"]) as proc:
                await proc.wait()
        assert scope.cancelled_caught
        assert time.monotonic() - start < 5
        assert proc.returncode == -signal.SIGKILL
        assert_reaped(proc.pid)

    run(main)


def test_cancelled_run_process_kills_and_reaps_the_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def main() -> None:
        start = time.monotonic()
        async with manyio.TaskGroup() as tg:

            async def child() -> None:
                # exec: the pid we record is the process run_process started.
                await manyio.run_process(
                    ["sh", "-c", f'echo $$ > "{pidfile}.tmp"; mv "{pidfile}.tmp" "{pidfile}"; exec sleep 30']
                )
                raise AssertionError("run_process should have been cancelled")

            tg.start_soon(child)
            with manyio.fail_after(5):
                while not pidfile.exists():
                    await manyio.sleep(0.01)
            pid = int(pidfile.read_text())
            os.kill(pid, 0)  # running
            tg.cancel_scope.cancel()
        assert time.monotonic() - start < 5
        # Reaped by the time the cancelled task finished: no zombie left behind.
        assert_reaped(pid)

    run(main)


def test_deadline_on_run_process_with_output_pending() -> None:
    # The child keeps writing; the deadline stops run_process mid-drain.
    async def main() -> None:
        start = time.monotonic()
        with manyio.move_on_after(0.3) as scope:
            await manyio.run_process(["sh", "-c", "while :; do echo spam; done"])
        assert scope.cancelled_caught
        assert time.monotonic() - start < 5

    run(main)


def test_wait_from_two_tasks() -> None:
    async def main() -> None:
        proc = await manyio.open_process(["sleep", "0.3"], stdin=subprocess.DEVNULL)
        results: list[int] = []

        async def waiter() -> None:
            results.append(await proc.wait())

        with manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                tg.start_soon(waiter)
                tg.start_soon(waiter)
        assert results == [0, 0]
        await proc.aclose()

    run(main)


def test_many_concurrent_processes() -> None:
    count = 60

    async def main() -> None:
        results: dict[int, subprocess.CompletedProcess[bytes]] = {}

        async def one(n: int) -> None:
            results[n] = await manyio.run_process(
                ["sh", "-c", f"cat; echo out{n}; echo err{n} >&2; exit {n % 4}"],
                input=b"in%d\n" % n,
                check=False,
            )

        with manyio.fail_after(30):
            async with manyio.TaskGroup() as tg:
                for n in range(count):
                    tg.start_soon(one, n)
        assert sorted(results) == list(range(count))
        for n, result in results.items():
            assert result.returncode == n % 4
            assert result.stdout == b"in%d\nout%d\n" % (n, n)
            assert result.stderr == b"err%d\n" % n

    run(main)


def test_many_concurrent_open_process_streams() -> None:
    count = 20
    size = 256 * 1024

    async def main() -> None:
        async def one(n: int) -> bytes:
            payload = bytes([n]) * size
            async with await manyio.open_process(["cat"]) as proc:
                assert proc.stdin is not None

                async def feed() -> None:
                    assert proc.stdin is not None
                    await proc.stdin.send_all(payload)
                    await proc.stdin.aclose()

                async with manyio.TaskGroup() as tg:
                    tg.start_soon(feed)
                    out = await read_all(proc.stdout)
                assert await proc.wait() == 0
            return out

        with manyio.fail_after(30):
            async with manyio.TaskGroup() as tg:
                tasks = [tg.spawn(one(n)) for n in range(count)]
        for n, task in enumerate(tasks):
            assert task.result() == bytes([n]) * size

    run(main)
