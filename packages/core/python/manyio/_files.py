"""Files without blocking a worker: :func:`open_file` and :class:`Path` run the blocking
calls on the thread pool (:func:`to_thread`).

Example::

    async with await manyio.open_file("data.txt") as f:
        async for line in f:
            ...
    text = await manyio.Path("config.toml").read_text()
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial
from typing import IO, Any

from ._threads import to_thread

__all__ = ["AsyncFile", "Path", "open_file", "wrap_file"]


class AsyncFile:
    """A file object whose blocking methods are awaitable (run on the thread pool)."""

    def __init__(self, file: IO[Any]) -> None:
        self._file = file

    @property
    def wrapped(self) -> IO[Any]:
        """The underlying (synchronous) file object."""
        return self._file

    @property
    def name(self) -> Any:
        """The file's name, as the wrapped file reports it."""
        return self._file.name

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return self._file.closed

    async def read(self, size: int = -1) -> Any:
        """Reads up to ``size`` characters or bytes (all with -1)."""
        return await to_thread(self._file.read, size)

    async def read1(self, size: int = -1) -> bytes:
        """Reads up to ``size`` bytes with at most one call to the raw stream (binary files)."""
        return await to_thread(self._file.read1, size)  # type: ignore[attr-defined]

    async def readline(self, size: int = -1) -> Any:
        """Reads one line (at most ``size`` characters or bytes)."""
        return await to_thread(self._file.readline, size)

    async def readlines(self, hint: int = -1) -> list[Any]:
        """Reads the remaining lines (stopping after about ``hint`` characters or bytes)."""
        return await to_thread(self._file.readlines, hint)

    async def readinto(self, buffer: Any) -> int:
        """Reads into ``buffer`` and returns the number of bytes read (binary files)."""
        return await to_thread(self._file.readinto, buffer)  # type: ignore[attr-defined]

    async def write(self, data: Any) -> int:
        """Writes ``data``; returns how much was written."""
        return await to_thread(self._file.write, data)

    async def writelines(self, lines: Iterable[Any]) -> None:
        """Writes each item of ``lines``."""
        await to_thread(self._file.writelines, lines)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Moves to ``offset`` (relative to ``whence``); returns the new position."""
        return await to_thread(self._file.seek, offset, whence)

    async def tell(self) -> int:
        """The current position."""
        return await to_thread(self._file.tell)

    async def truncate(self, size: int | None = None) -> int:
        """Resizes the file to ``size`` (default: the current position); returns the new size."""
        return await to_thread(self._file.truncate, size)

    async def flush(self) -> None:
        """Flushes the write buffer."""
        await to_thread(self._file.flush)

    async def aclose(self) -> None:
        """Closes the file."""
        await to_thread(self._file.close)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[Any]:
        while line := await self.readline():
            yield line

    async def __aenter__(self) -> AsyncFile:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<manyio.AsyncFile {self._file!r}>"


async def open_file(
    file: str | bytes | os.PathLike[Any] | int,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
) -> AsyncFile:
    """Like :func:`open`, but the open and every later call run on the thread pool."""
    f = await to_thread(open, file, mode, buffering, encoding, errors, newline, closefd)
    return AsyncFile(f)


def wrap_file(file: IO[Any]) -> AsyncFile:
    """Wraps an already open file object."""
    return AsyncFile(file)


def _plain(value: Any) -> Any:
    """A manyio.Path argument as the pathlib path it wraps (pathlib would call its async
    methods synchronously)."""
    return value._path if isinstance(value, Path) else value


def _wrap(value: Any) -> Any:
    if isinstance(value, pathlib.PurePath):
        return Path(value)
    if isinstance(value, tuple | list) and value and all(isinstance(v, pathlib.PurePath) for v in value):
        return type(value)(Path(v) for v in value)
    return value


def _blocking(name: str, wraps: bool = False) -> Callable[..., Any]:
    method = getattr(pathlib.Path, name)

    async def call(self: Path, *args: Any, **kwargs: Any) -> Any:
        args = tuple(_plain(a) for a in args)
        kwargs = {k: _plain(v) for k, v in kwargs.items()}
        result = await to_thread(partial(method, self._path, *args, **kwargs))
        return Path(result) if wraps and isinstance(result, pathlib.PurePath) else result

    call.__name__ = name
    call.__qualname__ = f"Path.{name}"
    call.__doc__ = f"Awaitable :meth:`pathlib.Path.{name}`, run on the thread pool."
    return call


class Path(os.PathLike[str]):
    """:class:`pathlib.Path` whose file-system methods are awaitable; pure-path operations
    (``/``, ``name``, ``suffix``, ``parent``, ...) stay synchronous."""

    __slots__ = ("_path",)

    def __init__(self, *args: str | os.PathLike[str]) -> None:
        self._path = pathlib.Path(*args)

    def __fspath__(self) -> str:
        return os.fspath(self._path)

    def __str__(self) -> str:
        return str(self._path)

    def __repr__(self) -> str:
        return f"manyio.Path({str(self._path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and self._path == other._path

    def __hash__(self) -> int:
        return hash(self._path)

    def __truediv__(self, other: str | os.PathLike[str]) -> Path:
        return Path(self._path / other)

    def __rtruediv__(self, other: str | os.PathLike[str]) -> Path:
        return Path(other / self._path)

    @property
    def wrapped(self) -> pathlib.Path:
        """The :class:`pathlib.Path` this wraps."""
        return self._path

    def __getattr__(self, name: str) -> Any:
        # Pure attributes and methods (name, suffix, parent, with_suffix, joinpath, ...): the
        # paths they produce are manyio paths too, so their I/O methods stay awaitable.
        value = getattr(self._path, name)
        if callable(value):

            def pure(*args: Any, **kwargs: Any) -> Any:
                args = tuple(_plain(a) for a in args)
                kwargs = {k: _plain(v) for k, v in kwargs.items()}
                return _wrap(value(*args, **kwargs))

            pure.__name__ = name
            return pure
        if name == "parents":
            return tuple(Path(p) for p in value)
        return _wrap(value)

    async def open(
        self,
        mode: str = "r",
        buffering: int = -1,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> AsyncFile:
        """Opens the file, like :func:`open_file`."""
        return await open_file(self._path, mode, buffering, encoding, errors, newline)

    async def iterdir(self) -> list[Path]:
        """The directory's entries (a list: the listing happens on the thread pool)."""
        return [Path(p) for p in await to_thread(lambda: list(self._path.iterdir()))]

    async def glob(self, pattern: str) -> list[Path]:
        """The paths matching ``pattern`` under this directory (a list)."""
        return [Path(p) for p in await to_thread(lambda: list(self._path.glob(pattern)))]

    async def rglob(self, pattern: str) -> list[Path]:
        """The paths matching ``pattern`` in this directory and all below it (a list)."""
        return [Path(p) for p in await to_thread(lambda: list(self._path.rglob(pattern)))]

    @classmethod
    async def cwd(cls) -> Path:
        """The current working directory."""
        return cls(await to_thread(pathlib.Path.cwd))

    @classmethod
    async def home(cls) -> Path:
        """The user's home directory."""
        return cls(await to_thread(pathlib.Path.home))

    exists = _blocking("exists")
    is_dir = _blocking("is_dir")
    is_file = _blocking("is_file")
    is_symlink = _blocking("is_symlink")
    stat = _blocking("stat")
    lstat = _blocking("lstat")
    read_bytes = _blocking("read_bytes")
    read_text = _blocking("read_text")
    write_bytes = _blocking("write_bytes")
    write_text = _blocking("write_text")
    mkdir = _blocking("mkdir")
    rmdir = _blocking("rmdir")
    touch = _blocking("touch")
    unlink = _blocking("unlink")
    chmod = _blocking("chmod")
    rename = _blocking("rename", wraps=True)
    replace = _blocking("replace", wraps=True)
    resolve = _blocking("resolve", wraps=True)
    absolute = _blocking("absolute", wraps=True)
    expanduser = _blocking("expanduser", wraps=True)
    readlink = _blocking("readlink", wraps=True)
    symlink_to = _blocking("symlink_to")
    hardlink_to = _blocking("hardlink_to")
    samefile = _blocking("samefile")
    owner = _blocking("owner")
    group = _blocking("group")
