"""The test runner behind AnyIO's pytest plugin (``anyio_backend = "manyio"``).

One runtime lives as long as the runner; a single runner task (in the run's strand by
default) awaits every fixture and test in turn, so context variables set by a fixture are
seen by the test, as on AnyIO's other backends. The pytest thread hands work over with
``Runtime.block_on``, which also serves calls that must happen on the main thread.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

import manyio
from anyio import abc

from ._token import RunToken, current_run

T = TypeVar("T")


class _Job:
    __slots__ = ("done", "error", "func", "kwargs", "result")

    def __init__(self, func: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self.func = func
        self.kwargs = kwargs
        self.done = manyio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class TestRunner(abc.TestRunner):
    def __init__(self, **options: Any) -> None:
        from ._backend import run_options

        self._threads, self._parallel, self._handler = run_options(options)
        self._runtime: manyio.Runtime | None = None
        self._token: RunToken | None = None
        self._jobs: manyio.Queue[_Job | None] | None = None
        self._runner: manyio.Task[None] | None = None
        self._running = False

    def __enter__(self) -> TestRunner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        runtime = self._runtime
        if runtime is None:
            return
        jobs, runner = self._jobs, self._runner
        assert jobs is not None and runner is not None

        async def stop() -> None:
            await jobs.put(None)
            await runner

        try:
            runtime.block_on(stop())
        finally:
            runtime.close()
            self._runtime = None

    def _start(self) -> manyio.Runtime:
        if self._runtime is None:
            runtime = manyio.Runtime(self._threads, exception_handler=self._handler)
            strand = None if self._parallel else manyio.Strand()
            self._token = RunToken(runtime, strand)
            self._jobs = manyio.Queue()
            self._runner = runtime.block_on(self._spawn_runner(), strand=strand)
            self._runtime = runtime
        return self._runtime

    async def _spawn_runner(self) -> manyio.Task[None]:
        assert self._token is not None
        current_run.set(self._token)
        return manyio.spawn(self._serve())

    async def _serve(self) -> None:
        jobs = self._jobs
        assert jobs is not None
        while (job := await jobs.get()) is not None:
            try:
                job.result = await job.func(**job.kwargs)
            except BaseException as exc:
                job.error = exc
            finally:
                job.done.set()

    def _call(self, func: Callable[..., Coroutine[Any, Any, T]], kwargs: dict[str, Any]) -> T:
        runtime = self._start()
        jobs = self._jobs
        assert jobs is not None
        job = _Job(func, kwargs)

        async def submit() -> None:
            await jobs.put(job)
            with manyio.CancelScope(shield=True):
                await job.done.wait()

        self._running = True
        try:
            runtime.block_on(submit())
        finally:
            self._running = False
        if job.error is not None:
            try:
                raise job.error
            finally:
                job.error = None
        return job.result

    def is_running(self) -> bool:
        return self._running

    def run_asyncgen_fixture(
        self, fixture_func: Callable[..., AsyncGenerator[T, Any]], kwargs: dict[str, Any]
    ) -> Iterable[T]:
        agen: AsyncGenerator[T, Any] = fixture_func(**kwargs)
        value = self._call(_first, {"agen": agen})
        yield value
        try:
            self._call(_first, {"agen": agen})
        except StopAsyncIteration:
            pass
        else:
            self._call(_close, {"agen": agen})
            raise RuntimeError("Async generator fixture did not stop")

    def run_fixture(self, fixture_func: Callable[..., Coroutine[Any, Any, T]], kwargs: dict[str, Any]) -> T:
        return self._call(fixture_func, kwargs)

    def run_test(self, test_func: Callable[..., Coroutine[Any, Any, Any]], kwargs: dict[str, Any]) -> None:
        self._call(test_func, kwargs)


async def _first(agen: AsyncGenerator[Any, Any]) -> Any:
    return await agen.asend(None)


async def _close(agen: AsyncGenerator[Any, Any]) -> None:
    await agen.aclose()
