"""Subprocesses: pipes are byte streams on the reactor, and exit is watched through a pidfd
(no SIGCHLD handler, no helper thread per child).

Example::

    result = await manyio.run_process(["echo", "hi"])
    assert result.stdout == b"hi\\n"
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import IO, Any

from ._core import (
    CancelScope,
    cancel_shielded_checkpoint,
    check_cancelled,
    checkpoint,
    notify_closing,
    wait_readable,
    wait_writable,
)
from ._exceptions import BrokenResourceError, ClosedResourceError
from ._sync import Lock
from ._taskgroup import TaskGroup

__all__ = ["FdStream", "Process", "open_process", "run_process"]

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

_Command = str | bytes | os.PathLike[str] | Sequence[str | bytes | os.PathLike[str]]


_PIPE_CHUNK = 1 << 20  # at most this much per os.write (a pipe takes 64 KiB by default)


class FdStream:
    """A byte stream over one end of a pipe (non-blocking ``os.read``/``os.write``)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._fd = file.fileno()
        os.set_blocking(self._fd, False)
        self._closed = False

    def fileno(self) -> int:
        return self._fd

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes``; ``b""`` when the other end is closed."""
        check_cancelled()
        while True:
            if self._closed:
                raise ClosedResourceError("this pipe was closed")
            try:
                data = os.read(self._fd, max_bytes)
            except BlockingIOError:
                await wait_readable(self._fd)
                continue
            await cancel_shielded_checkpoint()
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        # bytes chunks, no views of the caller's buffer across awaits (see TLSStream.send_all).
        data = data if type(data) is bytes else bytes(data)
        sent = 0
        while sent < len(data):
            if self._closed:
                raise ClosedResourceError("this pipe was closed")
            try:
                sent += os.write(self._fd, data[sent : sent + _PIPE_CHUNK])
            except BlockingIOError:
                await wait_writable(self._fd)
            except BrokenPipeError as e:
                raise BrokenResourceError("the process closed its end of the pipe") from e
        await checkpoint()

    send = send_all

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.receive():
            yield chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            notify_closing(self._fd)
        except RuntimeError:
            pass
        self._file.close()

    async def aclose(self) -> None:
        self.close()
        await checkpoint()

    async def __aenter__(self) -> FdStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Process:
    """A running child process (see :func:`open_process`)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.stdin = FdStream(popen.stdin) if popen.stdin else None
        self.stdout = FdStream(popen.stdout) if popen.stdout else None
        self.stderr = FdStream(popen.stderr) if popen.stderr else None
        self._pidfd: int | None = os.pidfd_open(popen.pid)
        # One task at a time watches the pidfd; other waiters queue on the lock and find the
        # exit status when they get it (a cancelled watcher hands over to the next one).
        self._watch = Lock()

    @property
    def pid(self) -> int:
        """The process id."""
        return self._popen.pid

    @property
    def args(self) -> Any:
        """The command, as given."""
        return self._popen.args

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited (negative: killed by that signal)."""
        return self._popen.poll()

    def poll(self) -> int | None:
        """The exit status if the process has exited, else None (does not wait)."""
        return self._popen.poll()

    async def wait(self) -> int:
        """Waits for the process to exit and returns its exit status (any number of tasks
        may wait at once)."""
        if self._popen.poll() is None:
            async with self._watch:
                while self._popen.poll() is None:
                    if self._pidfd is None:
                        raise ClosedResourceError("this process handle was closed")
                    await wait_readable(self._pidfd)
                self._close_pidfd()
        await checkpoint()
        return self._popen.returncode

    def send_signal(self, sig: int) -> None:
        """Sends signal ``sig`` to the process."""
        self._popen.send_signal(sig)

    def terminate(self) -> None:
        """Sends SIGTERM."""
        self._popen.terminate()

    def kill(self) -> None:
        """Sends SIGKILL."""
        self._popen.kill()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            try:
                notify_closing(fd)
            except RuntimeError:
                pass
            os.close(fd)

    async def aclose(self) -> None:
        """Closes the pipes and waits for the process to exit; if that wait is cancelled, the
        process is killed (and reaped) before the cancellation propagates."""
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        try:
            await self.wait()
        finally:
            if self._popen.poll() is None:
                self.kill()
                with CancelScope(shield=True):
                    await self.wait()

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<manyio.Process pid={self.pid} returncode={self.returncode}>"


async def open_process(
    command: _Command,
    *,
    stdin: int | IO[Any] | None = PIPE,
    stdout: int | IO[Any] | None = PIPE,
    stderr: int | IO[Any] | None = PIPE,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    shell: bool | None = None,
    **popen_kwargs: Any,
) -> Process:
    """Starts ``command``. ``stdin``/``stdout``/``stderr`` take :data:`subprocess.PIPE` (the
    default: a byte stream on the process object), ``DEVNULL``, a file, an fd or ``None``
    (inherit). A string command runs through the shell, a sequence does not.
    """
    if shell is None:
        shell = isinstance(command, str | bytes)
    popen = subprocess.Popen(
        command,  # type: ignore[arg-type]
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        shell=shell,
        **popen_kwargs,
    )
    try:
        process = Process(popen)
    except BaseException:
        popen.kill()
        popen.wait()
        raise
    await checkpoint()
    return process


async def run_process(
    command: _Command,
    *,
    input: bytes | None = None,
    stdout: int | IO[Any] | None = PIPE,
    stderr: int | IO[Any] | None = PIPE,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **popen_kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Runs ``command`` to completion, feeding it ``input`` and collecting its output.

    Raises :class:`subprocess.CalledProcessError` for a non-zero exit when ``check`` is true.
    Cancelling it kills the process.
    """
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

    async def drain(name: str, stream: FdStream) -> None:
        async for chunk in stream:
            chunks[name].append(chunk)

    async def feed(stream: FdStream) -> None:
        try:
            if input:
                await stream.send_all(input)
        except BrokenResourceError:
            pass
        finally:
            await stream.aclose()

    process = await open_process(
        command,
        stdin=PIPE if input is not None else DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=env,
        **popen_kwargs,
    )
    try:
        async with TaskGroup() as tg:
            if process.stdin is not None:
                tg.start_soon(feed, process.stdin)
            if process.stdout is not None:
                tg.start_soon(drain, "stdout", process.stdout)
            if process.stderr is not None:
                tg.start_soon(drain, "stderr", process.stderr)
        returncode = await process.wait()
    except BaseException:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        with CancelScope(shield=True):
            await process.aclose()
        raise
    await process.aclose()
    out = b"".join(chunks["stdout"]) if process.stdout is not None else None
    err = b"".join(chunks["stderr"]) if process.stderr is not None else None
    if check and returncode != 0:
        raise subprocess.CalledProcessError(returncode, process.args, out, err)
    return subprocess.CompletedProcess(process.args, returncode, out, err)
