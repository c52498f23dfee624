"""The command line behind ``python -m manyio``; each subcommand lives in its own module.

Subcommands import lazily so ``ps`` does not start the REPL machinery and the REPL does not
pay for argument parsing of the others.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def _threads(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}")
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m manyio",
        description="manyio's interactive shell and tools. With no command, starts the REPL.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    repl = commands.add_parser("repl", help="an interactive shell where top-level 'await' runs on manyio")
    repl.add_argument("--threads", type=_threads, help="worker threads (default: one per CPU)")

    run = commands.add_parser(
        "run",
        help="run an async function with manyio.run()",
        description="Imports MODULE (or the file PATH.py) and runs FUNCTION with manyio.run(). "
        "The function sees sys.argv == [MODULE, *ARGS].",
    )
    run.add_argument("--threads", type=_threads, help="worker threads (default: one per CPU)")
    run.add_argument("target", metavar="MODULE:FUNCTION", help="e.g. app.server:main or tools/job.py:main")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the function (in sys.argv)")

    for name, what in (("ps", "a table of the tasks"), ("pstree", "a tree of the tasks")):
        cmd = commands.add_parser(name, help=f"show {what} of a running manyio process")
        cmd.add_argument("pid", type=int, help="the process to inspect")
        cmd.add_argument(
            "--timeout", type=float, default=5.0, help="seconds to wait for the answer (default: 5)"
        )
        cmd.add_argument("--json", action="store_true", help="print the raw snapshot as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``python -m manyio`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    match args.command:
        case None | "repl":
            from .repl import run_repl

            return run_repl(threads=getattr(args, "threads", None))
        case "run":
            from .run import run_target

            return run_target(args.target, args.args, threads=args.threads)
        case "ps" | "pstree":
            from .ps import inspect_process

            return inspect_process(
                args.pid, tree=args.command == "pstree", timeout=args.timeout, as_json=args.json
            )
    raise AssertionError(f"unhandled command {args.command!r}")
