"""Files: ``manyio.open_file``, ``manyio.wrap_file`` and ``manyio.Path``."""

from __future__ import annotations

import io
import os
import pathlib
import stat
import threading
import time
from pathlib import Path as StdPath

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


# --- open_file / AsyncFile ---


def test_text_file_round_trip(tmp_path: StdPath) -> None:
    target = tmp_path / "notes.txt"

    async def main() -> None:
        async with await manyio.open_file(target, "w", encoding="utf-8") as f:
            assert isinstance(f, manyio.AsyncFile)
            assert f.name == str(target)
            assert not f.closed
            assert await f.write("first line\n") == len("first line\n")
            await f.writelines(["second ✓\n", "third\n"])
            await f.flush()
            assert target.read_text(encoding="utf-8") == "first line\nsecond ✓\nthird\n"
        assert f.closed

        async with await manyio.open_file(str(target), encoding="utf-8") as f:
            assert await f.readline() == "first line\n"
            assert await f.read() == "second ✓\nthird\n"
            assert await f.read() == ""
            assert await f.seek(0) == 0
            assert await f.readlines() == ["first line\n", "second ✓\n", "third\n"]
            await f.seek(0)
            assert [line async for line in f] == ["first line\n", "second ✓\n", "third\n"]
            assert isinstance(f.wrapped, io.TextIOWrapper)
            assert "AsyncFile" in repr(f)

    run(main)


def test_binary_file_operations(tmp_path: StdPath) -> None:
    target = tmp_path / "data.bin"
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def main() -> None:
        async with await manyio.open_file(target, "w+b") as f:
            assert await f.write(payload) == len(payload)
            assert await f.tell() == len(payload)
            assert await f.seek(-10, os.SEEK_END) == len(payload) - 10
            assert await f.read() == payload[-10:]
            assert await f.seek(100) == 100
            assert await f.read(5) == payload[100:105]
            assert await f.truncate(1000) == 1000
            await f.seek(0)
            buf = bytearray(600)
            assert await f.readinto(buf) == 600
            assert bytes(buf) == payload[:600]
            chunk = await f.read1(10_000)
            assert chunk == payload[600 : 600 + len(chunk)]
            assert 0 < len(chunk) <= 400
        assert target.stat().st_size == 1000

        async with await manyio.open_file(target, "ab") as f:
            await f.write(b"tail")
        assert target.read_bytes() == payload[:1000] + b"tail"

        # Iterating a binary file yields lines, too.
        target.write_bytes(b"a\nbb\n\nccc")
        async with await manyio.open_file(target, "rb") as f:
            assert [line async for line in f] == [b"a\n", b"bb\n", b"\n", b"ccc"]

    run(main)


def test_open_file_accepts_a_file_descriptor(tmp_path: StdPath) -> None:
    target = tmp_path / "fd.txt"
    target.write_text("via fd")

    async def main() -> None:
        fd = os.open(target, os.O_RDONLY)
        async with await manyio.open_file(fd, "r") as f:
            assert await f.read() == "via fd"
        with pytest.raises(OSError):
            os.fstat(fd)  # closed with the file (closefd=True)

        fd = os.open(target, os.O_RDONLY)
        try:
            async with await manyio.open_file(fd, "r", closefd=False) as f:
                assert await f.read() == "via fd"
            os.fstat(fd)  # still open
        finally:
            os.close(fd)

    run(main)


def test_wrap_file(tmp_path: StdPath) -> None:
    async def main() -> None:
        memory = manyio.wrap_file(io.BytesIO(b"in memory\nsecond\n"))
        assert await memory.readline() == b"in memory\n"
        assert [line async for line in memory] == [b"second\n"]
        assert isinstance(memory.wrapped, io.BytesIO)

        with open(tmp_path / "wrapped.txt", "w+") as raw:
            async with manyio.wrap_file(raw) as f:
                await f.write("hello")
                await f.seek(0)
                assert await f.read() == "hello"
            assert raw.closed

    run(main)


def test_file_calls_run_off_the_worker_thread() -> None:
    class Recorder(io.RawIOBase):
        def __init__(self) -> None:
            self.threads: set[int] = set()

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            self.threads.add(threading.get_ident())
            return 0

        def close(self) -> None:
            self.threads.add(threading.get_ident())
            super().close()

    async def main() -> None:
        raw = Recorder()
        f = manyio.wrap_file(raw)
        worker = threading.get_ident()
        assert await f.read() == b""
        assert await f.readinto(bytearray(4)) == 0
        await f.aclose()
        assert raw.threads and worker not in raw.threads

    run(main)


def test_blocking_open_of_a_fifo_does_not_stall_the_worker(tmp_path: StdPath) -> None:
    # Opening a FIFO for reading blocks until a writer shows up. With a single worker thread,
    # another task can only keep running if that open happens elsewhere.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main() -> None:
        ticks = 0
        opened = manyio.Event()
        stop = manyio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await manyio.sleep(0.005)

        async def reader() -> bytes:
            async with await manyio.open_file(fifo, "rb") as f:
                opened.set()
                return await f.read()  # blocks until the writer closes, also off the worker

        async with manyio.TaskGroup() as tg:
            tg.start_soon(ticker)
            read_task = tg.spawn(reader())
            start = manyio.current_time()
            await manyio.sleep(0.3)
            assert not opened.is_set()  # still blocked in open()
            assert ticks >= 10  # and the worker kept running other tasks meanwhile
            writer = await manyio.to_thread(open, fifo, "wb")
            with manyio.fail_after(5):
                await opened.wait()
            before = ticks
            await manyio.sleep(0.1)  # the reader now blocks in read()
            assert ticks > before
            await manyio.to_thread(writer.write, b"through the fifo")
            await manyio.to_thread(writer.close)
            with manyio.fail_after(5):
                assert await read_task == b"through the fifo"
            stop.set()
        assert manyio.current_time() - start < 5

    run(main, threads=1)


def test_errors_propagate(tmp_path: StdPath) -> None:
    missing = tmp_path / "missing" / "file.txt"

    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await manyio.open_file(missing)
        with pytest.raises(IsADirectoryError):
            await manyio.open_file(tmp_path, "w")
        with pytest.raises(ValueError):
            await manyio.open_file(tmp_path / "x", "bogus-mode")
        async with await manyio.open_file(tmp_path / "ro.txt", "w") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.read()
        closed = await manyio.open_file(tmp_path / "ro.txt")
        await closed.aclose()
        with pytest.raises(ValueError, match="closed"):
            await closed.read()

        p = manyio.Path(missing)
        with pytest.raises(FileNotFoundError):
            await p.read_text()
        with pytest.raises(FileNotFoundError):
            await p.stat()
        with pytest.raises(FileNotFoundError):
            await p.unlink()
        await p.unlink(missing_ok=True)
        with pytest.raises(FileNotFoundError):
            await p.write_text("no parent directory")
        with pytest.raises(FileExistsError):
            await manyio.Path(tmp_path).mkdir()
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "f").touch()
        with pytest.raises(OSError):
            await manyio.Path(tmp_path / "full").rmdir()

    run(main)


def test_many_concurrent_file_operations(tmp_path: StdPath) -> None:
    count = 50

    async def main() -> None:
        async def one(n: int) -> bool:
            path = manyio.Path(tmp_path) / f"file{n}.txt"
            await path.write_text(f"content {n}\n" * (n + 1))
            async with await path.open() as f:
                lines = [line async for line in f]
            return lines == [f"content {n}\n"] * (n + 1)

        with manyio.fail_after(30):
            async with manyio.TaskGroup() as tg:
                tasks = [tg.spawn(one(n)) for n in range(count)]
        assert all(t.result() for t in tasks)
        assert len(list(tmp_path.iterdir())) == count

    run(main)


# --- Path ---


def test_path_pure_operations_are_synchronous() -> None:
    p = manyio.Path("/srv/data") / "archive.tar.gz"
    assert isinstance(p, manyio.Path)
    assert isinstance(p, os.PathLike)
    assert os.fspath(p) == "/srv/data/archive.tar.gz"
    assert str(p) == "/srv/data/archive.tar.gz"
    assert repr(p) == "manyio.Path('/srv/data/archive.tar.gz')"
    assert p.name == "archive.tar.gz"
    assert p.suffix == ".gz"
    assert p.suffixes == [".tar", ".gz"]
    assert p.stem == "archive.tar"
    assert p.parts == ("/", "srv", "data", "archive.tar.gz")
    assert p.is_absolute()
    assert isinstance(p.parent, manyio.Path)
    assert p.parent == manyio.Path("/srv/data")
    assert hash(p.parent) == hash(manyio.Path("/srv/data"))
    assert p.wrapped == pathlib.Path("/srv/data/archive.tar.gz")
    assert manyio.Path("a", "b") == manyio.Path("a/b")
    assert isinstance("base" / manyio.Path("x"), manyio.Path)
    assert os.fspath("base" / manyio.Path("x")) == "base/x"
    assert manyio.Path("a") / manyio.Path("b") == manyio.Path("a/b")
    assert p.match("*.gz")


def test_path_derived_paths_are_manyio_paths() -> None:
    # Methods that derive a new path give a manyio.Path, so its file-system methods stay
    # awaitable (a pathlib.Path here would run them synchronously, blocking a worker).
    p = manyio.Path("/srv/data/archive.tar.gz")
    derived = {
        "with_suffix": p.with_suffix(".zip"),
        "with_name": p.with_name("other.txt"),
        "with_stem": p.with_stem("renamed"),
        "joinpath": p.parent.joinpath("sub", "file"),
        "relative_to": p.relative_to("/srv"),
    }
    assert {name: type(value).__name__ for name, value in derived.items()} == dict.fromkeys(derived, "Path")
    assert all(isinstance(value, manyio.Path) for value in derived.values())
    assert os.fspath(derived["with_suffix"]) == "/srv/data/archive.tar.zip"
    assert all(isinstance(parent, manyio.Path) for parent in p.parents)


def test_path_derived_paths_work_in_async_code(tmp_path: StdPath) -> None:
    async def main() -> None:
        p = manyio.Path(tmp_path) / "report.txt"
        await p.write_text("x")
        backup = p.with_suffix(".bak")
        assert not await backup.exists()  # needs an awaitable exists()
        await p.rename(backup)
        assert await backup.exists()

    run(main)


def test_path_samefile_accepts_a_manyio_path(tmp_path: StdPath) -> None:
    async def main() -> None:
        a = manyio.Path(tmp_path) / "a"
        await a.write_text("a")
        link = manyio.Path(tmp_path) / "link"
        await link.symlink_to(a)
        assert await link.samefile(a)
        assert not await link.samefile(manyio.Path(tmp_path))

    run(main)


def test_path_file_system_methods(tmp_path: StdPath) -> None:
    async def main() -> None:
        root = manyio.Path(tmp_path)
        d = root / "a" / "b"
        assert not await d.exists()
        await d.mkdir(parents=True)
        assert await d.exists() and await d.is_dir() and not await d.is_file()

        f = d / "hello.txt"
        assert await f.write_text("hello ✓", encoding="utf-8") == len("hello ✓")
        assert await f.read_text(encoding="utf-8") == "hello ✓"
        assert await f.is_file()
        st = await f.stat()
        assert st.st_size == len("hello ✓".encode())
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_ISREG((await f.lstat()).st_mode)

        b = d / "blob.bin"
        assert await b.write_bytes(b"\x00\x01\x02") == 3
        assert await b.read_bytes() == b"\x00\x01\x02"

        t = root / "touched"
        await t.touch()
        assert (await t.stat()).st_size == 0
        await t.chmod(0o600)
        assert stat.S_IMODE((await t.stat()).st_mode) == 0o600

        # rename/replace/resolve return manyio paths.
        moved = await t.rename(root / "moved")
        assert isinstance(moved, manyio.Path)
        assert not await t.exists() and await moved.exists()
        replaced = await moved.replace(d / "hello.txt")
        assert isinstance(replaced, manyio.Path)
        assert await (d / "hello.txt").read_text() == ""
        resolved = await (root / "a" / ".." / "a" / "b").resolve()
        assert isinstance(resolved, manyio.Path)
        assert resolved == await d.resolve()
        absolute = await manyio.Path("relative").absolute()
        assert isinstance(absolute, manyio.Path) and absolute.is_absolute()

        # Symlinks.
        link = root / "link"
        await link.symlink_to(d / "blob.bin")
        assert await link.is_symlink()
        assert await link.readlink() == d / "blob.bin"
        assert await link.samefile(os.fspath(d / "blob.bin"))
        assert await link.read_bytes() == b"\x00\x01\x02"
        hard = root / "hard"
        await hard.hardlink_to(d / "blob.bin")
        assert (await hard.stat()).st_nlink == 2

        # Listing.
        entries = await d.iterdir()
        assert all(isinstance(e, manyio.Path) for e in entries)
        assert sorted(e.name for e in entries) == ["blob.bin", "hello.txt"]
        assert [e.name for e in await d.glob("*.txt")] == ["hello.txt"]
        assert sorted(e.name for e in await root.rglob("*.bin")) == ["blob.bin"]
        assert all(isinstance(e, manyio.Path) for e in await root.rglob("*"))

        # Opening through the path.
        async with await (d / "hello.txt").open("w") as fh:
            await fh.write("via Path.open")
        assert await (d / "hello.txt").read_text() == "via Path.open"
        async with await manyio.open_file(d / "hello.txt") as fh:  # os.PathLike accepted
            assert await fh.read() == "via Path.open"

        # Owner/group of a file we just made are ours.
        assert await f.owner() == pathlib.Path(tmp_path).owner()
        assert await f.group() == pathlib.Path(tmp_path).group()

        # Removing.
        for name in ("hello.txt", "blob.bin"):
            await (d / name).unlink()
        await d.rmdir()
        assert not await d.exists()

    run(main)


def test_path_cwd_home_expanduser(tmp_path: StdPath, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    async def main() -> None:
        cwd = await manyio.Path.cwd()
        assert isinstance(cwd, manyio.Path)
        assert cwd == manyio.Path(os.getcwd())
        home = await manyio.Path.home()
        assert isinstance(home, manyio.Path)
        assert home == manyio.Path(tmp_path)
        expanded = await manyio.Path("~/x").expanduser()
        assert isinstance(expanded, manyio.Path)
        assert expanded == manyio.Path(tmp_path) / "x"

    run(main)


def test_path_methods_run_off_the_worker(tmp_path: StdPath) -> None:
    # While one Path call is stuck in the file system (a FIFO read), the only worker keeps going.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def main() -> None:
        ticks = 0

        async def read_it() -> bytes:
            return await manyio.Path(fifo).read_bytes()

        task = manyio.spawn(read_it())
        start = time.monotonic()
        while time.monotonic() - start < 0.2:
            ticks += 1
            await manyio.sleep(0.005)
        assert ticks >= 10 and not task.done()
        await manyio.to_thread(lambda: fifo.write_bytes(b"fifo data"))
        with manyio.fail_after(5):
            assert await task == b"fifo data"

    run(main, threads=1)
