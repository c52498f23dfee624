"""The pytest plugin: async tests and async fixtures run on a manyio runtime.

The first half of this file *is* the plugin at work (async tests and fixtures in this very
suite); the second half runs small test files in a separate pytest process (pytester), to
check what a user sees: failures reported as failures, fixture teardown, the marker.
"""

from __future__ import annotations

import contextvars
import textwrap
from collections.abc import AsyncIterator

import manyio
import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.timeout(120)

_teardown_log: list[str] = []


@pytest.fixture
async def coroutine_fixture() -> int:
    await manyio.sleep(0.001)
    return manyio.current_task().id


@pytest.fixture
async def generator_fixture() -> AsyncIterator[dict[str, object]]:
    state: dict[str, object] = {"setup_task": manyio.current_task().id, "workers": manyio.stats()["workers"]}
    await manyio.checkpoint()
    yield state
    await manyio.sleep(0.001)
    _teardown_log.append("generator_fixture torn down")


@pytest.fixture
def sync_fixture() -> str:
    return "plain"


async def test_async_test_runs_in_a_manyio_task() -> None:
    task = manyio.current_task()
    assert isinstance(task, manyio.Task)
    await manyio.sleep(0.001)
    assert manyio.stats()["workers"] == 2  # the plugin's default


async def test_async_fixtures_run_on_the_runtime(
    coroutine_fixture: int, generator_fixture: dict[str, object], sync_fixture: str
) -> None:
    me = manyio.current_task().id
    assert isinstance(coroutine_fixture, int)
    assert coroutine_fixture != me  # set up in its own task, on the runtime
    assert generator_fixture["setup_task"] != me
    assert sync_fixture == "plain"


def test_async_generator_fixture_was_torn_down() -> None:
    # Runs after the test above (same module, definition order).
    assert "generator_fixture torn down" in _teardown_log


@pytest.mark.manyio(threads=3)
async def test_marker_picks_the_number_of_threads(generator_fixture: dict[str, object]) -> None:
    assert manyio.stats()["workers"] == 3
    assert generator_fixture["workers"] == 3  # the fixture ran on the same runtime


@pytest.mark.manyio(threads=1)
async def test_marker_with_one_thread() -> None:
    assert manyio.stats()["workers"] == 1


async def test_async_test_can_use_task_groups_and_timeouts() -> None:
    results: list[int] = []

    async def child(i: int) -> None:
        await manyio.sleep(0.001)
        results.append(i)

    async with manyio.TaskGroup() as tg:
        for i in range(10):
            tg.start_soon(child, i)
    with manyio.move_on_after(0.01) as scope:
        await manyio.sleep(100)
    assert scope.cancelled_caught
    assert sorted(results) == list(range(10))


class TestInAClass:
    @pytest.fixture
    async def method_fixture(self) -> str:
        await manyio.checkpoint()
        return "from a method fixture"

    async def test_async_method(self, method_fixture: str) -> None:
        await manyio.checkpoint()
        assert method_fixture == "from a method fixture"


@pytest.mark.parametrize("n", [1, 2, 3])
async def test_parametrized_async_test(n: int) -> None:
    await manyio.sleep(0)
    assert n in (1, 2, 3)


# --- what a user sees, in a separate pytest process ---------------------------------------


def _run_pytester(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=textwrap.dedent(source))
    # The plugin is loaded through its pytest11 entry point, as for any user.
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *args)


def test_user_suite_with_async_tests_and_fixtures(pytester: pytest.Pytester) -> None:
    result = _run_pytester(
        pytester,
        """
        import pytest
        import manyio

        LOG = []

        @pytest.fixture
        async def resource():
            LOG.append("setup")
            await manyio.sleep(0.001)
            yield "resource"
            await manyio.checkpoint()
            LOG.append("teardown")

        @pytest.fixture(scope="module")
        async def module_value():
            await manyio.checkpoint()
            return 99

        @pytest.fixture
        async def derived(resource, module_value):
            await manyio.checkpoint()
            return f"{resource}-{module_value}"

        async def test_fixture_chain(derived):
            assert derived == "resource-99"

        async def test_uses_resource(resource, module_value):
            assert resource == "resource"
            assert module_value == 99
            assert manyio.current_task() is not None

        def test_teardown_ran():
            assert LOG == ["setup", "teardown", "setup", "teardown"]

        def test_sync_test_with_async_fixture(module_value):
            assert module_value == 99

        @pytest.mark.manyio(threads=4)
        async def test_marker():
            assert manyio.stats()["workers"] == 4

        async def test_fails():
            await manyio.checkpoint()
            assert 1 == 2, "async failure must be reported"

        async def test_raises():
            await manyio.sleep(0)
            raise KeyError("boom")
        """,
    )
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines(["*async failure must be reported*"])
    result.stdout.fnmatch_lines(["*KeyError*boom*"])


def test_async_test_that_hangs_in_a_cancellable_wait_is_cancelled_on_timeout(
    pytester: pytest.Pytester,
) -> None:
    result = _run_pytester(
        pytester,
        """
        import pytest
        import manyio

        CLEANED = []

        @pytest.mark.timeout(1)
        async def test_hangs():
            try:
                await manyio.sleep(100)
            finally:
                CLEANED.append(True)

        def test_cleanup_ran():
            assert CLEANED == [True]
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])


def test_failing_async_fixture_is_reported_as_an_error(pytester: pytest.Pytester) -> None:
    result = _run_pytester(
        pytester,
        """
        import pytest
        import manyio

        @pytest.fixture
        async def broken():
            await manyio.checkpoint()
            raise RuntimeError("fixture setup failed")

        async def test_needs_broken(broken):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture setup failed*"])


def test_tests_claimed_by_other_async_plugins_are_left_alone(pytester: pytest.Pytester) -> None:
    result = _run_pytester(
        pytester,
        """
        import pytest
        import manyio

        @pytest.mark.asyncio
        async def test_for_asyncio():
            # Not ours: it must not run on manyio.
            manyio.current_task()

        @pytest.mark.anyio
        async def test_for_anyio():
            manyio.current_task()
        """,
        "-W",
        "ignore::pytest.PytestUnknownMarkWarning",
    )
    # Not run on manyio: pytest itself fails or skips an unhandled async test; either way
    # current_task() never ran successfully inside a manyio task.
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0


_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


async def test_each_async_test_gets_a_fresh_context() -> None:
    assert _var.get() == "unset"
    _var.set("set by a test")
