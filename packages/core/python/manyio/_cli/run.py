"""``python -m manyio run MODULE:FUNCTION [ARGS...]``: import a module, run one async function.

Mistakes in the command line (no such module, file or attribute, or a function that is not
async) exit with status 2 and one line on stderr, like argparse does. Errors raised while the
user's module imports or runs keep their traceback: they are bugs in that code, not in the
command.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

import manyio

__all__ = ["UsageError", "load_target", "run_target"]

USAGE_ERROR = 2


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""


def _is_path(module: str) -> bool:
    return module.endswith(".py") or os.sep in module or (os.altsep is not None and os.altsep in module)


def _import_file(path: str) -> types.ModuleType:
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    # Like `python path/to/file.py`: the file's directory goes first on sys.path, so its
    # sibling modules import.
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as `import` does, so dataclasses and pickling find it.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(name: str) -> types.ModuleType:
    # `python -m` put the working directory on sys.path already, as for `python -m app`.
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing target is a usage error; a missing import *inside* it is a bug there.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"no module named {exc.name!r}")
        raise


def load_target(target: str) -> tuple[str, Any]:
    """Imports ``module:attr.path`` (or ``file.py:attr``); returns the module part and the object."""
    module_part, sep, attr_path = target.rpartition(":")
    if not sep or not module_part or not attr_path:
        raise UsageError(f"expected MODULE:FUNCTION or PATH.py:FUNCTION, got {target!r}")
    module = _import_file(module_part) if _is_path(module_part) else _import_module(module_part)
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_part!r} has no attribute {attr_path!r}")
    if not _is_async_callable(obj):
        kind = "not callable" if not callable(obj) else "not an async function"
        raise UsageError(f"{target} is {kind}: manyio.run() needs an 'async def' function")
    return module_part, obj


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    # An instance with `async def __call__`.
    if inspect.isroutine(obj) or not callable(obj):
        return False
    return inspect.iscoroutinefunction(type(obj).__call__)


def run_target(target: str, args: Sequence[str], *, threads: int | None = None) -> int:
    """Runs ``target`` with :func:`manyio.run`; an ``int`` it returns becomes the exit status."""
    saved_argv = sys.argv
    try:
        sys.argv = [target.rpartition(":")[0], *args]
        _, func = load_target(target)
    except UsageError as exc:
        sys.argv = saved_argv
        print(f"python -m manyio run: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    result = manyio.run(func, threads=threads)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
