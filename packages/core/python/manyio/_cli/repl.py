"""``python -m manyio``: a REPL where top-level ``await`` runs on a manyio runtime.

Unlike asyncio's REPL, nothing has to share the main thread with an event loop: the runtime's
workers are threads of their own. So the console runs on the main thread as in the plain REPL,
and a statement that awaits is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT`` (which makes its
code a coroutine) and handed to ``Runtime.block_on``. While it waits, ``block_on`` checks for
signals every few milliseconds: Ctrl-C cancels the statement's task, lets its ``finally``
blocks run, then raises ``KeyboardInterrupt`` here, which ends the statement and not the REPL.

One runtime lives for the whole session, so tasks started with ``manyio.spawn`` keep running
between statements and can be awaited later; leaving the REPL closes it (cancelling them).
"""

from __future__ import annotations

import ast
import builtins
import code
import ctypes
import inspect
import os
import signal
import sys
import threading
import types
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import manyio

__all__ = ["run_repl"]


class _Statement:
    """One statement running as a task, and what Ctrl-C does to it.

    The first Ctrl-C cancels the task, so its ``finally`` blocks run. A statement that never
    reaches a checkpoint (a CPU loop, or code without ``await`` at all) would not notice, so
    Ctrl-C then raises ``KeyboardInterrupt`` inside it, in the worker thread running it, the way
    Ctrl-C interrupts the plain REPL's main thread. ``_resume`` records that thread.
    """

    def __init__(self, body: Coroutine[Any, Any, Any], *, awaits: bool) -> None:
        self._body = body
        # Code without `await` has no checkpoint where a cancellation could land.
        self._awaits = awaits
        self._lock = threading.Lock()
        # The worker running the body right now, or None while it is suspended.
        self._thread: int | None = None
        self._task: manyio.Task[Any] | None = None
        self.interrupted = False

    async def run(self) -> Any:
        self._task = manyio.current_task()
        self._task.name = "repl-statement"
        if self.interrupted:
            self._task.cancel()
        return await self

    # `await self` is `await body`, resumed through send()/throw() below so that each resume
    # records the thread it runs on.

    def __await__(self) -> _Statement:
        return self

    def __iter__(self) -> _Statement:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        return self._resume(self._body.send, value)

    def throw(self, exc: Any, value: Any = None, traceback: Any = None) -> Any:
        # The interpreter passes (type, value, traceback) when it has them.
        return self._resume(self._body.throw, exc if value is None else value)

    def close(self) -> None:
        self._body.close()

    @property
    def cr_await(self) -> Coroutine[Any, Any, Any]:
        """What this awaits, for ``python -m manyio ps`` (which follows ``cr_await`` chains)."""
        return self._body

    def _resume(self, method: Callable[[Any], Any], arg: Any) -> Any:
        with self._lock:
            self._thread = threading.get_ident()
        try:
            return method(arg)
        finally:
            with self._lock:
                self._thread = None

    def on_sigint(self, signum: int, frame: object) -> None:
        """Runs on the main thread, from ``block_on``'s periodic signal check."""
        first = not self.interrupted
        self.interrupted = True
        if first and self._task is not None:
            self._task.cancel()
            if self._awaits:
                return
        with self._lock:
            if self._thread is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread), ctypes.py_object(KeyboardInterrupt)
                )


async def _call(func: Callable[[], Any]) -> Any:
    return func()


class _AwaitingConsole(code.InteractiveConsole):
    """Runs each statement as a task on ``runtime``; top-level ``await`` works."""

    STATEMENT_FAILED = object()

    def __init__(self, namespace: dict[str, Any], runtime: manyio.Runtime) -> None:
        super().__init__(namespace, filename="<stdin>")
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.runtime = runtime

    def runcode(self, code: types.CodeType) -> object:
        # A function over the REPL's namespace: calling it makes a coroutine when the code
        # awaits. Statements that do not await run in a task too (as asyncio's REPL runs them
        # in its loop), so manyio.spawn(), current_task() and friends work in them.
        func = types.FunctionType(code, self.locals)
        awaits = bool(code.co_flags & inspect.CO_COROUTINE)
        statement = _Statement(func() if awaits else _call(func), awaits=awaits)
        previous = signal.signal(signal.SIGINT, statement.on_sigint)
        try:
            self.runtime.block_on(statement.run())
        except SystemExit:
            raise
        except BaseException as exc:
            if statement.interrupted and isinstance(exc, KeyboardInterrupt | manyio.Cancelled):
                # Its traceback would only show where the statement happened to be.
                self.write("\nKeyboardInterrupt\n")
            else:
                self.showtraceback()
            return self.STATEMENT_FAILED
        finally:
            signal.signal(signal.SIGINT, previous)
        return None


def _console_class(pyrepl: bool) -> type[_AwaitingConsole]:
    """The console for line-by-line input, or for CPython's pyrepl editor.

    pyrepl hands over whole blocks and wants its own console class (coloured tracebacks, each
    statement of a pasted block run on its own), whose ``runsource`` cannot continue a block
    over several lines, so piped input needs the plain one.
    """
    if not pyrepl:
        return _AwaitingConsole
    from _pyrepl.console import InteractiveColoredConsole  # type: ignore[import-not-found]

    class PyreplConsole(_AwaitingConsole, InteractiveColoredConsole):  # type: ignore[misc]
        pass

    return PyreplConsole


def _banner(runtime: manyio.Runtime) -> str:
    return (
        f"manyio {manyio.__version__} REPL, {runtime.threads} worker threads, "
        f"Python {sys.version} on {sys.platform}\n"
        'Use "await" directly instead of "manyio.run()"; Ctrl-C cancels the running statement.\n'
        'Type "help", "copyright", "credits" or "license" for more information.\n'
    )


def _run_startup_file(console: _AwaitingConsole) -> None:
    path = None if sys.flags.ignore_environment else os.environ.get("PYTHONSTARTUP")
    if not path:
        return
    sys.audit("cpython.run_startup", path)
    try:
        import tokenize

        with tokenize.open(path) as f:
            startup = compile(f.read(), path, "exec")
        exec(startup, console.locals)
    except SystemExit:
        raise
    except BaseException:
        console.showtraceback()


def _use_pyrepl() -> bool:
    if not sys.flags.ignore_environment and os.environ.get("PYTHON_BASIC_REPL"):
        return False
    try:
        # Also checks that stdin is a terminal.
        from _pyrepl.main import CAN_USE_PYREPL  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover
        return False
    return bool(CAN_USE_PYREPL)


def _enable_completion(console: _AwaitingConsole) -> None:
    hook = getattr(sys, "__interactivehook__", None)
    if hook is None:
        return
    sys.audit("cpython.run_interactivehook", hook)
    hook()
    try:
        import readline
        import rlcompleter
    except ImportError:
        return
    # site's hook completes names from __main__; ours live in the console's namespace.
    readline.set_completer(rlcompleter.Completer(console.locals).complete)


def _interact(console: _AwaitingConsole, pyrepl: bool, banner: str) -> None:
    if not sys.flags.quiet:
        console.write(banner)
    _run_startup_file(console)
    ps1 = getattr(sys, "ps1", ">>> ")
    if sys.stdin.isatty():
        console.write(f"{ps1}import manyio\n")
    if pyrepl:
        from _pyrepl.simple_interact import run_multiline_interactive_console  # type: ignore[import-not-found]

        run_multiline_interactive_console(console)
    else:
        if sys.stdin.isatty():
            _enable_completion(console)
        console.interact(banner="", exitmsg="")


def run_repl(*, threads: int | None = None) -> int:
    """Runs the REPL until EOF or ``exit()``; returns the exit status."""
    sys.audit("cpython.run_stdin")
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__package__": None,
        "__loader__": None,
        "__spec__": None,
        "__builtins__": builtins,
        "manyio": manyio,
    }
    status: int = 0
    # Asked now: exit() closes stdin.
    interactive = sys.stdin.isatty()
    with manyio.Runtime(threads) as runtime:
        pyrepl = _use_pyrepl()
        console = _console_class(pyrepl)(namespace, runtime)
        try:
            _interact(console, pyrepl, _banner(runtime))
        except SystemExit as exc:
            status = _exit_status(exc.code)
        finally:
            # Closing cancels the tasks left running; coroutines made but never started
            # (a spawn whose runtime closed) would each warn.
            warnings.filterwarnings(
                "ignore", message=r"^coroutine .* was never awaited$", category=RuntimeWarning
            )
    if interactive:
        print("exiting manyio REPL...", file=sys.stderr)
    return status


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
