"""The public API: everything in ``__all__`` exists and what manyio defines is documented."""

from __future__ import annotations

import inspect
import types

import manyio
import manyio.compat
import manyio.from_thread
import pytest

MODULES = [manyio, manyio.from_thread, manyio.compat]


def _public(module: types.ModuleType) -> list[str]:
    return list(module.__all__)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_name_in_all_exists(module: types.ModuleType) -> None:
    missing = [name for name in _public(module) if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_has_no_duplicates(module: types.ModuleType) -> None:
    names = _public(module)
    assert len(names) == len(set(names))


def _defined_by_manyio(obj: object) -> bool:
    if isinstance(obj, types.ModuleType):
        return obj.__name__.startswith("manyio")
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        return False
    module = getattr(obj, "__module__", None) or ""
    return module == "manyio" or module.startswith("manyio.")


def _documented_names() -> list[tuple[str, str]]:
    out = []
    for module in MODULES:
        for name in _public(module):
            obj = getattr(module, name, None)
            if _defined_by_manyio(obj):
                out.append((module.__name__, name))
    return out


@pytest.mark.parametrize(("module_name", "name"), _documented_names(), ids=lambda v: v)
def test_public_names_defined_by_manyio_have_a_docstring(module_name: str, name: str) -> None:
    obj = getattr(__import__(module_name, fromlist=["_"]), name)
    doc = inspect.getdoc(obj) if not inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"{module_name}.{name} has no docstring"


def test_the_package_and_its_public_modules_are_documented() -> None:
    for module in MODULES:
        assert module.__doc__ and module.__doc__.strip(), module.__name__


def test_public_names_of_the_root_package() -> None:
    # The names the documentation promises, spot-checked.
    expected = {
        "run", "main", "Runtime", "spawn", "Task", "TaskGroup", "TaskStatus", "CancelScope",
        "Cancelled", "move_on_after", "move_on_at", "fail_after", "fail_at",
        "current_effective_deadline", "checkpoint", "yield_now", "sleep", "sleep_until",
        "current_time", "Event", "Lock", "Semaphore", "BoundedSemaphore", "Condition", "Barrier",
        "CapacityLimiter", "channel", "SendChannel", "ReceiveChannel", "EndOfChannel",
        "ClosedResourceError", "BrokenResourceError", "WouldBlock", "Queue", "to_thread",
        "from_thread", "current_task", "all_tasks", "stats",
    }  # fmt: skip
    assert expected <= set(manyio.__all__)


def test_exception_hierarchy() -> None:
    for name in ("BrokenResourceError", "BusyResourceError", "ClosedResourceError", "EndOfChannel",
                 "WouldBlock"):  # fmt: skip
        cls = getattr(manyio, name)
        assert issubclass(cls, Exception)
    assert issubclass(manyio.Cancelled, BaseException)
    assert not issubclass(manyio.Cancelled, Exception)


def test_version() -> None:
    assert isinstance(manyio.__version__, str)
    assert manyio.__version__.count(".") >= 1
