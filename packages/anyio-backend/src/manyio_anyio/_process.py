"""AnyIO's process interface over :func:`manyio.open_process` (pidfd waits, pipe streams)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from os import PathLike
from signal import Signals
from typing import IO, Any

import manyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream, abc

from ._tasks import CancelScope


class _ReceiveStream(abc.ByteReceiveStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._eof = False
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        if self._closed:
            raise ClosedResourceError
        if self._eof:
            raise EndOfStream
        try:
            data = await self._stream.receive(max_bytes)
        except manyio.ClosedResourceError as exc:
            raise ClosedResourceError from exc
        if not data:
            # Nothing more can come: release the pipe now (as asyncio's pipe transports do),
            # not when the process object is collected.
            self._eof = True
            self._stream.close()
            raise EndOfStream
        return data

    async def aclose(self) -> None:
        self._closed = True
        await self._stream.aclose()


class _SendStream(abc.ByteSendStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def send(self, item: bytes) -> None:
        try:
            await self._stream.send_all(item)
        except manyio.ClosedResourceError as exc:
            raise ClosedResourceError from exc
        except (manyio.BrokenResourceError, OSError) as exc:
            raise BrokenResourceError from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


class Process(abc.Process):
    def __init__(self, process: manyio.Process) -> None:
        self._process = process
        self._stdin = _SendStream(process.stdin) if process.stdin else None
        self._stdout = _ReceiveStream(process.stdout) if process.stdout else None
        self._stderr = _ReceiveStream(process.stderr) if process.stderr else None

    async def aclose(self) -> None:
        with CancelScope(shield=True):
            for stream in (self._stdin, self._stdout, self._stderr):
                if stream is not None:
                    await stream.aclose()
        try:
            await self.wait()
        except BaseException:
            self.kill()
            with CancelScope(shield=True):
                await self.wait()
            raise

    async def wait(self) -> int:
        return await self._process.wait()

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    def send_signal(self, signal: Signals) -> None:
        self._process.send_signal(signal)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    @property
    def stdin(self) -> abc.ByteSendStream | None:
        return self._stdin

    @property
    def stdout(self) -> abc.ByteReceiveStream | None:
        return self._stdout

    @property
    def stderr(self) -> abc.ByteReceiveStream | None:
        return self._stderr


async def open_process(
    command: str
    | bytes
    | PathLike[str]
    | PathLike[bytes]
    | Sequence[str | bytes | PathLike[str] | PathLike[bytes]],
    *,
    stdin: int | IO[Any] | None,
    stdout: int | IO[Any] | None,
    stderr: int | IO[Any] | None,
    **kwargs: Any,
) -> Process:
    if isinstance(command, str | bytes | PathLike):
        args: Any = os.fsdecode(os.fspath(command))
        shell = True
    else:
        args = [os.fsdecode(os.fspath(item)) for item in command]
        shell = False
    process = await manyio.open_process(
        args, stdin=stdin, stdout=stdout, stderr=stderr, shell=shell, **kwargs
    )
    return Process(process)


async def shut_down_process_pool(workers: set[abc.Process]) -> None:
    """Runs until the run ends; then kills AnyIO's worker processes and reaps them."""
    try:
        await manyio.sleep(math.inf)
    except manyio.Cancelled:
        for process in workers:
            if process.returncode is None:
                process.kill()
        with CancelScope(shield=True):
            for process in workers:
                await process.aclose()
        raise
